"""The embedded CDC engine (PostgreSQL logical replication, SQL Server CDC): one worker thread per pipeline.

A worker is composed of parts, each its own module: SourcePrep (core.cdc.prepare: checks ->
publication -> slot, with an exported snapshot and a full load under it for FULL_LOAD_AND_CDC),
a ChangeSource (the pgoutput stream or the SQL Server CDC reader), the TxnBatcher that groups
whole source transactions into batches (core.cdc.batcher), the apply loop (core.cdc.apply_loop:
each apply commits rows and the source position together on the target, and only then is the
position confirmed to the source) and the schema-evolution step (core.cdc.evolve). Applied
batches go to the injected ChangeSink (the monitoring recorder by default); nothing here
touches UI elements.

Two threads per pipeline: the worker's own reads and decodes the stream and confirms; an apply
thread applies the batches it hands over, in order, so decoding the next batch overlaps the
target's work on the previous one. A transaction larger than a batch is applied in parts as it
arrives, in one target transaction that commits with its position at its end.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import threading
import time
from collections.abc import Callable

from core import monitoring
from core.cdc import offsets, pg_source
from core.cdc.applier import PgApplier, SchemaMismatch
from core.cdc.apply_loop import ApplyThread, BatchApply, CdcCounters
from core.cdc.batcher import TxnBatcher
from core.cdc.evolve import SchemaEvolution
from core.cdc.mssql_source import MssqlCdcStream
from core.cdc.pgoutput import Decoder, RelationChanged
from core.cdc.prepare import CdcFailed, OnTable, SourcePrep, TableSet
from core.cdc.schema_watch import Change, SchemaWatch
from core.cdc.sink import ChangeSink
from core.cdc.source import ChangeSource
from core.cdc.tableload import TableLoad, TableLoads
from core.connectors.base import ConnectionSpec
from core.errors import Conflict, NotFound, SlotInvalidated, StudioError, is_transient
from core.events import Event, bus
from core.fullload import TablePlan, TableProgress, pgsql
from core.plans import CdcPlan

log = logging.getLogger(__name__)

__all__ = ["CdcCounters", "CdcFailed", "CdcWorker", "drop_source_objects", "forget_offsets", "lag_dict"]

CHECK_EVERY_S = 10.0  # look for dropped source tables
LAG_EVERY_S = 2.0

# A stream keeps up to a whole large transaction of ChangeEvents alive (GC-tracked objects); with the
# default gen-0 threshold (700) the collector ran full collections over them and the whole app many
# times per transaction (~0.3 s of 1 s decoding 200k rows). Raised once per process, not lowered again.
GC_GEN0_THRESHOLD = 20_000


class CdcWorker:
    """Runs one pipeline's CDC until `stop` is set or something fails (then `run` raises why)."""

    def __init__(
        self,
        plan: CdcPlan,
        stop: threading.Event,
        on_progress: Callable[[TableProgress], None] | None = None,
        on_streaming: Callable[[], None] | None = None,
        on_table: OnTable | None = None,
        *,
        sink: ChangeSink | None = None,
        on_schema: Callable[[list[Change], str, str], None] | None = None,
    ) -> None:
        self.plan = plan
        self.stop = stop
        self.on_streaming = on_streaming or (lambda: None)
        self.on_progress = on_progress or (lambda _tp: None)
        self.sink: ChangeSink = sink if sink is not None else monitoring.SINK
        self.tables = TableSet(plan, on_table)
        self.prep = SourcePrep(plan, stop, self.tables, on_progress)
        self.on_schema = on_schema or (lambda _changes, _action, _by: None)
        self.evolution = SchemaEvolution(self.tables, self.on_schema)
        self.loads: TableLoads | None = None  # tables loading while the stream goes on (PostgreSQL, once streaming)
        self._batcher: TxnBatcher | None = None
        self._applier: PgApplier | None = None
        self.counters = CdcCounters()
        self.slot, self.publication = self.prep.slot, self.prep.publication
        self.connector_status = None  # only the Kafka Connect engine has a connector

    @property
    def full_load_status(self) -> str | None:
        """None (no full load), RUNNING, or how the full load before CDC ended."""
        return self.prep.full_load_status

    def source_warning(self) -> str | None:
        """Nothing to warn about: this engine reads the source itself (it fails when it cannot)."""
        return None

    def check(self) -> None:
        """Refuse a source that cannot do CDC, with the fix in words (SourcePrep.check)."""
        self.prep.check()

    def finish(self, paused: bool) -> None:
        """After `run` returned because of a stop or pause: nothing to do here (the slot keeps the changes)."""

    # ------------------------------------------------------------------ running

    def run(self) -> None:
        """Check, prepare, then stream and apply until stopped. Raises on failure."""
        if self.plan.source.kind == "sqlserver":
            self.prep.check()
            self._run_sqlserver()
            return
        with pg_source.shared_session(self.plan.source):  # one source session for the checks and setup
            self.prep.check()
            self.prep.prepare()
            if self.stop.is_set():
                return
            keys = pg_source.primary_keys(self.plan.source, list(self.tables.pairs))
            watch = SchemaWatch(
                self.plan.source,
                [(t.source_schema, t.source_table) for t in self.plan.tables],
                self.plan.patterns,
                self.plan.exclude,
                self.plan.mappings,
            )
            watch.baseline()
            self.evolution.watch = watch
        _raise_gc_threshold()
        with (
            PgApplier(
                self.plan.target, self.plan.pipeline_id, self.tables.pairs, lenient=self.plan.schema_drift == "ignore"
            ) as applier,
            pg_source.LogicalStream(
                self.plan.source,
                self.slot,
                self.publication,
                decoder=Decoder(key_columns=keys, runs=True),
                stream_work_mem=pg_source.STREAM_WORK_MEM,
            ) as stream,
        ):
            stored = applier.stored_position()
            stream.start(start_lsn=stored + 1 if stored else 0)
            self.on_streaming()
            self._stream(applier, stream)

    def _run_sqlserver(self) -> None:
        """SQL Server: read the CDC change tables after the max LSN read before the full load (SourcePrep)."""
        stored = _stored_offset(self.plan.target, self.plan.pipeline_id, "mssql")
        start = self.prep.prepare_sqlserver(stored)
        if self.stop.is_set():
            return
        with PgApplier(self.plan.target, self.plan.pipeline_id, self.tables.pairs, source="mssql") as applier:
            if stored is None and start:
                applier.apply([], start)  # the start position survives a crash before the first change
            with MssqlCdcStream(self.plan.source, self.prep.source_keys(), idle_txn_end=True) as stream:
                stream.start(start or 0)  # strictly after the stored LSN
                self.on_streaming()
                self._stream(applier, stream)

    def _stream(self, applier: PgApplier, source: ChangeSource) -> None:
        """Batch the source's transactions for the apply thread until stopped; confirm what it applied."""
        postgres = self.plan.source.kind == "postgresql"
        work = BatchApply(
            applier,
            self.tables,
            self.counters,
            self.sink,
            every_commit=not postgres,
            on_replayed=self._replayed,
        )
        self._applier = applier
        if postgres:
            self.loads = TableLoads(self.plan, self.slot, self.stop, self._load_progress)
        applying = ApplyThread(work.work, self.plan.pipeline_id)
        # The tables were checked just before streaming; the first lag is measured once under way.
        now = time.monotonic()
        self._next_check, self._next_lag = now + CHECK_EVERY_S, now + LAG_EVERY_S / 4

        def on_relation(change: RelationChanged) -> None:
            key = (change.schema, change.table)
            self.evolution.evolve(applier, key, change.added, change.removed, change.retyped)

        def first_seen(change: RelationChanged) -> RelationChanged | None:
            """A relation first described with columns its target lacks: a change to evolve (else None)."""
            key = (change.schema, change.table)
            if key not in self.tables.pairs:
                return None
            try:
                target = applier.target_table(key)
            except SchemaMismatch:
                return None
            known = set(target.columns) | target.ignored
            added = tuple(n for n in change.relation.column_names if n not in known)
            return dataclasses.replace(change, added=added) if added else None

        batcher = TxnBatcher(
            source,
            applying,
            self.stop,
            skip=self.tables.skip,
            since=self.tables.since,
            on_relation=on_relation,
            first_seen=first_seen,
            tick=self._tick,
            loads=self.loads,
            on_hold=self._on_hold,
            on_load_failed=self._load_failed,
        )
        self._batcher = batcher
        try:
            batcher.run()
        finally:
            applying.close()
            if self.loads is not None:
                self.loads.close()

    # ------------------------------------------------------------------ tables loaded while streaming

    def load_table(self, source: str) -> None:
        """Copy one streamed table again while the others stream on (core.cdc.tableload); from any thread."""
        if self.loads is None:
            raise Conflict("the pipeline is not streaming yet; reload the table once it streams")
        plan = next((t for t in self.plan.tables if t.source == source), None)
        if plan is None or (plan.source_schema, plan.source_table) not in self.tables.pairs:
            raise NotFound(f"{source} is not streamed by this pipeline")
        self.loads.ask(plan)

    def _load_progress(self, tp: TableProgress) -> None:
        # The copy's end is not the table's: it is COMPLETED once its held changes are applied too (until then
        # a crash leaves it RUNNING, and the next start loads it again).
        self.on_progress(dataclasses.replace(tp, status="RUNNING") if tp.status in ("PENDING", "COMPLETED") else tp)

    def _on_hold(self, load: TableLoad) -> None:
        """A load starts (the batcher holds the table's changes now): a new table joins the pipeline first."""
        if load.new:
            self.tables.pairs[load.source] = (load.plan.target_schema, load.plan.target_table)
            self.tables.skip.discard(load.source)
            pg_source.ensure_publication(self.plan.source, self.publication, list(self.tables.pairs))
            if self.evolution.watch is not None:
                self.evolution.watch.watch(load.source)
        self.tables.on_table(load.label, "RUNNING", None, None)
        log.info("pipeline %s: loading %s while streaming", self.plan.pipeline_id, load.label)

    def _load_failed(self, load: TableLoad) -> None:
        self.tables.fail(load.source, f"loading the table while streaming failed: {load.error}")

    def _replayed(self, load: TableLoad) -> None:
        """On the apply thread: the table's copy and its held changes are on the target."""
        self.tables.on_table(load.label, "COMPLETED", None, load.consistent_point)
        log.info("pipeline %s: %s loaded while streaming (%s rows)", self.plan.pipeline_id, load.label, load.rows)

    # ------------------------------------------------------------------ the source's schema on a schedule

    def scan_schema(self) -> None:
        """Compare the source's catalog with the last one read and act on each change as the policy says."""
        watch = self.evolution.watch
        if watch is None:
            return
        changes, new = watch.scan()
        if not changes:
            return
        policy = self.plan.schema_drift
        if policy == "pause":
            self.evolution.pause(changes, "schedule")
        targets = dict(new)
        by_table: dict[str, list[Change]] = {}
        for change in changes:
            by_table.setdefault(change.table, []).append(change)
        for label, found in by_table.items():
            schema, _, name = label.partition(".")
            self._schema_changed((schema, name), label, found, policy, targets)

    def _schema_changed(
        self, key: tuple[str, str], label: str, found: list[Change], policy: str, targets: dict
    ) -> None:
        kinds = {c.kind for c in found}
        if "table_dropped" in kinds:
            reason = (
                "the source table no longer exists; the target keeps its rows. Remove it "
                "from the pipeline, or restore it and retry the table"
            )
            self._record(label, found, f"table set aside: {reason}")
            self.tables.fail(key, reason)
            return
        if "table_added" in kinds:
            if policy == "propagate_fully" and self.loads is not None:
                if not pg_source.primary_keys(self.plan.source, [key]).get(key):
                    advice = "CDC needs one to apply updates and deletes (ALTER TABLE ... ADD PRIMARY KEY)"
                    self._record(label, found, f"not streamed: the table has no primary key; {advice}")
                    return
                target = targets.get(key, key[1])
                self.loads.ask(TablePlan(key[0], key[1], self.plan.target_schema, target), new=True)
                where = f"{self.plan.target_schema}.{target}"
                self._record(label, found, f"creating {where}, loading it, then streaming it")
            else:
                advice = "add it to the pipeline's tables, or use propagate_fully"
                self._record(label, found, f"not streamed (policy {policy}): {advice}")
            return
        if key not in self.tables.pairs or (self.loads is not None and key in self.loads.held):
            self._record(label, found, "nothing done: the table is set aside or loading (the copy takes the change)")
            return
        if policy == "ignore":
            self._record(label, found, "ignored: the target stays as it is")
            return
        if policy == "stop_table":
            reason = "the source table changed: " + "; ".join(c.describe() for c in found)
            self._record(label, found, f"table set aside: {reason}")
            self.tables.fail(key, reason)
            return
        self._record(label, found, self._fit_target(key, found))

    def _fit_target(self, key: tuple[str, str], found: list[Change]) -> str:
        """propagate_*: fit the target now, with everything read before applied and nothing applied ahead."""
        batcher, applier = self._batcher, self._applier
        if batcher is None or applier is None or not batcher.quiesce():
            return "the target follows at the table's next change"
        try:
            notes = self.evolution.fit(key, found)
        except StudioError as exc:
            if is_transient(exc):  # a database went away: the pipeline's trouble (retried), not the table's
                raise
            self.tables.fail(key, f"fitting the target to a source schema change failed: {exc}")
            return f"table set aside: fitting the target failed: {exc}"
        applier.refresh(key)
        return "; ".join(notes) if notes else "the target already fits"

    def _record(self, label: str, found: list[Change], action: str) -> None:
        self.on_schema(found, action, "schedule")
        self.evolution.published(label, found, [action])

    def _tick(self, now: float) -> None:
        if now >= self._next_check:
            if self.evolution.watch is not None:
                self.scan_schema()
            else:
                self.tables.check_present()
            self._next_check = now + CHECK_EVERY_S
        if now >= self._next_lag:
            self.measure_lag()
            self._next_lag = now + LAG_EVERY_S

    def measure_lag(self) -> None:
        """Read the slot's lag (PostgreSQL) and publish the worker's figures; a slot the server invalidated
        (wal_status lost: its WAL was removed) ends the run, terminally — streaming on would skip changes."""
        status = publish_lag(self.plan, self.slot, self.counters)
        if status is not None and status.get("wal_status") == "lost":
            raise SlotInvalidated(
                f"replication slot {self.slot} was invalidated by the source (wal_status lost: the WAL it "
                "needed was removed, see max_slot_wal_keep_size)"
            )


