"""The apply loop: batches applied on a second thread, in order, each reported to the ChangeSink.

`ApplyThread` runs the jobs the batcher hands over while the worker's thread reads and decodes
the next batch; `BatchApply` is the job: a batch to commit (rows and position in one target
transaction), a part of a large transaction applied ahead, or undoing those parts. A batch whose
apply fails is applied again table by table when a failing table may be set aside.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from core.cdc.applier import ApplyStats, PgApplier
from core.cdc.batcher import Replayed
from core.cdc.events import ChangeEvent
from core.cdc.pgoutput import TxnEnd
from core.cdc.prepare import TableSet
from core.cdc.sink import AppliedBatch, ChangeSink
from core.cdc.tableload import TableLoad
from core.errors import StudioError

log = logging.getLogger(__name__)

APPLY_AHEAD = 2  # decoded batches that may wait for the apply thread
WAIT_S = 0.2  # how long a blocked hand-over waits before it keeps the session alive and looks at stop


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

    def count(self, stats: ApplyStats, commit_time: datetime | None) -> datetime:
        """Add an applied batch; returns when it was applied."""
        self.inserts += stats.inserts
        self.updates += stats.updates
        self.deletes += stats.deletes
        self.events += stats.events
        self.last_applied_at = now = datetime.now(UTC)
        if commit_time is not None:
            self.last_commit_time = commit_time
            self.seconds_behind = max(0.0, (now - commit_time).total_seconds())
        return now


class BatchApply:
    """The apply thread's jobs for one pipeline: commit batches, apply parts ahead, undo parts."""

    def __init__(
        self,
        applier: PgApplier,
        tables: TableSet,
        counters: CdcCounters,
        sink: ChangeSink,
        *,
        every_commit: bool,
        on_replayed: Callable[[TableLoad], None] = lambda _load: None,
    ) -> None:
        self.applier = applier
        self.tables = tables
        self.plan = tables.plan
        self.counters = counters
        self.sink = sink
        # SQL Server has no slot: the target's offset is the only position kept, so it follows even
        # transactions of other tables, or a quiet pipeline would fall behind the CDC cleanup job.
        self.every_commit = every_commit
        self._parts: list[ChangeEvent] = []  # applied parts of a large transaction, awaiting its commit
        self.on_replayed = on_replayed  # a table loaded while streaming has its held changes applied

    def work(self, batch: list[ChangeEvent] | None, last: TxnEnd | Replayed | None) -> None:
        """One job: a batch to commit (`last` its end), a part of a large transaction, held changes of a table
        loaded while streaming (`last` a Replayed), or (both None) undo."""
        if isinstance(last, Replayed):
            self.replay(batch or [], last)
        elif last is not None:
            parts, self._parts = self._parts, []
            self.commit(batch or [], last, parts)
        elif batch is not None:
            self.applier.apply_part(batch)
            self._parts.extend(batch)  # counted and recorded when their transaction commits
        else:
            self.applier.rollback()
            self._parts = []

    def commit(self, batch: list[ChangeEvent], last: TxnEnd, parts: list[ChangeEvent] | None = None) -> None:
        """Apply a batch (rows and position in one target transaction, with the `parts` applied before
        it), then count it and report it to the sink."""
        stats = None
        had_parts = bool(parts)
        skip = self.tables.skip
        if skip and (batch or parts):
            batch = [e for e in batch if (e.schema, e.table) not in skip]
            parts = [e for e in parts or [] if (e.schema, e.table) not in skip]
        if batch or had_parts or self.every_commit:
            stats = self._apply(batch, last.commit_lsn, parts or [])
        if parts:
            batch = parts + batch
        if not batch or stats is None:
            return
        applied_at = self.counters.count(stats, last.commit_time)
        if stats.events:  # not a batch read again after a crash (the applier skipped it: counted before)
            self.sink.applied(
                AppliedBatch(
                    self.plan.pipeline_id,
                    batch,
                    applied_at,
                    stats.by_table,
                    position=last.commit_lsn,
                    seconds=stats.seconds,
                    commit_time=last.commit_time,
                )
            )

    def replay(self, events: list[ChangeEvent], job: Replayed) -> None:
        """Held changes of a table whose copy is done (core.cdc.tableload): applied in their own target
        transaction without the stored position's filter (they are older than it), the position unchanged."""
        load = job.load
        try:
            if load.new:
                self.applier.add_table(load.source, (load.plan.target_schema, load.plan.target_table))
            elif load.source in self.tables.pairs:
                self.applier.refresh(load.source)  # the copy may have fitted the target's columns
        except StudioError as exc:
            if getattr(exc, "transient", False):
                raise
            self.tables.fail(load.source, f"the loaded table cannot be streamed: {exc}")
            return
        if events and load.source not in self.tables.skip:
            stats = self.applier.apply_unfiltered(events)
            self.counters.count(stats, None)
        if job.last:
            self.on_replayed(load)

    def _apply(self, batch: list[ChangeEvent], lsn: int, parts: list[ChangeEvent]) -> ApplyStats:
        """Apply a batch (after its `parts`, applied ahead in the open target transaction); when it fails and a
        failing table may be set aside, apply all of it again table by table (the failure discarded the parts)."""
        try:
            return self.applier.apply(batch, lsn)
        except StudioError as exc:
            if self.plan.on_table_error != "continue" or getattr(exc, "transient", False) or not batch:
                raise
            log.warning("pipeline %s: a batch failed (%s); applying it table by table", self.plan.pipeline_id, exc)
        stats, failed = self.applier.apply_isolated(parts + batch, lsn)
        for source, reason in failed.items():
            self.tables.fail(source, f"applying a change failed: {reason}")
        return stats


class ApplyThread:
    """Applies batches on a second thread, in order, while the worker's thread reads and decodes the next.

    The target's work (COPY, MERGE, commit) releases the GIL, so decoding goes on meanwhile; at
    most APPLY_AHEAD batches wait. Only the worker's thread touches the source: it confirms each
    batch that `applied` reports, which is after the target committed its rows and position.
    """

    def __init__(
        self, work: Callable[[list[ChangeEvent] | None, TxnEnd | Replayed | None], None], pipeline_id: int
    ) -> None:
        self._work = work
        self._todo: queue.Queue = queue.Queue(maxsize=APPLY_AHEAD)
        self._done: queue.SimpleQueue = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._closing = False
        self._pending = 0  # submitted, not yet reported by `applied`
        self._thread = threading.Thread(target=self._run, name=f"cdc-apply-{pipeline_id}", daemon=True)
        self._thread.start()

    def submit(self, batch: list[ChangeEvent] | None, last: TxnEnd | Replayed | None, wait: Callable[[], bool]) -> bool:
        """Queue a job (see BatchApply.work); while the queue is full call `wait` (False from it: give up)."""
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
        return [last for last in done if isinstance(last, TxnEnd)]  # parts and replays have nothing to confirm

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
                self._work(*job)
            except BaseException as exc:  # noqa: BLE001 - raised on the worker's thread
                self._error = exc
                return
            self._done.put(job[1])
