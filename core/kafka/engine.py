"""The Kafka Connect engine: Debezium captures, Kafka carries, the app applies (sink `studio`).

Per pipeline: the source side is prepared exactly as for the embedded engine (publication, slot,
and for FULL_LOAD_AND_CDC the app's own fast full load under the slot's exported snapshot), then
a Debezium connector is put on the Connect cluster *on that slot* with snapshot.mode=no_data, so
the handoff has no gap and no duplicate. A consumer (KafkaSource, a ChangeSource) reads the
pipeline's change topics, the worker turns the Debezium envelopes into ChangeEvents and applies
them with the same applier as the embedded engine, sharing its parts by composition (TableSet,
SourcePrep, SchemaEvolution, the ChangeSink); the Kafka offsets of each partition are written in
the target's offsets table in the same transaction as the rows, and the consumer seeks from
there on every start, so a crash neither loses nor repeats a change. Nothing here touches UI elements.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import orjson

from core import monitoring
from core.cdc import offsets
from core.cdc.applier import PgApplier
from core.cdc.apply_loop import CdcCounters
from core.cdc.engine import publish_lag
from core.cdc.events import ChangeEvent
from core.cdc.evolve import SchemaEvolution
from core.cdc.prepare import CdcFailed, OnTable, SourcePrep, TableSet, raise_incomplete
from core.cdc.sink import AppliedBatch, ChangeSink
from core.config import get_settings
from core.connectors import get_connector
from core.errors import ConnectorError, StudioError
from core.events import Event, bus
from core.fullload import LoadOptions, TableProgress, pgsql, run_full_load
from core.kafka import debezium, mssql_values
from core.kafka.connect_client import ConnectNotFound, ConnectorStatus, KafkaConnectClient
from core.kafka.values import TableConverter, UnknownColumns
from core.plans import CdcPlan

log = logging.getLogger(__name__)

BATCH_MESSAGES = 20_000
BATCH_SECONDS = 0.05
STATUS_EVERY_S = 3.0
RUNNING_TIMEOUT_S = 90.0
STREAM_PREFIX = "kafka:"


def stream_name(topic: str, partition: int) -> str:
    """The offsets-table name of one Kafka partition."""
    return f"{STREAM_PREFIX}{topic}:{partition}"


def consumer_config(pipeline_id: int, settings: Any = None) -> dict[str, Any]:
    """confluent-kafka consumer settings of a pipeline (offsets live in the target, not in Kafka)."""
    settings = settings or get_settings()
    config: dict[str, Any] = dict(debezium.kafka_client_settings(settings))
    config.update(
        {
            "group.id": debezium.connector_name(pipeline_id),
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": settings.kafka_session_timeout_ms,
            "heartbeat.interval.ms": max(100, settings.kafka_session_timeout_ms // 3),  # tansu: < session/2
            "topic.metadata.refresh.interval.ms": 1000,
            "fetch.wait.max.ms": 50,
            "client.id": debezium.connector_name(pipeline_id),
        }
    )
    return config


def connect_client(settings: Any = None) -> KafkaConnectClient:
    settings = settings or get_settings()
    if not settings.kafka_connect_url:
        raise CdcFailed(
            "the kafka_connect engine needs KAFKA_CONNECT_URL (the Kafka Connect REST address, e.g. "
            "http://connect:8083); set it and restart the app, or use the embedded engine"
        )
    return KafkaConnectClient.from_settings(settings)


class KafkaSource:
    """The pipeline's change topics as a ChangeSource: polls give Kafka messages; `confirm` commits a batch's
    partition offsets to the consumer group (informational: the truth is the target's offsets table)."""

    confirmed_lsn = 0  # positions are per partition (the offsets table), not one number
    caught_up = True

    def __init__(self, consumer: Any, pattern: str | None = None, stored: dict[str, int] | None = None) -> None:
        self.consumer = consumer
        self.pattern = pattern
        self.stored = stored or {}

    def start(self, start_lsn: int = 0) -> None:
        """Subscribe; each assigned partition is read after its stored offset (from its start when none)."""
        self.consumer.subscribe([self.pattern], on_assign=lambda c, parts: seek_stored(c, parts, self.stored))

    def poll(self, timeout_s: float = 0.2) -> list[Any]:
        """Up to 5000 messages, waiting up to `timeout_s`."""
        return self.consumer.consume(num_messages=5000, timeout=timeout_s)

    def confirm(self, position: Any) -> None:
        """`position`: the _Partitions of an applied batch; their next offsets go to the consumer group."""
        from confluent_kafka import TopicPartition

        try:
            self.consumer.commit(
                offsets=[TopicPartition(p.topic, p.partition, p.last + 1) for p in position], asynchronous=True
            )
        except Exception as exc:  # noqa: BLE001 - informational only
            log.debug("offset commit to Kafka failed: %s", exc)

    def keepalive(self) -> None:
        """Nothing to do: librdkafka heartbeats the group on its own thread."""

    def close(self) -> None:
        """Leave the group."""
        self.consumer.close()


def seek_stored(consumer: Any, partitions: list, stored: dict[str, int]) -> None:
    """Assign `partitions`, each positioned after its stored offset (from its start when none)."""
    from confluent_kafka import OFFSET_BEGINNING

    for p in partitions:
        position = stored.get(stream_name(p.topic, p.partition))
        p.offset = position + 1 if position is not None else OFFSET_BEGINNING
    consumer.assign(partitions)


class KafkaCdcWorker:
    """Runs one kafka_connect pipeline: connector on the cluster, consumer and applier in this thread."""

    def __init__(
        self,
        plan: CdcPlan,
        stop: threading.Event,
        on_progress: Callable[[TableProgress], None] | None = None,
        on_streaming: Callable[[], None] | None = None,
        on_connector: Callable[[ConnectorStatus], None] | None = None,
        on_table: OnTable | None = None,
        *,
        sink: ChangeSink | None = None,
    ) -> None:
        self.plan = plan
        self.stop = stop
        self.on_streaming = on_streaming or (lambda: None)
        self.sink: ChangeSink = sink if sink is not None else monitoring.SINK
        self.tables = TableSet(plan, on_table)
        self.prep = SourcePrep(plan, stop, self.tables, on_progress)
        self.evolution = SchemaEvolution(self.tables)
        self.counters = CdcCounters()
        self.slot, self.publication = self.prep.slot, self.prep.publication
        self.on_connector = on_connector or (lambda _s: None)
        self.connector = debezium.connector_name(plan.pipeline_id)
        self.prefix = debezium.topic_prefix(plan.pipeline_id)
        self.connector_status: ConnectorStatus | None = None
        self.connector_status_at: datetime | None = None  # when Connect last told it (UTC)
        self.settings = get_settings()
        self._converters: dict[tuple[str, str], TableConverter] = {}
        self._topics: dict[str, tuple[str, str]] = {}
        self.source_error: str | None = None  # the source cannot be reached from the app
        self._applying: _InOrder | None = None
        self._slot_inactive_since: float | None = None

    @property
    def _pairs(self) -> dict[tuple[str, str], tuple[str, str]]:
        return self.tables.pairs

    @property
    def full_load_status(self) -> str | None:
        """None (no full load), RUNNING, or how the full load before CDC ended."""
        return self.prep.full_load_status

    # ------------------------------------------------------------------ setup

    def check(self) -> None:
        """Refuse what this engine cannot run, then the source's own CDC checks."""
        if not self.settings.kafka_bootstrap_servers:
            raise CdcFailed(
                "the kafka_connect engine needs KAFKA_BOOTSTRAP_SERVERS (the Kafka brokers the Connect "
                "cluster writes to); set it and restart the app, or use the embedded engine"
            )
        if self.plan.source.kind not in ("postgresql", "sqlserver"):
            raise CdcFailed(
                f"the kafka_connect engine streams PostgreSQL and SQL Server sources; "
                f"{self.plan.source.kind} sources are not supported"
            )
        self.prep.check()  # SQL Server: CDC on the database and tables (the fix in words), SQL Server Agent

    @property
    def _sqlserver(self) -> bool:
        return self.plan.source.kind == "sqlserver"

    def connector_config(self) -> dict[str, str]:
        common: dict[str, Any] = {
            "heartbeat_ms": int(self.settings.kafka_heartbeat_ms),
            "with_schemas": self.plan.sink == "connect",  # a JDBC sink needs schemas in the messages
            "extra": {  # one partition per table topic: its changes are read in commit order
                "topic.creation.default.partitions": "1",
                "topic.creation.default.replication.factor": str(self.settings.kafka_topic_replication_factor),
            },
        }
        if self._sqlserver:
            return debezium.sqlserver_source_config(
                self.plan.pipeline_id,
                self.plan.source,
                list(self._pairs),
                bootstrap_servers=str(self.settings.kafka_bootstrap_servers),
                history_client=debezium.java_client_security(self.settings),
                **common,
            )
        common["extra"]["skipped.operations"] = "none"  # TRUNCATE reaches the target too
        return debezium.postgres_source_config(
            self.plan.pipeline_id,
            self.plan.source,
            list(self._pairs),
            slot=self.slot,
            publication=self.publication,
            **common,
        )

    def ensure_connector(
        self, client: KafkaConnectClient, name: str | None = None, config: dict[str, str] | None = None
    ) -> ConnectorStatus | None:
        """Create or update a connector of the pipeline, resume it if paused/stopped, wait until it runs."""
        name = name or self.connector
        _put_config(client, name, config or self.connector_config())
        deadline = time.monotonic() + RUNNING_TIMEOUT_S
        while True:
            try:
                status = client.status(name)
            except ConnectNotFound:
                status = None
            if status is not None:
                if status.state in ("PAUSED", "STOPPED"):
                    client.resume(name)
                elif status.failed_tasks or status.state == "FAILED":
                    raise CdcFailed(f"connector {name} failed: {_trace(status)}")
                elif status.healthy:
                    if name == self.connector:
                        self._connector_seen(status)
                    return status
            if self.stop.is_set():
                return status
            if time.monotonic() > deadline:
                state = status.state if status else "missing"
                raise CdcFailed(
                    f"connector {name} did not reach RUNNING within {RUNNING_TIMEOUT_S:.0f} s "
                    f"(it is {state}); look at the Connect worker's log"
                )
            time.sleep(0.5)

    def _connector_seen(self, status: ConnectorStatus) -> None:
        changed = self.connector_status is None or _summary(self.connector_status) != _summary(status)
        self.connector_status, self.connector_status_at = status, datetime.now(UTC)
        if changed:
            self.on_connector(status)
            bus.publish(Event("pipeline.connector", _status_dict(status), self.plan.pipeline_id))

    # ------------------------------------------------------------------ streaming

    def run(self) -> None:
        from confluent_kafka import Consumer

        self.check()
        client = connect_client(self.settings)
        try:
            if self._sqlserver:
                self._learn_tables()
                loaded = self._prepare_sqlserver(client)
            else:
                self.prep.prepare()
                if self.stop.is_set():
                    return
                self._learn_tables()
                self.ensure_connector(client)
                loaded = False
            if self.stop.is_set():
                return
            if self.plan.sink == "connect":
                self._run_connect_sink(client)
                return
            with PgApplier(self.plan.target, self.plan.pipeline_id, self._pairs) as applier:
                source = KafkaSource(Consumer(consumer_config(self.plan.pipeline_id, self.settings), logger=log))
                try:
                    if loaded:
                        self._mark_loaded(applier)
                    source.pattern, source.stored = self._topic_pattern(), applier.stored_positions(STREAM_PREFIX)
                    source.start()
                    self.on_streaming()
                    self._consume(source, applier, client, source.stored)
                finally:
                    source.close()
        finally:
            client.close()

    def _prepare_sqlserver(self, client: KafkaConnectClient) -> bool:
        """SQL Server: no slot. The connector (snapshot.mode=no_data: it streams from the CDC position
        current when it starts) runs before the app's full load, so nothing committed during the load
        is missed; what the load copied and Kafka also carries is applied again and converges (upserts
        of whole rows, deletes by key). True when a full load ran (its topics are then read from
        their start); a restart after a completed load goes straight to streaming.
        """
        if self.plan.mode != "FULL_LOAD_AND_CDC" or self._stored_kafka_offsets():
            if self.plan.mode != "FULL_LOAD_AND_CDC":
                self.prep.create_missing_targets()
            self.ensure_connector(client)
            return False
        self.ensure_connector(client)
        self._wait_streaming()  # Debezium has fixed its start position: the load may read rows now
        if self.stop.is_set():
            return False
        options = LoadOptions(auto_create=self.plan.auto_create, target_table_policy=self.plan.target_table_policy)
        self.prep.full_load_status = "RUNNING"
        result = run_full_load(
            self.plan.source, self.plan.target, self.tables.plans(), options, self.prep.on_progress, self.stop
        )
        self.prep.full_load_status = result.status
        if result.status != "COMPLETED":
            raise_incomplete(result)
        return True

    def _wait_streaming(self) -> None:
        """Wait for the connector's first heartbeat: Debezium sends it from its streaming loop, after it fixed
        the position it streams from. Connect reports a task RUNNING earlier than that, so RUNNING alone
        would leave a window in which a row the load copied could change unseen."""
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        topic = f"__debezium-heartbeat.{self.prefix}"
        wait_s = max(60.0, 3 * self.settings.kafka_heartbeat_ms / 1000)
        deadline = time.monotonic() + wait_s
        config = {**consumer_config(self.plan.pipeline_id, self.settings), "group.id": f"{self.connector}-heartbeat"}
        consumer = Consumer(config, logger=log)
        try:
            consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
            while not self.stop.is_set():
                msg = consumer.poll(0.5)
                if msg is not None and not msg.error():
                    return
                if time.monotonic() > deadline:
                    raise CdcFailed(
                        f"connector {self.connector} is RUNNING but sent no heartbeat to {topic} within "
                        f"{wait_s:.0f} s: Debezium is not "
                        "streaming yet (is SQL Server Agent running? look at the Connect worker's log)"
                    )
        finally:
            consumer.close()

    def _stored_kafka_offsets(self) -> bool:
        """Whether the target holds Kafka positions of this pipeline (a completed full load, or changes applied)."""
        spec = self.plan.target
        conn = pgsql.connect(spec)
        try:
            with pgsql.pg_errors(spec), conn.cursor() as cur:
                return bool(offsets.read_offsets(cur, self.plan.pipeline_id, STREAM_PREFIX))
        finally:
            conn.close()

    def _mark_loaded(self, applier: PgApplier) -> None:
        """After the full load: each topic's position before its first message, so a restart skips the load
        and still reads every change the connector sent since it started (one partition per topic)."""
        stored = applier.stored_positions(STREAM_PREFIX)
        marks: dict[str, tuple[list[ChangeEvent], int]] = {
            stream_name(t, 0): ([], -1) for t in self._topics if stream_name(t, 0) not in stored
        }
        if marks:
            applier.apply_streams(marks)

    def _run_connect_sink(self, client: KafkaConnectClient) -> None:
        """Sink `connect`: a JDBC sink connector applies the topics; the app follows both connectors."""
        config = debezium.jdbc_sink_config(
            self.plan.pipeline_id, self.plan.target, list(self._topics), client.plugins()
        )
        self.ensure_connector(client, debezium.sink_connector_name(self.plan.pipeline_id), config)
        self.on_streaming()
        while not self.stop.wait(STATUS_EVERY_S):
            self._watch_connector(client)
            self._measure_lag()

    def _topic_pattern(self) -> str:
        names = "|".join(re.escape(t) for t in self._topics)
        return f"^({names})$"

    def _learn_tables(self) -> None:
        src = get_connector(self.plan.source)
        database = self.plan.source.database if self._sqlserver else None  # SQL Server topics name the database
        for schema, table in self._pairs:
            detail = src.table_detail(self.plan.source.database, schema, table)
            self._converters[(schema, table)] = TableConverter(
                schema, table, {c.name: c.type for c in detail.columns}, detail.primary_key, self._types
            )
            self._topics[debezium.topic_name(self.plan.pipeline_id, schema, table, database)] = (schema, table)

    @property
    def _types(self) -> Callable[[str], Any] | None:
        """How a column's values are read, by the source's kind (None: PostgreSQL's)."""
        return mssql_values.converter_for if self._sqlserver else None

    def _consume(
        self, consumer: Any, applier: PgApplier, client: KafkaConnectClient | None, stored: dict[str, int]
    ) -> None:
        """Read, decode and hand batches to the apply thread; decoding batch k+1 overlaps applying batch k.

        `consumer`: the KafkaSource (a bare confluent-kafka consumer is wrapped, as tools pass one).
        """
        source = consumer if isinstance(consumer, KafkaSource) else KafkaSource(consumer)

        parts: dict[tuple[str, int], _Partition] = {}
        pending = 0
        since = 0.0
        next_status = next_lag = time.monotonic() + STATUS_EVERY_S
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"kafka-apply-{self.plan.pipeline_id}") as pool:
            self._applying = _InOrder(pool, source)
            try:
                while not self.stop.is_set():
                    messages = source.poll(0.2)
                    for msg in messages:
                        err = msg.error()
                        if err is not None:
                            self._message_error(err)
                            continue
                        key = (msg.topic(), msg.partition())
                        part = parts.get(key)
                        if part is None:
                            part = parts[key] = _Partition(*key)
                        event = self._event(applier, msg)
                        if event is not None:
                            part.events.append(event)
                        part.last = msg.offset()
                        if not pending:
                            since = time.monotonic()
                        pending += 1
                    now = time.monotonic()
                    if parts and (pending >= BATCH_MESSAGES or now - since >= BATCH_SECONDS or not messages):
                        self._applying.submit(functools.partial(self._apply_parts, applier, parts), parts)
                        parts, pending = {}, 0
                    next_status, next_lag = self._periodic(now, client, next_status, next_lag)
                if parts:
                    self._applying.submit(functools.partial(self._apply_parts, applier, parts), parts)
                self._applying.drain()
            finally:
                self._applying = None

    def _message_error(self, err: Any) -> None:
        """A consumer error: end of a partition or a topic not there yet are none; a fatal one ends the run."""
        from confluent_kafka import KafkaError

        if err.code() in (KafkaError._PARTITION_EOF, KafkaError.UNKNOWN_TOPIC_OR_PART):
            return
        if err.fatal():
            raise CdcFailed(f"Kafka consumer failed: {err.str()}")
        log.warning("pipeline %s: Kafka: %s", self.plan.pipeline_id, err.str())

    def _periodic(
        self, now: float, client: KafkaConnectClient | None, next_status: float, next_lag: float
    ) -> tuple[float, float]:
        """Follow the connector and measure lag when due; the next times they are due."""
        if now >= next_status and client is not None:
            self._watch_connector(client)
            next_status = now + STATUS_EVERY_S
        if now >= next_lag:
            self._measure_lag()
            next_lag = now + 2.0
        return next_status, next_lag

    def _event(self, applier: PgApplier, msg: Any) -> ChangeEvent | None:
        raw = msg.value()
        if raw is None:
            return None  # the tombstone Debezium sends after a delete (for log compaction)
        envelope = _loads(raw)
        if isinstance(envelope, dict) and "payload" in envelope and "op" not in envelope:
            envelope = envelope["payload"]  # a JsonConverter with schemas enabled
        if not envelope or "op" not in envelope:
            return None
        table = self._topics.get(msg.topic())
        if table is None:
            return None
        converter = self._converters[table]
        try:
            return converter.event(envelope, msg.offset(), msg.headers())
        except UnknownColumns as exc:
            self._evolve_kafka(applier, table, exc.columns)
            return self._converters[table].event(envelope, msg.offset(), msg.headers())

    def _evolve_kafka(self, applier: PgApplier, table: tuple[str, str], columns: list[str]) -> None:
        if self._applying is not None:
            self._applying.drain()  # the applier is the apply thread's until its batches are in
        detail = get_connector(self.plan.source).table_detail(self.plan.source.database, *table)
        known = {c.name for c in detail.columns}
        missing = [c for c in columns if c not in known]
        if missing:
            raise CdcFailed(
                f"messages of {table[0]}.{table[1]} carry column(s) {', '.join(missing)} that the "
                "source table does not have"
            )
        if self._sqlserver:
            target = "{}.{}".format(*self._pairs[table])
            raise CdcFailed(
                f"source table {table[0]}.{table[1]} has new column(s) {', '.join(columns)}; add them to "
                f"{target} (with the mapped PostgreSQL types), then start again"
            )
        self.evolution.evolve(applier, table, added=tuple(columns))
        self._converters[table] = TableConverter(
            table[0], table[1], {c.name: c.type for c in detail.columns}, detail.primary_key, self._types
        )

    def _apply_parts(self, applier: PgApplier, parts: dict[tuple[str, int], _Partition]) -> None:
        """One target transaction: the rows of every partition and each partition's offset (apply thread)."""
        streams = {stream_name(p.topic, p.partition): (p.events, p.last) for p in parts.values()}
        stats = applier.apply_streams(streams)
        if not stats.applied or not stats.events:
            return
        batch = [e for p in parts.values() for e in p.events]
        last = max((e.commit_time for e in batch if e.commit_time is not None), default=None)
        applied_at = self.counters.count(stats, last)
        self.sink.applied(
            AppliedBatch(self.plan.pipeline_id, batch, applied_at, seconds=stats.seconds, commit_time=last)
        )

    def _measure_lag(self) -> None:
        """Slot lag from the source side; a source that is down is shown, not fatal (Debezium retries)."""
        try:
            publish_lag(self.plan, self.slot, self.counters)
            self.source_error = None
        except StudioError as exc:
            self.source_error = str(exc)
            self.counters.slot_active = None
            log.warning("pipeline %s: cannot read the source: %s", self.plan.pipeline_id, exc)
        if self.counters.slot_active is False:
            self._slot_inactive_since = self._slot_inactive_since or time.monotonic()
        else:
            self._slot_inactive_since = None

    def source_warning(self) -> str | None:
        """Connect says RUNNING while it quietly retries a source that is down: the source side tells."""
        status = self.connector_status
        if status is None or status.state != "RUNNING":
            return None
        if self.source_error:
            return f"the source database cannot be reached ({self.source_error}); Debezium is retrying"
        if self._slot_inactive_since is not None:
            seconds = time.monotonic() - self._slot_inactive_since
            if seconds >= STATUS_EVERY_S:
                lag = self.counters.lag_bytes
                behind = f", {lag} bytes of WAL behind" if lag is not None else ""
                return (
                    f"the connector says RUNNING but nobody has read its replication slot for {seconds:.0f} s"
                    f"{behind}: the source may be down or unreachable from the Connect workers"
                )
        return None

    def _watch_connector(self, client: KafkaConnectClient) -> None:
        """Follow the connector's state; a FAILED task is reported with its trace (the consumer keeps going)."""
        try:
            status = client.status(self.connector)
        except ConnectNotFound:
            raise CdcFailed(
                f"connector {self.connector} was deleted from the Connect cluster; start the pipeline "
                "again to re-create it"
            ) from None
        except ConnectorError as exc:
            log.warning("pipeline %s: cannot read connector status: %s", self.plan.pipeline_id, exc)
            return
        self._connector_seen(status)

    def finish(self, paused: bool) -> None:
        """After the consumer stopped: pause (resume later) or stop the pipeline's connectors on the cluster."""
        names = [self.connector]
        if self.plan.sink == "connect":
            names.append(debezium.sink_connector_name(self.plan.pipeline_id))
        try:
            with connect_client(self.settings) as client:
                for name in names:
                    try:
                        (client.pause if paused else client.stop)(name)
                    except ConnectNotFound:
                        pass
        except StudioError as exc:
            log.warning(
                "pipeline %s: could not %s connector %s: %s",
                self.plan.pipeline_id,
                "pause" if paused else "stop",
                self.connector,
                exc,
            )


