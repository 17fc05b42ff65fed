"""The kafka_connect CDC engine against the embedded engine, and its consumer against Kafka's read limit.

Starts, in the run, a throwaway PostgreSQL cluster (wal_level=logical; a source and a target
database of ONE cluster) and the Kafka stack of tests/kafkastack.py (tansu broker + Kafka Connect
4.3 + Debezium 3.6, no Docker), then per round:

  E  end to end, one N-row INSERT transaction, from its COMMIT until the target has every row:
       kafka     the real KafkaCdcWorker (CdcPlan engine="kafka_connect", CDC_ONLY) on a thread as
                 core/runner.py runs it: publication + slot, a Debezium connector on that slot,
                 the app's consumer + applier. An observer (a plain confluent-kafka reader of the
                 change topic, another group) notes when Debezium's first and last message of the
                 transaction reach Kafka: Debezium's delivery rate, the ceiling of this engine.
       embedded  the real CdcWorker (engine="embedded") on the same workload and table shape.
     Both first get one warm-up row through (connector streaming, topic created, consumer
     assigned), so the timed part is the steady path. Done = the target's row count (read each
     time the target's cdc_studio.offsets row moves). Separate source/target tables, slots and
     publications; the order alternates between rounds.
  C  the consumer side alone, on the topic Debezium filled in E (N+1 real Debezium envelopes):
       consumer  KafkaCdcWorker's own consume path (_consume -> _event -> _apply_parts, the real
                 PgApplier and monitoring) into a fresh target table, through a subclass that only
                 skips the connector (no Connect calls) and assigns the partition instead of
                 joining a group (tansu holds a join ~2 s: a one-off, not throughput). Timed to
                 the commit that applies the last event, from the first messages in hand (the
                 rate the goal is judged on) and from the first consume() call (adds a fresh
                 consumer's first fetch, ~0.5 s on tansu, once per consumer start). Measured
                 inside the run: time in consume(), in _apply_parts, the rest of the loop
                 (decoding), cyclic GC, CPU of the thread / process / machine.
       read      the physical limit: a bare confluent-kafka consume of the same topic (same
                 batch size and fetch settings), no decoding; timed the same two ways
       json      json.loads of every message value alone
       decode    the worker's _event (json.loads + TableConverter.event -> ChangeEvent) alone
       apply     PgApplier.apply_streams of those events alone, in the same batch sizes the
                 consumer run formed, into a fresh target table
     repeated --replays times per round (medians).

Monitoring is left as shipped: core.monitoring.record_applied runs on every batch and its
recorder thread writes into a throwaway SQLite app database (data.db.init, migrated), so the
figures are the app's. Everything the run creates (connectors with their offsets, slots,
publications, the stack, the cluster) is removed at the end, also on error, Ctrl-C or SIGTERM.

    .venv/bin/python benchmarks/kafka_cdc.py [--rows 100000] [--rounds 1] [--replays 3]
                                             [--jvm jit|fast-start] [--profile]

--jvm: the Connect worker's JVM. `jit` (default) is the full tiered JIT with a parallel GC, as a
production worker runs; `fast-start` is tests/kafkastack.py's C1-only test setting.
--profile: cProfile the consumer-alone runs (slows them; the figures are then NOT comparable).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import io
import json
import logging
import os
import pstats
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.kafkastack import JVM_OPTS, KafkaStack  # noqa: E402
from tests.pgcluster import PgCluster  # noqa: E402

SRC, DST = "kcdc_src", "kcdc_dst"
COLUMNS = "id bigint PRIMARY KEY, a int, b text, c numeric(12,2), d timestamptz"
VALUES = (
    "{g}, {g} * 7, 'some text value ' || {g}, ({g} % 100000)::numeric / 100, "
    "timestamptz '2024-01-01 00:00+00' + {g} * interval '1 s'"
)
KAFKA_T, EMB_T, REPLAY_T, APPLY_T = "kafka_t", "emb_t", "replay_t", "apply_t"
CLUSTER_CONF = {"max_wal_size": "'16GB'", "checkpoint_timeout": "'1h'", "shared_buffers": "'256MB'"}
# The workload's session commits with synchronous_commit=on (cheap with fsync off) so the commit
# reaches the walsenders at once, not at the WAL writer's next round (see benchmarks/cdc.py).
SOURCE_SESSION = "SET synchronous_commit = on"
POLL_S = 0.005
JIT_JVM_OPTS = ["-Xmx1g", "-XX:+UseParallelGC", "-Djava.awt.headless=true", "-Dlog4j2.disable.jmx=true"]
GOAL_CONSUMER = 30_000  # events/s the consumer side alone must apply (the issue)

log = logging.getLogger("bench.kafka_cdc")


# ------------------------------------------------------------------------------------ helpers


class Bench:
    """The cluster, the stack, one autocommit session per database, the app database, what to clean up."""

    def __init__(self, pg: PgCluster, stack: KafkaStack, app_dir: Path, profile: bool) -> None:
        self.pg = pg
        self.stack = stack
        self.app_dir = app_dir
        self.profile = profile
        self.profiles: list[cProfile.Profile] = []
        self.src = pg.connect(SRC)
        self.q(self.src, SOURCE_SESSION)
        self.dst = pg.connect(DST)
        self.conn_ids: dict[str, int] = {}
        self.pipelines: list[int] = []  # every pipeline id the run made (to clean up)
        self.workers: list[Engine] = []

    def spec(self, db: str):  # noqa: ANN201 - ConnectionSpec
        from core.connectors.base import ConnectionSpec

        pg = self.pg
        return ConnectionSpec(
            kind="postgresql", host=pg.host, port=pg.port, database=db, username=pg.user, password=pg.password
        )

    def q(self, conn, statement: str, params: tuple | None = None) -> list[tuple]:  # noqa: ANN001
        with conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall() if cur.description else []

    def one(self, conn, statement: str, params: tuple | None = None):  # noqa: ANN001, ANN201
        rows = self.q(conn, statement, params)
        return rows[0][0] if rows else None

    def new_pipeline(self, label: str, source_table: str, target_table: str, engine: str) -> int:
        """A pipeline row in the app database (monitoring records batches against it)."""
        from data import db
        from data.models import Pipeline

        with db.session_scope() as session:
            p = Pipeline(
                name=f"bench {label} {len(self.pipelines) + 1}",
                source_connection_id=self.conn_ids[SRC],
                target_connection_id=self.conn_ids[DST],
                source_database=SRC,
                source_schema="public",
                target_database=DST,
                target_schema="public",
                tables=[source_table],
                mode="CDC_ONLY",
                auto_create=False,
                target_table_policy="append",
                engine=engine,
            )
            session.add(p)
            session.flush()
            pid = int(p.id)
        self.pipelines.append(pid)
        return pid

    def plan(self, pid: int, source_table: str, target_table: str, engine: str):  # noqa: ANN201 - CdcPlan
        from core.fullload import TablePlan
        from core.plans import CdcPlan

        return CdcPlan(
            pipeline_id=pid,
            source=self.spec(SRC),
            target=self.spec(DST),
            tables=[TablePlan("public", source_table, "public", target_table)],
            mode="CDC_ONLY",
            auto_create=False,
            target_table_policy="append",
            engine=engine,
        )

    def rows(self, table: str) -> int:
        return int(self.one(self.dst, f"SELECT count(*) FROM public.{table}"))

    def offsets_signature(self, pid: int) -> tuple | None:
        """What the target's offsets table holds for a pipeline (changes with every applied batch)."""
        if not self.one(self.dst, "SELECT to_regclass('cdc_studio.offsets') IS NOT NULL"):
            return None
        return tuple(
            self.q(
                self.dst,
                "SELECT source, position FROM cdc_studio.offsets WHERE pipeline_id = %s ORDER BY source",
                (pid,),
            )
        )