def publish_lag(plan: CdcPlan, slot: str, c: CdcCounters) -> dict | None:
    """Read the slot's lag (PostgreSQL sources) into `c` and publish the figures (`pipeline.lag`); the slot's
    status (None: no slot, or not PostgreSQL)."""
    status = pg_source.slot_status(plan.source, slot) if plan.source.kind == "postgresql" else None
    if status is not None:
        c.lag_bytes, c.retained_wal_bytes = status["lag_bytes"], status["retained_wal_bytes"]
        c.slot_active = status["active"]
    bus.publish(Event("pipeline.lag", lag_dict(c), plan.pipeline_id))
    return status


def _raise_gc_threshold() -> None:
    """Make the cyclic collector's young generation GC_GEN0_THRESHOLD objects (see there), process-wide."""
    gen0, gen1, gen2 = gc.get_threshold()
    if 0 < gen0 < GC_GEN0_THRESHOLD:
        gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


def lag_dict(c: CdcCounters) -> dict:
    """Counts, rate and lag of a worker, as the API and pages show them."""
    elapsed = max(1e-6, time.monotonic() - c.started)
    return {
        "events": c.events,
        "insert_count": c.inserts,
        "update_count": c.updates,
        "delete_count": c.deletes,
        "events_per_second": round(c.events / elapsed, 2),
        "lag_bytes": c.lag_bytes,
        "retained_wal_bytes": c.retained_wal_bytes,
        "seconds_behind": round(c.seconds_behind, 3),
        "last_commit_time": c.last_commit_time.isoformat() if c.last_commit_time else None,
        "slot_active": c.slot_active,
    }


def _stored_offset(spec: ConnectionSpec, pipeline_id: int, source: str) -> int | None:
    """The target's stored position of one stream (None: nothing applied yet, or no offsets table)."""
    conn = pgsql.connect(spec)
    try:
        with pgsql.pg_errors(spec):
            return offsets.read_offset(conn, pipeline_id, source)
    finally:
        conn.close()


def forget_offsets(spec: ConnectionSpec, pipeline_id: int) -> None:
    """Remove a deleted pipeline's applied positions from its target (nothing else is kept there for it)."""
    conn = pgsql.connect(spec)
    try:
        with pgsql.pg_errors(spec), conn.cursor() as cur:
            offsets.delete_offsets(cur, pipeline_id)
    finally:
        conn.close()


def drop_source_objects(spec: ConnectionSpec, pipeline_id: int, slot: str | None = None) -> None:
    """Remove the pipeline's slot and publication from the source (retrying while the slot is active)."""
    pg_source.drop_slot_and_publication(
        spec, slot or pg_source.slot_name(pipeline_id), slot or pg_source.publication_name(pipeline_id)
    )