class _Partition:
    """What one consumed batch holds of one Kafka partition: its decoded events and its last offset."""

    __slots__ = ("topic", "partition", "events", "last")

    def __init__(self, topic: str, partition: int) -> None:
        self.topic, self.partition = topic, partition
        self.events: list[ChangeEvent] = []
        self.last = -1


class _InOrder:
    """Batches applied one at a time on the pool's thread, in order; at most one waits while one runs.

    After a batch is in the target, its offsets are also committed to the consumer group (for tools
    that show group lag; the truth is the target's offsets table), from the consuming thread.
    """

    def __init__(self, pool: ThreadPoolExecutor, source: KafkaSource) -> None:
        self.pool, self.source = pool, source
        self.running: tuple[Future, dict] | None = None

    def submit(self, work: Callable[[], None], parts: dict) -> None:
        self.drain()
        self.running = (self.pool.submit(work), parts)

    def drain(self) -> None:
        """Wait for the running batch (its failure is raised here) and commit its offsets to Kafka."""
        if self.running is None:
            return
        future, parts = self.running
        self.running = None
        future.result()
        self.source.confirm(list(parts.values()))


def _loads(raw: bytes) -> Any:
    """orjson where it can (about 2x json); json for what orjson refuses (lone surrogates, huge integers)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


def _put_config(client: KafkaConnectClient, name: str, config: dict[str, str]) -> None:
    """Create the connector, or update its config when it differs."""
    try:
        current = client.config(name)
    except ConnectNotFound:
        current = None
    if current is None:
        client.create(name, config)
    elif {k: str(v) for k, v in current.items() if k != "name"} != {k: str(v) for k, v in config.items()}:
        client.put_config(name, config)


def _summary(status: ConnectorStatus) -> tuple:
    return status.state, tuple((t.id, t.state) for t in status.tasks)


def _trace(status: ConnectorStatus) -> str:
    failed = status.failed_tasks
    trace = (failed[0].trace if failed else None) or getattr(status, "trace", None) or status.state
    return trace.strip().splitlines()[0] if trace else status.state


def _status_dict(status: ConnectorStatus) -> dict:
    return {
        "connector": status.name if hasattr(status, "name") else None,
        "state": status.state,
        "tasks": [{"id": t.id, "state": t.state, "worker_id": t.worker_id, "trace": t.trace} for t in status.tasks],
    }


def delete_connector(pipeline_id: int, settings: Any = None) -> None:
    """Remove the pipeline's connectors from the cluster, with the source offsets Connect keeps for them.

    Connect keeps a deleted connector's offsets: a later connector of the same name would start
    from a position that no longer exists. So: stop, reset the offsets, then delete.
    """
    with connect_client(settings) as client:
        for name in (debezium.connector_name(pipeline_id), debezium.sink_connector_name(pipeline_id)):
            try:
                client.stop(name)
                _reset_offsets(client, name)
                client.delete(name)
            except ConnectNotFound:
                pass


def _reset_offsets(client: KafkaConnectClient, name: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            client.reset_offsets(name)
            return
        except ConnectNotFound:
            raise
        except StudioError as exc:  # not STOPPED yet (stop is asynchronous), or a rebalance
            if time.monotonic() > deadline:
                log.warning("connector %s: offsets not reset (%s); deleting it anyway", name, exc)
                return
            time.sleep(0.5)