def setup(b: Bench) -> None:
    """Tables on both sides, the app database with the two connections."""
    for table in (KAFKA_T, EMB_T):
        b.q(b.src, f"CREATE TABLE public.{table} ({COLUMNS})")
    for table in (KAFKA_T, EMB_T, REPLAY_T, APPLY_T):
        b.q(b.dst, f"CREATE TABLE public.{table} ({COLUMNS})")
    from data import db
    from data.models import Connection

    db.init(f"sqlite:///{b.app_dir / 'app.db'}")  # migrates it to the newest schema
    with db.session_scope() as session:
        for name, database in (("bench source", SRC), ("bench target", DST)):
            c = Connection(
                name=name, kind="postgresql", host=b.pg.host, port=b.pg.port, database=database, username=b.pg.user
            )
            session.add(c)
            session.flush()
            b.conn_ids[database] = int(c.id)


def reset(b: Bench, source_table: str | None, target_table: str) -> None:
    if source_table:
        b.q(b.src, f"TRUNCATE public.{source_table}")
        b.q(b.src, "CHECKPOINT")
    b.q(b.dst, f"TRUNCATE public.{target_table}")


def verify(b: Bench, source_table: str, target_table: str, rows: int) -> None:
    digest = "SELECT count(*), md5(string_agg(t::text, '|' ORDER BY id)) FROM (SELECT id, a, b, c, d FROM public.{}) t"
    src, dst = b.q(b.src, digest.format(source_table))[0], b.q(b.dst, digest.format(target_table))[0]
    if src != dst or src[0] != rows:
        raise SystemExit(
            f"{target_table}: target differs from source {source_table} (source {src}, target {dst}, "
            f"expected {rows} rows)"
        )


