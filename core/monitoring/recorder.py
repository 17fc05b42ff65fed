"""The monitoring recorder: the default ChangeSink of the engines (core.cdc.sink).

Engines hand it each applied batch after the target commit (from their own thread); it publishes
one bus event per batch at once, so live pages get batches, never a message per row, and hands the
batch to a background writer that writes the rollups and the log through data.monitoring (merged
batches, one app-database transaction per write). Readers `flush` first, so they see every batch.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import attrgetter

from core.cdc.events import ChangeEvent, expand, expand_tail
from core.cdc.sink import AppliedBatch
from core.events import Event, bus
from core.monitoring import counters
from data import db as app_db
from data import monitoring as mon_db

log = logging.getLogger(__name__)

EVENT_LOG_CAP = int(os.environ.get("CDC_STUDIO_EVENT_LOG_CAP", "1000"))
LIVE_ROWS_PER_BATCH = 50
WRITE_EVERY_S = 2.0  # the recorder writes at most this often (a flush writes at once; the live feed is the bus)


def minute_of(at: datetime) -> datetime:
    """The UTC minute a time falls in (the rollups' grain)."""
    return at.astimezone(UTC).replace(second=0, microsecond=0)


def event_dict(pipeline_id: int, e: ChangeEvent, applied_at: datetime) -> dict:
    """A change as the live feed and the log show it."""
    return {
        "pipeline_id": pipeline_id,
        "applied_at": applied_at.isoformat(),
        "commit_time": e.commit_time.isoformat() if e.commit_time else None,
        "table": f"{e.schema}.{e.table}",
        "op": e.op,
        "key": e.key or {},
        "before": e.before,
        "after": e.after,
        "position": str(e.position),
    }


def record_applied(
    pipeline_id: int, events: list[ChangeEvent], applied_at: datetime | None = None, counts: Counter | None = None
) -> None:
    """Count a committed batch into the rollups, log its newest changes, publish it live.

    `counts` ((schema, table, op) -> n), when the engine has them already, saves counting the
    events again. The live feed gets the batch at once; the rollups and the log are written by
    the recorder's thread (`flush` waits for them), so an engine never waits for the app database.
    """
    if not events:
        return
    applied_at = applied_at or datetime.now(UTC)
    per_table = Counter(map(_TABLE_OP, expand(events))) if counts is None else counts
    by_op: Counter = Counter()
    for (_schema, _table, op), n in per_table.items():
        by_op[op] += n
    counters.note_applied(pipeline_id, per_table, applied_at, _commit_times(events))
    tail = expand_tail(events, EVENT_LOG_CAP)  # runs of changes (InsertRun) become rows for the log and feed
    _recorder.add(pipeline_id, applied_at, per_table, tail)
    bus.publish(
        Event(
            "cdc.events",
            {
                "counts": dict(by_op),
                "total": sum(by_op.values()),
                "latest": [event_dict(pipeline_id, e, applied_at) for e in tail[-LIVE_ROWS_PER_BATCH:]],
            },
            pipeline_id,
        )
    )


def _commit_times(events: list) -> tuple:
    """Source commit times of the batch's oldest and newest transaction (one when they are the same)."""
    first, last = events[0].commit_time, events[-1].commit_time
    return (first,) if first == last else (first, last)


def flush(timeout_s: float = 10.0) -> bool:
    """Wait until everything recorded so far is in the app database (False on timeout)."""
    return _recorder.flush(timeout_s)


_TABLE_OP = attrgetter("schema", "table", "op")


@dataclass
class _Pending:
    """What one pipeline recorded since the last write: rollup counts and its newest events."""

    counts: Counter = field(default_factory=Counter)  # (minute, "schema.table", op) -> n
    chunks: deque = field(default_factory=deque)  # (applied_at, events), oldest first
    logged: int = 0  # events in `chunks`

    def add(self, applied_at: datetime, per_table: Counter, events: list[ChangeEvent]) -> None:
        minute = minute_of(applied_at)
        for (schema, table, op), n in per_table.items():
            self.counts[(minute, f"{schema}.{table}", op)] += n
        self.chunks.append((applied_at, events))
        self.logged += len(events)
        # Older chunks the newest EVENT_LOG_CAP events already push out of the log are not written.
        while len(self.chunks) > 1 and self.logged - len(self.chunks[0][1]) >= EVENT_LOG_CAP:
            self.logged -= len(self.chunks.popleft()[1])


class _Recorder:
    """A background writer of applied batches into the app database.

    Batches are merged while they wait (counts added up, only the newest EVENT_LOG_CAP events
    of each pipeline kept), then written in one transaction at most every WRITE_EVERY_S, or at
    once when someone `flush`es. Every count reaches the rollups; the log stays capped.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pending: dict[tuple[str | None, int], _Pending] = {}  # (app database URL, pipeline id) -> ...
        self._added = 0  # batches handed over so far
        self._written = 0  # of those, batches written (or given up on)
        self._urgent = False
        self._thread: threading.Thread | None = None

    def add(self, pipeline_id: int, applied_at: datetime, per_table: Counter, events: list[ChangeEvent]) -> None:
        # Written into the app database selected now (data.db.init), even if another is selected meanwhile.
        key = (app_db.current_url(), pipeline_id)
        with self._cond:
            self._pending.setdefault(key, _Pending()).add(applied_at, per_table, events)
            self._added += 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="monitoring-recorder", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def flush(self, timeout_s: float) -> bool:
        with self._cond:
            wanted = self._added
            self._urgent = True
            self._cond.notify_all()
            return self._cond.wait_for(lambda: self._written >= wanted, timeout_s)

    def _run(self) -> None:
        last = 0.0
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending)
                self._cond.wait_for(lambda: self._urgent, max(0.0, last + WRITE_EVERY_S - time.monotonic()))
                pending, self._pending = self._pending, {}
                upto, self._urgent = self._added, False
            _write(pending)
            last = time.monotonic()
            with self._cond:
                self._written = upto
                self._cond.notify_all()


def _write(pending: dict[tuple[str | None, int], _Pending]) -> None:
    """Rollups and log rows of several pipelines, in one transaction per app database."""
    for url in {url for url, _pid in pending}:
        if url is None:
            log.warning("changes applied before the app database was selected are not recorded")
            continue
        pipelines = {pid: _rows(pid, p) for (where, pid), p in pending.items() if where == url}
        try:
            mon_db.record_applied(url=url, pipelines=pipelines, keep=EVENT_LOG_CAP)
        except Exception:  # noqa: BLE001 - monitoring must never stop an engine (nor the recorder)
            log.exception("could not record applied changes in the app database")


def _rows(pipeline_id: int, p: _Pending) -> tuple[dict[tuple[datetime, str], Counter], list[dict]]:
    """A pipeline's pending rollups ((minute, table) -> op counts) and log rows, newest EVENT_LOG_CAP."""
    per_row: dict[tuple[datetime, str], Counter] = {}
    for (minute, table_name, op), n in p.counts.items():
        per_row.setdefault((minute, table_name), Counter())[op] += n
    rows = [_log_row(pipeline_id, applied_at, e) for applied_at, events in p.chunks for e in events]
    return per_row, rows[-EVENT_LOG_CAP:]


def _log_row(pipeline_id: int, applied_at: datetime, e: ChangeEvent) -> dict:
    return {
        "pipeline_id": pipeline_id,
        "applied_at": applied_at,
        "commit_time": e.commit_time,
        "table_name": f"{e.schema}.{e.table}",
        "op": e.op,
        "key": e.key or {},
        "before": e.before,
        "after": e.after,
        "position": str(e.position),
    }


_recorder = _Recorder()
atexit.register(flush, 5.0)


class MonitoringSink:
    """The engines' default ChangeSink: each applied batch into the rollups, the log and the live feed."""

    def applied(self, batch: AppliedBatch) -> None:
        """Record one committed batch (see record_applied)."""
        record_applied(batch.pipeline_id, batch.events, batch.applied_at, batch.counts)


SINK = MonitoringSink()
