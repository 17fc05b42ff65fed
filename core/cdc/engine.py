"""The embedded CDC engine for a PostgreSQL source: one worker thread per pipeline.

Order of work: checks (wal_level, replica identity) -> publication -> slot (with an exported
snapshot and a full load under it for FULL_LOAD_AND_CDC) -> stream. The stream is read in
whole source transactions, several small ones grouped per apply; each apply commits rows and
the source position together on the target, and only then is the position confirmed to the
source. Events go to monitoring (rollups, log, live feed); nothing here touches UI elements.

Two threads per pipeline: the worker's own reads and decodes the stream and confirms; an apply
thread applies the batches it hands over, in order, so decoding the next batch overlaps the
target's work on the previous one. A transaction larger than a batch is applied in parts as it
arrives, in one target transaction that commits with its position at its end.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from core import monitoring
from core.cdc import mssql_source, offsets, pg_source
from core.cdc.applier import ApplyStats, PgApplier
from core.cdc.events import ChangeEvent, row_count
from core.cdc.pgoutput import (
    Decoder,
    InsertRun,
    RawInsert,
    RelationChanged,
    StreamAbort,
    StreamStart,
    StreamStop,
    TxnEnd,
    settle,
)
from core.connectors import get_connector
from core.connectors.base import ConnectionSpec
from core.connectors.postgres import PostgresConnector
from core.errors import ObjectNotFound, StudioError, ValidationFailed
from core.events import Event, bus
from core.fullload import FullLoadResult, LoadOptions, TablePlan, TableProgress, pgsql, plan_target_ddl, run_full_load
from core.fullload.reconcile import reconcile_table
from core.plans import CdcPlan

log = logging.getLogger(__name__)

BATCH_EVENTS = 20_000  # apply at least this often (events), whatever the time
BATCH_SECONDS = 0.05  # ... or when the oldest unapplied transaction is this old
PART_EVENTS = 10_000  # a transaction larger than a batch is applied in parts of this many events as it arrives
CHECK_EVERY_S = 10.0  # look for dropped source tables
LAG_EVERY_S = 2.0
APPLY_AHEAD = 2  # decoded batches that may wait for the apply thread
WAIT_S = 0.2  # how long a blocked hand-over waits before it keeps the session alive and looks at stop

# A stream keeps up to a whole large transaction of ChangeEvents alive (GC-tracked objects); with the
# default gen-0 threshold (700) the collector ran full collections over them and the whole app many
# times per transaction (~0.3 s of 1 s decoding 200k rows). Raised once per process, not lowered again.
GC_GEN0_THRESHOLD = 20_000


class _Open:
    """A transaction being read: its changes (an InsertRun counts as its rows) and how many of them
    (`sent` items, `sent_rows` changes) were applied ahead as parts."""

    __slots__ = ("events", "rows", "sent", "sent_rows")

    def __init__(self) -> None:
        self.events: list[ChangeEvent] = []
        self.rows = 0
        self.sent = 0
        self.sent_rows = 0


class CdcFailed(StudioError):
    """The pipeline cannot go on without a person: the message says why and what to do."""


_CHANGES = (ChangeEvent, RawInsert, InsertRun)  # what the stream yields for row changes


def _raise_incomplete(result: FullLoadResult) -> None:
    failed = [t for t in result.tables if t.status == "FAILED"]
    reason = f"{failed[0].source}: {failed[0].error}" if failed else result.status.lower()
    raise CdcFailed(f"the full load before CDC did not complete ({reason})")


@dataclass
class CdcCounters:
    """Live figures of one worker (read by the status/lag API)."""

    events: int = 0
    inserts: int = 0
    updates: int = 0
    deletes: int = 0
    last_commit_time: datetime | None = None
    last_applied_at: datetime | None = None
    lag_bytes: int | None = None
    retained_wal_bytes: int | None = None
    seconds_behind: float = 0.0
    slot_active: bool | None = None
    started: float = field(default_factory=time.monotonic)


class CdcWorker:
    """Runs one pipeline's CDC until `stop` is set or something fails (then `error` says why)."""

    def __init__(
        self,
        plan: CdcPlan,
        stop: threading.Event,
        on_progress: Callable[[TableProgress], None] | None = None,
        on_streaming: Callable[[], None] | None = None,
        on_table: Callable[[str, str, str | None, int | None], None] | None = None,
    ) -> None:
        self.plan = plan
        self.stop = stop
        self.on_progress = on_progress or (lambda _tp: None)
        self.on_streaming = on_streaming or (lambda: None)
        # A table set aside or reloaded: on_table("schema.table", FAILED|COMPLETED, reason, apply-from LSN).
        self.on_table = on_table or (lambda _source, _status, _error, _since: None)
        self._skip: set[tuple[str, str]] = set(plan.refused)  # their changes are dropped, not applied
        self._since: dict[tuple[str, str], int] = dict(plan.since)  # changes of earlier commits are in the copy
        self.counters = CdcCounters()
        self.slot = plan.slot or pg_source.slot_name(plan.pipeline_id)
        self.publication = plan.slot or pg_source.publication_name(plan.pipeline_id)
        self.full_load_status: str | None = None
        self._pairs = {
            (t.source_schema, t.source_table): (t.target_schema, t.target_table)
            for t in plan.tables
            if (t.source_schema, t.source_table) not in plan.refused
        }
        self._parts: list[ChangeEvent] = []  # applied parts of a large transaction, awaiting its commit

    # ------------------------------------------------------------------ setup

    def tables(self) -> list[TablePlan]:
        """The plan's tables that have not been set aside."""
        return [t for t in self.plan.tables if (t.source_schema, t.source_table) in self._pairs]

    def check(self) -> None:
        """Refuse a source that cannot do CDC, with the fix in words."""
        if self.plan.source.kind == "sqlserver":
            problems = mssql_source.check_cdc(self.plan.source, list(self._pairs))
            if problems:
                raise CdcFailed("; ".join(problems))
            warning = mssql_source.agent_warning(self.plan.source)
            if warning:
                log.warning("pipeline %s: %s", self.plan.pipeline_id, warning)
            return
        problems = pg_source.check_wal_level(self.plan.source, self.slot)
        if problems:
            raise CdcFailed("; ".join(problems))
        for table, key in pg_source.primary_keys(self.plan.source, list(self._pairs)).items():
            if not key:
                self._fail_table(
                    table,
                    f"{table[0]}.{table[1]} has no primary key: CDC needs one to apply updates "
                    "and deletes on the target (ALTER TABLE ... ADD PRIMARY KEY), then retry the table",
                )
                continue
            for problem in pg_source.check_replica_identity(self.plan.source, [table]):
                self._fail_table(table, problem)

    def prepare(self) -> None:
        """Publication, slot and (FULL_LOAD_AND_CDC, first start) the full load under the slot's snapshot."""
        src = self.plan.source
        restart = pg_source.slot_status(src, self.slot) is not None
        if restart:  # tables set aside before stay aside (a retry reloads them); a new start loads them all
            for table in set(self.plan.failed_tables) - set(self.plan.reload):
                self._pairs.pop(table, None)
                self._skip.add(table)
        else:
            self._since.clear()
        pg_source.ensure_publication(src, self.publication, list(self._pairs))
        if restart:
            # A restart: continue from the slot and the target's stored position.
            self._reconcile_targets()
            self._reload_tables()
            return
        if self.plan.mode == "FULL_LOAD_AND_CDC":
            self._load_under_snapshot()
        else:
            self._create_missing_targets()
            pg_source.create_slot(src, self.slot)

    def _load_under_snapshot(self) -> None:
        options = LoadOptions(auto_create=self.plan.auto_create, target_table_policy=self.plan.target_table_policy)
        with pg_source.create_slot_with_snapshot(self.plan.source, self.slot) as handle:
            options = replace(options, snapshot_id=handle.snapshot_name)
            self.full_load_status = "RUNNING"
            result = run_full_load(
                self.plan.source, self.plan.target, self.tables(), options, self.on_progress, self.stop
            )
        self.full_load_status = result.status
        if result.status != "COMPLETED" and not self._set_aside_failed(result):
            # Without a complete copy the slot's position is meaningless: drop it so a new start reloads.
            pg_source.drop_slot(self.plan.source, self.slot)
            _raise_incomplete(result)

    def _create_missing_targets(self) -> None:
        """CDC_ONLY applies changes to existing tables; with auto-create, empty ones are created first."""
        target = PostgresConnector(self.plan.target)
        for plan in self.tables():
            existing = {t.name for t in _tables_or_empty(target, plan.target_schema)}
            try:
                if plan.target_table in existing:
                    continue
                if not self.plan.auto_create:
                    raise CdcFailed(
                        f"target table {plan.target_schema}.{plan.target_table} does not exist and auto-create is off"
                    )
                _execute(self.plan.target, plan_target_ddl(self.plan.source, self.plan.target, plan))
            except StudioError as exc:
                self._fail_table((plan.source_schema, plan.source_table), str(exc))

    # ------------------------------------------------------------------ one table's failure is that table's

    def _set_aside_failed(self, result: FullLoadResult) -> bool:
        """After a full load with FAILED tables: with on_table_error `continue` (and something loaded), set
        them aside and go on streaming the others (True); otherwise False."""
        failed = [t for t in result.tables if t.status == "FAILED"]
        if self.plan.on_table_error != "continue" or result.status != "FAILED" or len(failed) == len(result.tables):
            return False
        for t in failed:
            schema, _, table = t.source.partition(".")
            self._fail_table((schema, table), t.error or "the full load failed", announce=False)
        self.full_load_status = "COMPLETED"  # of the tables that go on; the failed ones say FAILED
        return True

    def _fail_table(self, source: tuple[str, str], reason: str, announce: bool = True) -> None:
        """Set one table aside (its changes are dropped from now on) or, with on_table_error `stop`, stop."""
        label = f"{source[0]}.{source[1]}"
        if self.plan.on_table_error != "continue":
            raise CdcFailed(f"{label}: {reason}")
        if source not in self._pairs:
            return
        del self._pairs[source]
        self._skip.add(source)
        if not self._pairs:
            raise CdcFailed(f"every table failed; {label}: {reason}")
        log.warning("pipeline %s: table %s set aside: %s", self.plan.pipeline_id, label, reason)
        if announce:
            self.on_table(label, "FAILED", reason, None)
        bus.publish(
            Event("pipeline.table", {"table": label, "status": "FAILED", "error": reason}, self.plan.pipeline_id)
        )

    def _reload_tables(self) -> None:
        """Tables asked to be loaded again alone (a retry): each under the snapshot of a temporary slot; its
        changes then apply from that slot's consistent point, the others' stream goes on from the stored one."""
        for source in self.plan.reload:
            if self.stop.is_set() or source not in self._pairs:
                continue
            plan = next(t for t in self.plan.tables if (t.source_schema, t.source_table) == source)
            options = LoadOptions(
                auto_create=self.plan.auto_create, target_table_policy="truncate", schema_drift=self.plan.schema_drift
            )
            with pg_source.create_slot_with_snapshot(self.plan.source, f"{self.slot}_reload", temporary=True) as handle:
                result = run_full_load(
                    self.plan.source,
                    self.plan.target,
                    [plan],
                    replace(options, snapshot_id=handle.snapshot_name),
                    self.on_progress,
                    self.stop,
                )
            if result.status == "COMPLETED":
                self._since[source] = handle.consistent_point
                self.on_table(plan.source, "COMPLETED", None, handle.consistent_point)
            elif result.status == "FAILED":
                self._fail_table(source, result.tables[0].error or "the reload failed")

    def _reconcile_targets(self) -> None:
        """A restart: the source may have changed while the pipeline was down; fit the existing targets."""
        for plan in self.tables():
            source = (plan.source_schema, plan.source_table)
            if source in self._skip:
                continue
            try:
                notes = reconcile_table(self.plan.source, self.plan.target, plan, drift=self.plan.schema_drift)
            except ObjectNotFound:
                continue  # not created yet (a failed first start): the load or CDC_ONLY creates it
            except StudioError as exc:
                self._fail_table(source, str(exc))
                continue
            for note in notes:
                log.info("pipeline %s: %s: %s", self.plan.pipeline_id, plan.source, note)

    # ------------------------------------------------------------------ streaming

    def finish(self, paused: bool) -> None:
        """After `run` returned because of a stop or pause: nothing to do here (the slot keeps the changes);
        engines with outside parts (the Kafka Connect connector) pause or stop them."""

    def run(self) -> None:
        """Check, prepare, then stream and apply until stopped. Raises on failure."""
        if self.plan.source.kind == "sqlserver":
            self.check()
            self._run_sqlserver()
            return
        with pg_source.shared_session(self.plan.source):  # one source session for the checks and setup
            self.check()
            self.prepare()
            if self.stop.is_set():
                return
            keys = pg_source.primary_keys(self.plan.source, list(self._pairs))
        _raise_gc_threshold()
        with (
            PgApplier(
                self.plan.target, self.plan.pipeline_id, self._pairs, lenient=self.plan.schema_drift == "ignore"
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
            self._loop(applier, stream)

    def _run_sqlserver(self) -> None:
        """SQL Server: read the CDC change tables from the max LSN read before the full load.

        The full load is not a snapshot at that LSN: changes committed while it copies are read
        again afterwards. Applying them again converges (inserts and updates are upserts of the
        whole row, deletes by key), so the target ends equal to the source.
        """
        src = self.plan.source
        stored = _stored_offset(self.plan.target, self.plan.pipeline_id, "mssql")
        start = stored
        if stored is None:
            start = self._first_max_lsn()  # before the load: nothing committed after it is missed
            if self.plan.mode == "FULL_LOAD_AND_CDC":
                options = LoadOptions(
                    auto_create=self.plan.auto_create, target_table_policy=self.plan.target_table_policy
                )
                self.full_load_status = "RUNNING"
                result = run_full_load(src, self.plan.target, self.tables(), options, self.on_progress, self.stop)
                self.full_load_status = result.status
                if result.status != "COMPLETED" and not self._set_aside_failed(result):
                    _raise_incomplete(result)
            else:
                self._create_missing_targets()
        if self.stop.is_set():
            return
        with PgApplier(self.plan.target, self.plan.pipeline_id, self._pairs, source="mssql") as applier:
            if stored is None and start:
                applier.apply([], start)  # the start position survives a crash before the first change
            with mssql_source.MssqlCdcStream(src, self._source_keys(), idle_txn_end=True) as stream:
                stream.start(start or 0)  # strictly after the stored LSN
                self.on_streaming()
                self._loop(applier, stream)

    def _first_max_lsn(self, timeout_s: float = 120.0) -> int:
        """The change tables' max LSN; right after CDC is enabled it is NULL until the capture job's first scan."""
        deadline = time.monotonic() + timeout_s
        while True:
            lsn = mssql_source.max_lsn(self.plan.source)
            if lsn or self.stop.is_set():
                return lsn
            if time.monotonic() > deadline:
                raise CdcFailed(
                    "SQL Server's CDC capture job has not captured anything yet (sys.fn_cdc_get_max_lsn() "
                    "is NULL): make sure SQL Server Agent runs, then start again"
                )
            time.sleep(1.0)

    def _source_keys(self) -> dict[tuple[str, str], list[str]]:
        src = get_connector(self.plan.source)
        return {(s, t): src.table_detail(self.plan.source.database, s, t).primary_key for s, t in self._pairs}

    def _loop(self, applier: PgApplier, stream: pg_source.LogicalStream) -> None:
        """Read whole transactions into batches and hand them to the apply thread; confirm what it applied."""
        applying = _ApplyThread(lambda batch, last: self._work(applier, batch, last), self.plan.pipeline_id)
        try:
            self._stream(applier, stream, applying)
        finally:
            applying.close()

    def _stream(self, applier: PgApplier, stream: pg_source.LogicalStream, applying: _ApplyThread) -> None:
        """Group the stream's transactions into batches for the apply thread; apply large ones in parts.

        A transaction's events are kept until it commits. Parts: the events of one large transaction
        (whole, or streamed while in progress) may be applied ahead in the apply thread's open target
        transaction, which then commits with that transaction. When another transaction commits first
        (streamed ones interleave with others), or a schema change needs the target, the parts are
        rolled back and the events applied again later; a streamed transaction whose parts were rolled
        back is then applied whole at its commit. Sizes count changes: an InsertRun counts its rows.
        """
        txn = _Open()  # the (not streamed) transaction being read
        streams: dict[int, _Open] = {}  # streamed transactions in progress, by xid
        unparted: set[int] = set()  # streamed transactions whose parts were rolled back
        into = txn  # where the next change goes
        parts: _Open | None = None  # the transaction whose first `sent` items are applied as parts
        batch: list[ChangeEvent] = []
        batch_rows = 0
        last: TxnEnd | None = None
        submitted = stream.confirmed_lsn  # end LSN of the last transaction handed to the apply thread
        batch_since = 0.0
        # The tables were checked just before streaming; the first lag is measured once under way.
        next_check, next_lag = time.monotonic() + CHECK_EVERY_S, time.monotonic() + LAG_EVERY_S / 4
        keepalive = getattr(stream, "keepalive", lambda: None)
        skip = self._skip  # tables set aside: mutated in place when another one fails

        def confirm(done: list[TxnEnd]) -> None:
            for end in done:
                stream.confirm(end.end_lsn)

        def wait() -> bool:  # while the apply thread is busy: keep the session alive, confirm, honour stop
            keepalive()
            confirm(applying.applied())
            return not self.stop.is_set()

        def hand_over() -> bool:
            """Submit the complete transactions read so far (rows and position committed together)."""
            nonlocal batch, batch_rows, last, submitted
            if last is not None:
                if not applying.submit(batch, last, wait):
                    return False
                submitted, batch, batch_rows, last = last.end_lsn, [], 0, None
            return True

        def undo_parts() -> bool:
            """Roll back the applied parts (their events stay here, to be applied again)."""
            nonlocal parts
            if parts is None:
                return True
            unparted.update(xid for xid, open_ in streams.items() if open_ is parts)
            if not applying.submit(None, None, wait):
                return False
            parts.sent = parts.sent_rows = 0
            parts = None
            return True

        while not self.stop.is_set():
            confirm(applying.applied())
            items = stream.poll(timeout_s=0.2)
            for item in items:
                cls = type(item)
                if skip and cls in _CHANGES and (item.schema, item.table) in skip:
                    continue
                if cls is InsertRun:
                    into.events.append(item)
                    into.rows += len(item.messages)
                elif cls is ChangeEvent or cls is RawInsert:
                    into.events.append(item)
                    into.rows += 1
                elif cls is TxnEnd:
                    if item.streamed:
                        ended = streams.pop(item.xid, None) or _Open()
                        unparted.discard(item.xid)
                        settle(ended.events, item)
                    else:
                        ended, txn = txn, _Open()
                        into = txn
                    if parts is not None and parts is not ended and not undo_parts():
                        return
                    if self._since:
                        ended.events = self._after_since(ended.events, item.commit_lsn)
                    if not batch:
                        batch_since = time.monotonic()
                    if parts is ended:  # the parts commit with the rest of their transaction
                        batch.extend(ended.events[ended.sent :])
                        batch_rows += ended.rows - ended.sent_rows
                        parts = None
                    else:
                        batch.extend(ended.events)
                        batch_rows += ended.rows
                    last = item
                elif cls is StreamStart:
                    into = streams.get(item.xid) or streams.setdefault(item.xid, _Open())
                elif cls is StreamStop:
                    into = txn
                elif cls is StreamAbort:
                    aborted = streams.get(item.xid)
                    if aborted is None:
                        continue
                    if parts is aborted and not undo_parts():
                        return
                    if item.subxid == item.xid:
                        del streams[item.xid]
                        unparted.discard(item.xid)
                    else:
                        aborted.events = [e for e in aborted.events if e.xid != item.subxid]
                        aborted.rows = row_count(aborted.events)
                elif cls is RelationChanged and item.previous is not None:
                    if not hand_over():
                        return
                    if not undo_parts():  # the parts' open target transaction would block the DDL
                        return
                    if not applying.wait_idle(confirm, wait):
                        return
                    self._evolve(applier, item)
            grow = self._part_candidate(txn, streams, unparted, parts)
            if grow is not None and grow.rows - grow.sent_rows >= PART_EVENTS:
                if not hand_over():
                    return
                if not applying.submit(grow.events[grow.sent :], None, wait):
                    return
                parts, grow.sent, grow.sent_rows = grow, len(grow.events), grow.rows
            now = time.monotonic()
            # While catching up (a poll stopped at its message limit) batches grow to BATCH_EVENTS.
            young = not getattr(stream, "caught_up", True) or now - batch_since < BATCH_SECONDS
            due = batch_rows >= BATCH_EVENTS or (batch and not young) or not items
            if last is not None and due and (batch or last.end_lsn > submitted) and not hand_over():
                return
            if now >= next_check:
                self._check_tables()
                next_check = now + CHECK_EVERY_S
            if now >= next_lag:
                self._measure_lag()
                next_lag = now + LAG_EVERY_S

    def _after_since(self, events: list, commit_lsn: int) -> list:
        """A transaction's changes without those of reloaded tables that their copy already holds."""
        since = self._since
        kept = [e for e in events if commit_lsn >= since.get((e.schema, e.table), 0)]
        if self.stop.is_set() or all(commit_lsn >= lsn for lsn in since.values()):
            since.clear()  # the stream is past every reload point: nothing more to filter
        return kept

    def _part_candidate(
        self, txn: _Open, streams: dict[int, _Open], unparted: set[int], parts: _Open | None
    ) -> _Open | None:
        """The transaction whose events may be applied ahead in parts now, if any: a large one being read
        whole, or the only streamed one in progress (several interleave: one would undo the others' parts)."""
        if self._since:  # a reloaded table's changes are filtered at their commit: no parts meanwhile
            return None
        if txn.rows >= BATCH_EVENTS and (parts is None or parts is txn):
            return txn
        if len(streams) == 1:
            xid, open_ = next(iter(streams.items()))
            if xid not in unparted and (parts is None or parts is open_):
                return open_
        return None

    def _work(self, applier: PgApplier, batch: list[ChangeEvent] | None, last: TxnEnd | None) -> None:
        """One job of the apply thread: a batch to commit, a part of a large transaction, or undo the parts."""
        if last is not None:
            parts, self._parts = self._parts, []
            self._commit(applier, batch or [], last, parts)
        elif batch is not None:
            applier.apply_part(batch)
            self._parts.extend(batch)  # counted and recorded when their transaction commits
        else:
            applier.rollback()
            self._parts = []

    def _commit(
        self, applier: PgApplier, batch: list[ChangeEvent], last: TxnEnd, parts: list[ChangeEvent] | None = None
    ) -> None:
        """Apply a batch (rows and position in one target transaction, with the `parts` applied before
        it), then count and record all of it."""
        stats = None
        had_parts = bool(parts)
        if self._skip and (batch or parts):
            batch = [e for e in batch if (e.schema, e.table) not in self._skip]
            parts = [e for e in parts or [] if (e.schema, e.table) not in self._skip]
        if batch or had_parts or self.plan.source.kind == "sqlserver":
            # SQL Server has no slot: the target's offset is the only position kept, so it follows even
            # transactions of other tables, or a quiet pipeline would fall behind the CDC cleanup job.
            stats = self._apply(applier, batch, last.commit_lsn, parts or [])
        if parts:
            batch = parts + batch
        if not batch or stats is None:
            return
        c = self.counters
        c.inserts += stats.inserts
        c.updates += stats.updates
        c.deletes += stats.deletes
        c.events += stats.events
        c.last_commit_time = last.commit_time
        c.last_applied_at = datetime.now(UTC)
        c.seconds_behind = max(0.0, (c.last_applied_at - last.commit_time).total_seconds())
        if stats.events:  # not a batch read again after a crash (the applier skipped it: counted before)
            monitoring.record_applied(self.plan.pipeline_id, batch, c.last_applied_at, stats.by_table)

    def _apply(self, applier: PgApplier, batch: list[ChangeEvent], lsn: int, parts: list[ChangeEvent]) -> ApplyStats:
        """Apply a batch (after its `parts`, applied ahead in the open target transaction); when it fails and a
        failing table may be set aside, apply all of it again table by table (the failure discarded the parts)."""
        try:
            return applier.apply(batch, lsn)
        except StudioError as exc:
            if self.plan.on_table_error != "continue" or getattr(exc, "transient", False) or not batch:
                raise
            log.warning("pipeline %s: a batch failed (%s); applying it table by table", self.plan.pipeline_id, exc)
        stats, failed = applier.apply_isolated(parts + batch, lsn)
        for source, reason in failed.items():
            self._fail_table(source, f"applying a change failed: {reason}")
        return stats

    # ------------------------------------------------------------------ schema changes, dropped tables, lag

    def _evolve(self, applier: PgApplier, change: RelationChanged) -> None:
        """A source table's columns changed: fit its target as the drift policy says (core.fullload.reconcile).

        `propagate_columns` adds new columns (with their defaults, domains and enums), follows type
        changes and lets dropped columns go NULL; `ignore` leaves the target as it is (values of columns
        it lacks are dropped); `stop_table` sets the table aside with the difference as its reason.
        """
        key = (change.schema, change.table)
        if key not in self._pairs or not (change.added or change.removed or change.retyped):
            return
        where = f"{change.schema}.{change.table}"
        if not self.plan.auto_create and change.added and self.plan.schema_drift == "propagate_columns":
            self._fail_table(
                key,
                f"new column(s) {', '.join(change.added)}; add them to the target or turn "
                "auto-create on, then retry the table",
            )
            return
        target_schema, target_table = self._pairs[key]
        plan = TablePlan(change.schema, change.table, target_schema, target_table)
        try:
            notes = reconcile_table(self.plan.source, self.plan.target, plan, drift=self.plan.schema_drift)
        except ValidationFailed as exc:
            self._fail_table(key, exc.message)
            return
        applier.refresh(key)
        if notes:
            log.info("pipeline %s: %s: %s", self.plan.pipeline_id, where, "; ".join(notes))
        bus.publish(
            Event(
                "pipeline.schema",
                {
                    "table": where,
                    "added": list(change.added),
                    "removed": list(change.removed),
                    "retyped": list(change.retyped),
                    "changes": notes,
                },
                self.plan.pipeline_id,
            )
        )

    def _check_tables(self) -> None:
        src = get_connector(self.plan.source)
        for schema in {s for s, _ in self._pairs}:
            present = {t.name for t in _tables_or_empty(src, schema)}
            for s, t in [k for k in self._pairs if k[0] == schema and k[1] not in present]:
                self._fail_table(
                    (s, t),
                    "the source table no longer exists; the target keeps its rows. Remove it "
                    "from the pipeline, or restore it and retry the table",
                )

    def _measure_lag(self) -> None:
        status = pg_source.slot_status(self.plan.source, self.slot) if self.plan.source.kind == "postgresql" else None
        c = self.counters
        if status is not None:
            c.lag_bytes, c.retained_wal_bytes = status["lag_bytes"], status["retained_wal_bytes"]
            c.slot_active = status["active"]
        bus.publish(Event("pipeline.lag", lag_dict(c), self.plan.pipeline_id))


class _ApplyThread:
    """Applies batches on a second thread, in order, while the worker's thread reads and decodes the next.

    The target's work (COPY, MERGE, commit) releases the GIL, so decoding goes on meanwhile; at
    most APPLY_AHEAD batches wait. Only the worker's thread touches the stream: it confirms each
    batch that `applied` reports, which is after the target committed its rows and position.
    """

    def __init__(self, commit: Callable[[list[ChangeEvent] | None, TxnEnd | None], None], pipeline_id: int) -> None:
        self._commit = commit
        self._todo: queue.Queue = queue.Queue(maxsize=APPLY_AHEAD)
        self._done: queue.SimpleQueue = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._closing = False
        self._pending = 0  # submitted, not yet reported by `applied`
        self._thread = threading.Thread(target=self._run, name=f"cdc-apply-{pipeline_id}", daemon=True)
        self._thread.start()

    def submit(self, batch: list[ChangeEvent] | None, last: TxnEnd | None, wait: Callable[[], bool]) -> bool:
        """Queue a job (see CdcWorker._work); while the queue is full call `wait` (False from it: give up)."""
        while True:
            self._raise()
            try:
                self._todo.put((batch, last), timeout=WAIT_S)
            except queue.Full:
                if not wait():
                    return False
                continue
            self._pending += 1
            return True

    def applied(self, timeout_s: float = 0.0) -> list[TxnEnd]:
        """The batches committed since the last call, in order, waiting up to `timeout_s` for one.

        Raises what the apply thread failed with once the batches it did commit were reported.
        """
        done = []
        try:
            done.append(self._done.get(timeout=timeout_s) if timeout_s > 0 else self._done.get_nowait())
            while True:
                done.append(self._done.get_nowait())
        except queue.Empty:
            pass
        self._pending -= len(done)
        if not done:
            self._raise()
        return [last for last in done if last is not None]  # parts have nothing to confirm

    def wait_idle(self, confirm: Callable[[list[TxnEnd]], None], wait: Callable[[], bool]) -> bool:
        """Until every submitted batch is applied and `confirm`ed; `wait` runs meanwhile and may give up."""
        while self._pending > 0:
            confirm(self.applied(WAIT_S))
            if self._pending > 0 and not wait():
                return False
        return True

    def close(self) -> None:
        """Finish the batch being applied, drop the waiting ones (they were not confirmed), end the thread."""
        self._closing = True
        with contextlib.suppress(queue.Full):
            self._todo.put_nowait(None)
        self._thread.join()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while not self._closing:
            try:
                job = self._todo.get(timeout=WAIT_S)
            except queue.Empty:
                continue
            if job is None or self._closing:
                return
            try:
                self._commit(*job)
            except BaseException as exc:  # noqa: BLE001 - raised on the worker's thread
                self._error = exc
                return
            self._done.put(job[1])


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


def _tables_or_empty(connector, schema: str) -> list:  # noqa: ANN001 - any Connector
    try:
        return connector.list_tables(connector.spec.database, schema)
    except StudioError as exc:
        if getattr(exc, "kind", "") == "object_not_found":
            return []
        raise


def _execute(spec: ConnectionSpec, statements: list) -> None:
    """Run DDL statements in one transaction on a database."""
    conn = pgsql.connect(spec)
    try:
        with pgsql.pg_errors(spec), conn.cursor() as cur:
            cur.execute("BEGIN")
            for statement in statements:
                cur.execute(statement)
            cur.execute("COMMIT")
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