def wait_until(what: str, check: Callable[[], bool], timeout: float, alive: Callable[[], None] | None = None) -> float:
    """Poll `check` every POLL_S until true; the perf_counter time it was first seen true."""
    deadline = time.perf_counter() + timeout
    while True:
        if check():
            return time.perf_counter()
        if alive is not None:
            alive()
        if time.perf_counter() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(POLL_S)


def wait_rows(b: Bench, pid: int, table: str, expected: int, timeout: float, alive: Callable[[], None]) -> float:
    """The time the target table was first seen holding `expected` rows (counted when the offsets move)."""
    last: list[Any] = [object()]
    seen: list[float] = [0.0]

    def check() -> bool:
        signature = b.offsets_signature(pid)
        seen[0] = time.perf_counter()
        if signature == last[0]:
            return False
        last[0] = signature
        return b.rows(table) >= expected

    wait_until(f"{expected:,} rows in {table}", check, timeout, alive)
    return seen[0]


def insert_one(b: Bench, table: str, row_id: int) -> None:
    b.q(
        b.src,
        f"INSERT INTO public.{table} (id, a, b, c, d) SELECT {VALUES.format(g='g')} "
        f"FROM generate_series({int(row_id)}, {int(row_id)}) g",
    )


def commit_insert(b: Bench, table: str, lo: int, hi: int) -> float:
    """One transaction inserting rows lo..hi; the perf_counter time its COMMIT returned."""
    conn = b.pg.connect(SRC, autocommit=False)
    try:
        with conn.cursor() as cur:
            cur.execute(SOURCE_SESSION)
            cur.execute(
                f"INSERT INTO public.{table} (id, a, b, c, d) SELECT {VALUES.format(g='g')} "
                f"FROM generate_series({int(lo)}, {int(hi)}) g"
            )
            conn.commit()
            return time.perf_counter()
    finally:
        conn.close()


def consumer_settings(b: Bench, group: str) -> dict[str, Any]:
    """A plain reader's settings, as the engine's consumer reads (fetch wait, no auto commit)."""
    return {
        "bootstrap.servers": b.stack.bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": 50,
    }


# ------------------------------------------------------------------------------------ engines


@dataclass
class Engine:
    """One engine's worker on a thread, as core/runner.py runs it: worker.run() until `stop`."""

    b: Bench
    engine: str  # "kafka_connect" | "embedded"
    source_table: str
    target_table: str
    pid: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    streaming: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    thread: threading.Thread | None = None
    worker: Any = None

    def start(self) -> None:
        from core.cdc.engine import CdcWorker
        from core.kafka.engine import KafkaCdcWorker

        label = "kafka" if self.engine == "kafka_connect" else "embedded"
        self.pid = self.b.new_pipeline(label, self.source_table, self.target_table, self.engine)
        plan = self.b.plan(self.pid, self.source_table, self.target_table, self.engine)
        cls = KafkaCdcWorker if self.engine == "kafka_connect" else CdcWorker
        self.worker = cls(plan, self.stop, on_streaming=self.streaming.set)
        self.thread = threading.Thread(target=self._run, name=f"cdc-{self.pid}", daemon=True)
        self.b.workers.append(self)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.worker.run()
        except BaseException as exc:  # noqa: BLE001 - reported by alive()
            self.error = exc

    def alive(self) -> None:
        if self.error is not None:
            raise SystemExit(f"the {self.engine} worker failed: {self.error!r}")
        if self.thread is not None and not self.thread.is_alive() and not self.stop.is_set():
            raise SystemExit(f"the {self.engine} worker ended on its own")

    def drop(self) -> None:
        """Stop the worker; remove its connector (with Connect's offsets of it), slot and publication."""
        self.stop.set()
        if self.thread is not None:
            self.thread.join(60)
        if self in self.b.workers:
            self.b.workers.remove(self)
        drop_pipeline(self.b, self.pid, self.engine == "kafka_connect")
        if self.error is not None:
            raise SystemExit(f"the {self.engine} worker failed: {self.error!r}")


def drop_pipeline(b: Bench, pid: int, kafka: bool) -> None:
    from core.cdc import pg_source

    if kafka:
        from core.kafka.engine import delete_connector

        delete_connector(pid)
    pg_source.drop_slot_and_publication(b.spec(SRC), pg_source.slot_name(pid), pg_source.publication_name(pid))


class Observer(threading.Thread):
    """Reads a change topic beside the engine and notes when message #k reached Kafka."""

    def __init__(self, b: Bench, topic: str, marks: tuple[int, ...]) -> None:
        super().__init__(name="kafka-observer", daemon=True)
        self.b, self.topic, self.marks = b, topic, marks
        self.seen: dict[int, float] = {}
        self.halt = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        try:
            consumer = Consumer(consumer_settings(self.b, f"bench-observer-{secrets.token_hex(4)}"))
            try:
                consumer.assign([TopicPartition(self.topic, 0, OFFSET_BEGINNING)])
                count, todo = 0, sorted(self.marks)
                while todo and not self.halt.is_set():
                    got = sum(
                        1
                        for m in consumer.consume(num_messages=5000, timeout=0.05)
                        if m.error() is None and m.value() is not None
                    )
                    if got:
                        count += got
                        now = time.perf_counter()
                        while todo and count >= todo[0]:
                            self.seen[todo.pop(0)] = now
            finally:
                consumer.close()
        except BaseException as exc:  # noqa: BLE001 - reported by the measurement
            self.error = exc

    def alive(self) -> None:
        if self.error is not None:
            raise SystemExit(f"the topic observer failed: {self.error!r}")


@dataclass
class EndToEnd:
    seconds: float  # COMMIT -> all rows on the target
    setup_s: float  # worker start -> streaming (slot, publication, connector RUNNING)
    warmup_s: float  # one row through, after streaming
    first_in_kafka_s: float | None = None  # COMMIT -> first message of the transaction in Kafka
    all_in_kafka_s: float | None = None  # COMMIT -> last message in Kafka
    topic: str | None = None


def end_to_end(b: Bench, engine: str, n: int) -> EndToEnd:
    """Workload E for one engine: the timed N-row INSERT after a warm-up row (id 0)."""
    from core.kafka import debezium

    kafka = engine == "kafka_connect"
    source_table, target_table = (KAFKA_T, KAFKA_T) if kafka else (EMB_T, EMB_T)
    reset(b, source_table, target_table)
    e = Engine(b, engine, source_table, target_table)
    observer = None
    began = time.perf_counter()
    e.start()
    try:
        streaming = wait_until(f"the {engine} worker to stream", e.streaming.is_set, 180, e.alive)
        insert_one(b, source_table, 0)
        warm = wait_rows(b, e.pid, target_table, 1, 180, e.alive)
        topic = debezium.topic_name(e.pid, "public", source_table) if kafka else None
        if kafka:
            observer = Observer(b, topic, (1, 2, n + 1))  # message 1 is the warm-up row
            observer.start()
            wait_until("the observer to read the warm-up message", lambda: 1 in observer.seen, 60, observer.alive)
        committed = commit_insert(b, source_table, 1, n)
        done = wait_rows(b, e.pid, target_table, n + 1, max(300.0, n / 200), e.alive)
        out = EndToEnd(done - committed, streaming - began, warm - streaming, topic=topic)
        if observer is not None:
            observer.join(30)
            if observer.error is not None:
                raise SystemExit(f"the topic observer failed: {observer.error!r}")
            if 2 in observer.seen:
                out.first_in_kafka_s = observer.seen[2] - committed
            if n + 1 in observer.seen:
                out.all_in_kafka_s = observer.seen[n + 1] - committed
    finally:
        if observer is not None:
            observer.halt.set()
        e.drop()
    verify(b, source_table, target_table, n + 1)
    return out


# ------------------------------------------------------------------------------------ consumer alone


def cpu_counters() -> tuple[float, float]:
    """(busy, process) CPU seconds so far: the whole machine's (from /proc/stat; 0 elsewhere), this process's."""
    busy = 0.0
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        busy = (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # minus idle and iowait
    return busy, time.process_time()


class TimedConsumer:
    """A confluent-kafka Consumer that adds up the time spent inside consume() (per call: negligible)
    and notes when the first messages were in hand."""

    def __init__(self, consumer: Any) -> None:
        self._consumer = consumer
        self.seconds = 0.0
        self.first_at: float | None = None

    def consume(self, *args: Any, **kwargs: Any) -> list:
        started = time.perf_counter()
        try:
            messages = self._consumer.consume(*args, **kwargs)
        finally:
            now = time.perf_counter()
            self.seconds += now - started
        if messages and self.first_at is None:
            self.first_at = now
        return messages

    def __getattr__(self, name: str) -> Any:
        return getattr(self._consumer, name)


class GcTimer:
    """A gc.callbacks hook adding up the time the cyclic garbage collector runs (in any thread)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started


def replay_worker_class():  # noqa: ANN201 - a KafkaCdcWorker subclass, made once the app modules are importable
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    from core.cdc.applier import PgApplier
    from core.kafka.engine import KafkaCdcWorker, consumer_config

    class ReplayWorker(KafkaCdcWorker):
        """KafkaCdcWorker's consume path on a topic that is already full: no connector, no group join."""

        def __init__(self, plan, stop: threading.Event, topic: str, expected: int) -> None:  # noqa: ANN001
            super().__init__(plan, stop)
            self.topic, self.expected = topic, expected
            self.applied = 0
            self.batches: list[int] = []
            self.apply_s = 0.0
            self.done_at: float | None = None
            self.consume_s = self.gc_s = self.cpu_s = self.machine_s = self.process_s = self.startup_s = 0.0

        def _watch_connector(self, client: Any) -> None:
            return  # this measurement has no connector

        def _apply_parts(self, applier: Any, parts: dict) -> None:
            started = time.perf_counter()
            super()._apply_parts(applier, parts)
            self.apply_s += time.perf_counter() - started  # on the apply thread, overlapping the decoding
            n = sum(len(p.events) for p in parts.values())
            self.batches.append(n)
            self.applied += n
            if self.applied >= self.expected and self.done_at is None:
                self.done_at = time.perf_counter()
                self.stop.set()

        def replay(self, profile: cProfile.Profile | None = None) -> float:
            """Seconds from the first consume until the commit that applied the last expected event."""
            self._learn_tables()  # converters from the source catalog, as run() does
            self._topics = {self.topic: next(iter(self._pairs))}  # the topic the Debezium run filled
            with PgApplier(self.plan.target, self.plan.pipeline_id, self._pairs) as applier:
                consumer = TimedConsumer(Consumer(consumer_config(self.plan.pipeline_id, self.settings), logger=log))
                gc_timer = GcTimer()
                try:
                    consumer.assign([TopicPartition(self.topic, 0, OFFSET_BEGINNING)])
                    began, cpu, counters = time.perf_counter(), time.thread_time(), cpu_counters()
                    gc.callbacks.append(gc_timer)
                    if profile:
                        profile.enable()
                    try:
                        self._consume(consumer, applier, None, {})
                    finally:
                        if profile:
                            profile.disable()
                        gc.callbacks.remove(gc_timer)
                        self.cpu_s = time.thread_time() - cpu
                        after = cpu_counters()
                        self.machine_s, self.process_s = after[0] - counters[0], after[1] - counters[1]
                finally:
                    consumer.close()
            if self.done_at is None:
                raise SystemExit(f"the consumer stopped after {self.applied:,} of {self.expected:,} events")
            self.consume_s, self.gc_s = consumer.seconds, gc_timer.seconds
            self.startup_s = (consumer.first_at or began) - began
            return self.done_at - began

    return ReplayWorker


@dataclass
class ConsumerAlone:
    consumer_s: float  # first consume() call -> the commit that applied the last event
    startup_s: float  # of which until the first messages were in hand (a fresh consumer's first fetch)
    apply_in_consumer_s: float  # in _apply_parts on the apply thread (applier, counters, monitoring), overlapping
    consume_s: float  # of which inside Consumer.consume() (waiting for fetches + building Message objects)
    gc_s: float  # cyclic GC runs during the consumer run (any thread)
    cpu_s: float  # CPU time of the consumer's thread
    process_s: float  # CPU time of this whole process (librdkafka's threads, the monitoring recorder, ...)
    machine_s: float  # CPU time of the whole machine (PostgreSQL, tansu, the JVM, anyone else's jobs)
    batches: list[int]


def consumer_alone(b: Bench, topic: str, expected: int) -> ConsumerAlone:
    """The app's consumer + applier on the filled topic, into an empty replay table."""
    reset(b, None, REPLAY_T)
    pid = b.new_pipeline("replay", KAFKA_T, REPLAY_T, "kafka_connect")
    stop = threading.Event()
    worker = replay_worker_class()(b.plan(pid, KAFKA_T, REPLAY_T, "kafka_connect"), stop, topic, expected)
    profile = cProfile.Profile() if b.profile else None
    seconds = worker.replay(profile)
    if profile:
        b.profiles.append(profile)
    verify(b, KAFKA_T, REPLAY_T, expected)
    return ConsumerAlone(
        seconds,
        worker.startup_s,
        worker.apply_s,
        worker.consume_s,
        worker.gc_s,
        worker.cpu_s,
        worker.process_s,
        worker.machine_s,
        worker.batches,
    )


@dataclass
class Limits:
    read_s: float  # bare confluent-kafka consume, from its first consume() call
    read_startup_s: float  # of which until the first messages were in hand
    json_s: float  # json.loads of every value
    decode_s: float  # the worker's _event on every message
    apply_s: float  # PgApplier.apply_streams of the decoded events, same batches


def limits(b: Bench, topic: str, expected: int, batches: list[int]) -> Limits:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    from core.cdc.applier import PgApplier
    from core.kafka.engine import KafkaCdcWorker, stream_name

    # read: the physical limit of getting the messages into this process
    consumer = Consumer(consumer_settings(b, f"bench-read-{secrets.token_hex(4)}"))
    messages: list[Any] = []
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        began = time.perf_counter()
        deadline, first = began + 120, None
        while len(messages) < expected:
            batch = consumer.consume(num_messages=5000, timeout=0.2)
            if batch and first is None:
                first = time.perf_counter()
            for m in batch:
                if m.error() is None and m.value() is not None:
                    messages.append(m)
            if time.perf_counter() > deadline:
                raise SystemExit(f"bare read: {len(messages):,} of {expected:,} messages after 120 s")
        read_s = time.perf_counter() - began
        read_startup_s = (first or began) - began
    finally:
        consumer.close()

    values = [m.value() for m in messages]
    loads = json.loads
    began = time.perf_counter()
    for v in values:
        loads(v)
    json_s = time.perf_counter() - began

    # decode: the worker's own message -> ChangeEvent step (needs its converters)
    pid = b.new_pipeline("limits", KAFKA_T, APPLY_T, "kafka_connect")
    worker = KafkaCdcWorker(b.plan(pid, KAFKA_T, APPLY_T, "kafka_connect"), threading.Event())
    worker._learn_tables()
    worker._topics = {topic: ("public", KAFKA_T)}
    event = worker._event
    began = time.perf_counter()
    events = [event(None, m) for m in messages]
    decode_s = time.perf_counter() - began

    # apply: the applier alone, in the batch sizes the consumer formed
    reset(b, None, APPLY_T)
    name = stream_name(topic, 0)
    with PgApplier(b.spec(DST), pid, worker._pairs) as applier:
        began = time.perf_counter()
        at = 0
        for size in batches or [len(events)]:
            chunk = events[at : at + size]
            if chunk:
                applier.apply_streams({name: (chunk, chunk[-1].position)})
            at += size
        if at < len(events):
            applier.apply_streams({name: (events[at:], events[-1].position)})
        apply_s = time.perf_counter() - began
    verify(b, KAFKA_T, APPLY_T, expected)
    return Limits(read_s, read_startup_s, json_s, decode_s, apply_s)


# ------------------------------------------------------------------------------------ report


def run_round(b: Bench, i: int, args: argparse.Namespace) -> dict[str, Any]:
    n = args.rows
    kafka_first = i % 2 == 1
    print(f"round {i}{' (kafka first)' if kafka_first else ' (embedded first)'}:", flush=True)
    out: dict[str, Any] = {}
    for engine in ("kafka_connect", "embedded") if kafka_first else ("embedded", "kafka_connect"):
        out[engine] = end_to_end(b, engine, n)
    k, e = out["kafka_connect"], out["embedded"]
    line = (
        f"  E one {n:,}-row transaction, COMMIT -> all on target:  kafka {n / k.seconds:>8,.0f} rows/s "
        f"({k.seconds:6.2f} s)   embedded {n / e.seconds:>8,.0f} rows/s ({e.seconds:6.2f} s)   "
        f"kafka/embedded {e.seconds / k.seconds:.2f}"
    )
    print(line, flush=True)
    if k.all_in_kafka_s:
        print(
            f"    Debezium -> Kafka: first message {k.first_in_kafka_s:.2f} s after COMMIT, "
            f"last {k.all_in_kafka_s:.2f} s ({n / k.all_in_kafka_s:,.0f} events/s); the app applied the last row "
            f"{k.seconds - k.all_in_kafka_s:.2f} s after it reached Kafka "
            f"(kafka engine / Debezium delivery {k.all_in_kafka_s / k.seconds:.2f})",
            flush=True,
        )
    print(
        f"    setup: kafka {k.setup_s:.1f} s to stream + {k.warmup_s:.1f} s first row; "
        f"embedded {e.setup_s:.1f} s + {e.warmup_s:.2f} s",
        flush=True,
    )

    expected = n + 1
    replays: list[ConsumerAlone] = []
    lims: list[Limits] = []
    for r in range(args.replays):
        c = consumer_alone(b, k.topic, expected)
        lim = limits(b, k.topic, expected, c.batches)
        replays.append(c)
        lims.append(lim)
        steady, read_steady = c.consumer_s - c.startup_s, lim.read_s - lim.read_startup_s
        print(
            f"  C consumer alone #{r + 1}: {expected / steady:>7,.0f} events/s from the first message in hand "
            f"({steady:4.2f} s; {expected / c.consumer_s:,.0f}/s with the {c.startup_s:4.2f} s first fetch): "
            f"consume() {c.consume_s - c.startup_s:4.2f}, rest {steady - (c.consume_s - c.startup_s):4.2f}, "
            f"_apply_parts (apply thread, overlapping) {c.apply_in_consumer_s:4.2f}; GC {c.gc_s:4.2f}; "
            f"CPU: thread {c.cpu_s:4.2f}, process {c.process_s:4.2f}, machine {c.machine_s:4.2f}; "
            f"{len(c.batches)} batches",
            flush=True,
        )
        print(
            f"       alone: read {expected / read_steady:>7,.0f}/s ({expected / lim.read_s:,.0f}/s with the "
            f"{lim.read_startup_s:4.2f} s first fetch)   json.loads {expected / lim.json_s:>7,.0f}/s   "
            f"decode {expected / lim.decode_s:>7,.0f}/s   apply {expected / lim.apply_s:>7,.0f}/s",
            flush=True,
        )
    out["consumer"] = replays
    out["limits"] = lims
    return out


def summary(rounds: list[dict[str, Any]], args: argparse.Namespace, server: str, stack_s: float) -> None:
    n = args.rows
    expected = n + 1

    def med(values: list[float]) -> float:
        return statistics.median(values)

    kafka = med([r["kafka_connect"].seconds for r in rounds])
    emb = med([r["embedded"].seconds for r in rounds])
    delivered = [r["kafka_connect"].all_in_kafka_s for r in rounds if r["kafka_connect"].all_in_kafka_s]
    cs = [c for r in rounds for c in r["consumer"]]
    total, startup, inapply, gcs, cpu, proc, machine = (
        med([getattr(c, f) for c in cs])
        for f in ("consumer_s", "startup_s", "apply_in_consumer_s", "gc_s", "cpu_s", "process_s", "machine_s")
    )
    cons = med([c.consumer_s - c.startup_s for c in cs])  # steady: from the first message in hand
    inconsume = med([c.consume_s - c.startup_s for c in cs])
    loop = med([c.consumer_s - c.consume_s for c in cs])  # decoding, and waits for the apply thread
    lims = [lim for r in rounds for lim in r["limits"]]
    js, dec, app, read_total, read_startup = (
        med([getattr(x, f) for x in lims]) for f in ("json_s", "decode_s", "apply_s", "read_s", "read_startup_s")
    )
    read = med([x.read_s - x.read_startup_s for x in lims])
    replays = len(lims)

    print()
    print(
        f"median of {len(rounds)} round(s) ({replays} consumer-alone runs); {server}; Kafka: tansu + Connect 4.3 "
        f"+ Debezium 3.6 (JVM {args.jvm}), started in {stack_s:.1f} s; everything on this {os.cpu_count()}-core "
        "machine"
    )
    print(f"{'measurement':<62} {'rate':>16} {'seconds':>8}  ratio")
    print("-" * 104)
    print(f"{f'E embedded engine, {n:,}-row transaction':<62} {n / emb:>11,.0f} /s {emb:>8.2f}")
    print(f"{'E kafka engine, same workload':<62} {n / kafka:>11,.0f} /s {kafka:>8.2f}  {emb / kafka:.2f} of embedded")
    if delivered:
        d = med(delivered)
        print(
            f"{'  Debezium alone: COMMIT -> last message in Kafka':<62} {n / d:>11,.0f} /s {d:>8.2f}  "
            f"kafka engine at {d / kafka:.2f} of Debezium's delivery"
        )
    goal = "met" if expected / cons >= GOAL_CONSUMER else "NOT met"
    label = f"C consumer alone, {expected:,} messages: first in hand -> applied"
    print(f"{label:<62} {expected / cons:>11,.0f} /s {cons:>8.2f}  goal >= {GOAL_CONSUMER:,}/s {goal}")
    print(
        f"{'  the same with the fresh consumer first fetch':<62} {expected / total:>11,.0f} /s {total:>8.2f}  "
        f"(first fetch {startup:.2f} s: once per consumer start)"
    )
    print("  where the consumer's time goes, from the first message in hand (measured inside the run above):")
    for label, secs in (
        ("inside Consumer.consume() (fetch wait + Message objects)", inconsume),
        ("loop: _event decode + grouping + waits for the apply thread", loop),
        ("_apply_parts on the apply thread (overlaps the loop)", inapply),
        ("cyclic GC, counted inside the above", gcs),
    ):
        print(f"    {label:<58} {'':>14} {secs:>8.2f}  {secs / cons:.0%}")
    cores = os.cpu_count() or 1
    print(
        f"    {'CPU time of the consumer thread (whole run)':<58} {'':>14} {cpu:>8.2f}  {cpu / total:.0%} of its "
        "wall time"
    )
    print(
        f"    {'CPU time of this process (+ librdkafka, monitoring threads)':<58} {'':>14} {proc:>8.2f}  "
        f"{proc / total:.2f} cores"
    )
    if machine:
        print(
            f"    {'CPU time of the machine (PostgreSQL, tansu, JVM, others)':<58} {'':>14} {machine:>8.2f}  "
            f"{machine / total:.2f} of {cores} cores busy"
        )
    print("  limits, each alone on the same messages:")
    print(
        f"    {'bare confluent-kafka read, first in hand -> last':<58} {expected / read:>9,.0f} /s {read:>8.2f}  "
        f"consumer at {read / cons:.2f} of it (1.00 = applies as fast as Kafka can be read)"
    )
    print(
        f"    {'  the same with its first fetch':<58} {expected / read_total:>9,.0f} /s {read_total:>8.2f}  "
        f"(first fetch {read_startup:.2f} s)"
    )
    for label, secs in (
        ("json.loads", js),
        ("decode: the worker's _event (json.loads + TableConverter)", dec),
        ("PgApplier.apply_streams, same batches", app),
    ):
        print(f"    {label:<58} {expected / secs:>9,.0f} /s {secs:>8.2f}  {secs / cons:.0%} of the consumer's time")


def print_profiles(b: Bench) -> None:
    if not b.profiles:
        return
    stats = pstats.Stats(b.profiles[0], stream=io.StringIO())
    for p in b.profiles[1:]:
        stats.add(p)
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        stats.stream = out
        stats.sort_stats(order).print_stats(25)
        print(f"\n===== cProfile of the consumer-alone runs, by {order} =====")
        print("\n".join(line for line in out.getvalue().splitlines() if line.strip()))


def cleanup(b: Bench) -> None:
    """Stop the workers; delete every connector of this run (and its offsets), slot and publication."""
    from core.kafka.engine import connect_client, delete_connector

    for w in list(b.workers):
        w.stop.set()
    for w in list(b.workers):
        if w.thread is not None:
            w.thread.join(30)
    for pid in b.pipelines:
        with contextlib.suppress(Exception):
            drop_pipeline(b, pid, kafka=False)
    with contextlib.suppress(Exception):
        from core.kafka import debezium

        with connect_client() as client:
            for name in client.connectors():
                pid = debezium.parse_connector_name(name)
                if pid is not None:
                    delete_connector(pid)
    left_connectors = "?"
    with contextlib.suppress(Exception):
        with connect_client() as client:
            left_connectors = str(len(client.connectors()))
    with contextlib.suppress(Exception):
        for (slot,) in b.q(b.src, "SELECT slot_name FROM pg_replication_slots"):
            from core.cdc import pg_source

            pg_source.drop_slot(b.spec(SRC), slot)
        for (pub,) in b.q(b.src, "SELECT pubname FROM pg_publication"):
            b.q(b.src, f'DROP PUBLICATION "{pub}"')
    left = b.q(b.src, "SELECT (SELECT count(*) FROM pg_replication_slots), (SELECT count(*) FROM pg_publication)")[0]
    print(f"cleanup: {left_connectors} connectors, {left[0]} slots, {left[1]} publications left")
    with contextlib.suppress(Exception):
        from core import monitoring

        monitoring.flush(5)
    b.src.close()
    b.dst.close()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000, help="rows of the timed INSERT transaction")
    parser.add_argument("--rounds", type=int, default=1, help="measure everything this many times (medians)")
    parser.add_argument("--replays", type=int, default=3, help="consumer-alone runs per round")
    parser.add_argument(
        "--jvm",
        choices=("jit", "fast-start"),
        default="jit",
        help="Connect worker JVM: full JIT (default) or the tests' C1-only fast start",
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the consumer-alone runs (slows them)")
    args = parser.parse_args()
    if args.rows < 1 or args.rounds < 1 or args.replays < 1:
        parser.error("--rows, --rounds and --replays must be at least 1")

    began = time.perf_counter()
    signal.signal(signal.SIGTERM, _interrupt)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app_dir = Path(tempfile.mkdtemp(prefix="cdcstudio-bench-kafka-"))
    pg = PgCluster.start(extra_conf=CLUSTER_CONF)
    stack: KafkaStack | None = None
    b: Bench | None = None
    try:
        pg.create_database(SRC)
        pg.create_database(DST)
        t = time.perf_counter()
        stack = KafkaStack.start(jvm_opts=JIT_JVM_OPTS if args.jvm == "jit" else JVM_OPTS)
        stack_s = time.perf_counter() - t
        print(f"Kafka stack (tansu + Connect/Debezium, JVM {args.jvm}) started in {stack_s:.1f} s", flush=True)
        # The app's settings for this process: the stack, tansu-friendly consumer timings, a
        # throwaway data dir and an instance tag of its own (connector and topic names).
        os.environ.update(
            {
                "KAFKA_CONNECT_URL": stack.connect_url,
                "KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap,
                "KAFKA_SESSION_TIMEOUT_MS": "3000",
                "KAFKA_TOPIC_REPLICATION_FACTOR": "1",
                "CDC_STUDIO_INSTANCE": f"kb{secrets.token_hex(4)}",
                "CDC_STUDIO_DATA_DIR": str(app_dir),
            }
        )
        from core.config import get_settings

        get_settings.cache_clear()
        b = Bench(pg, stack, app_dir, args.profile)
        server = b.one(b.src, "SELECT 'PostgreSQL ' || current_setting('server_version')")
        setup(b)
        rounds = [run_round(b, i, args) for i in range(1, args.rounds + 1)]
        summary(rounds, args, server, stack_s)
        if args.profile:
            print("\n(consumer-alone figures above were taken under cProfile: slower than without it)")
            print_profiles(b)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            if b is not None:
                cleanup(b)
        finally:
            if stack is not None:
                stack.stop()
            pg.stop()
            shutil.rmtree(app_dir, ignore_errors=True)
            print(f"total time {time.perf_counter() - began:.0f} s", flush=True)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("interrupted (Ctrl-C or SIGTERM); everything the run made was removed", flush=True)
        sys.exit(130)
