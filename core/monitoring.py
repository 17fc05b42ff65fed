"""Metrics of applied changes: per-minute rollups, the capped event log, dashboard figures.

Engines call `record_applied` after each target commit (from their own thread); it publishes one
bus event per batch at once, so live pages get batches, never a message per row, and hands the
batch to a background recorder that writes the rollups and the log (merged batches, one
app-database transaction per write). Readers here `flush` first, so they see every recorded batch.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from operator import attrgetter

from pydantic import BaseModel
from sqlalchemy import insert
from sqlmodel import Session

from core.cdc.events import ChangeEvent, expand, expand_tail
from core.events import Event, bus
from core.security import Action, require
from core.users import Actor
from data import db as app_db
from data import monitoring as mon_db
from data import pipelines as pipe_db
from data.db import session_scope
from data.models import EventLogEntry

log = logging.getLogger(__name__)

EVENT_LOG_CAP = int(os.environ.get("CDC_STUDIO_EVENT_LOG_CAP", "1000"))
LIVE_ROWS_PER_BATCH = 50
RATE_WINDOW = timedelta(minutes=5)
WRITE_EVERY_S = 0.5  # the recorder writes at most this often (a flush writes at once)


class Dashboard(BaseModel):
    total_events: int
    insert_count: int
    update_count: int
    delete_count: int
    events_per_second: float
    pipelines_total: int
    pipelines_running: int
    pipelines_error: int


class EventPublic(BaseModel):
    id: int
    pipeline_id: int
    applied_at: datetime
    commit_time: datetime | None
    table: str
    op: str
    key: dict
    before: dict | None
    after: dict | None
    position: str


def _minute(at: datetime) -> datetime:
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
        minute = _minute(applied_at)
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
        try:
            with Session(app_db.get_engine(url)) as session, session.begin():
                for (where, pipeline_id), p in pending.items():
                    if where == url:
                        _write_pipeline(session, pipeline_id, p)
        except Exception:  # noqa: BLE001 - monitoring must never stop an engine (nor the recorder)
            log.exception("could not record applied changes in the app database")


def _write_pipeline(session: Session, pipeline_id: int, p: _Pending) -> None:
    per_row: dict[tuple[datetime, str], Counter] = {}
    for (minute, table_name, op), n in p.counts.items():
        per_row.setdefault((minute, table_name), Counter())[op] += n
    for (minute, table_name), counts in per_row.items():
        mon_db.add_counts(session=session, pipeline_id=pipeline_id, minute=minute, table_name=table_name, counts=counts)
    rows = [_log_row(pipeline_id, applied_at, e) for applied_at, events in p.chunks for e in events]
    if rows:
        session.execute(insert(EventLogEntry), rows[-EVENT_LOG_CAP:])  # one executemany, no ORM objects
    mon_db.trim_events(session=session, pipeline_id=pipeline_id, keep=EVENT_LOG_CAP)


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


def dashboard(actor: Actor) -> Dashboard:
    """Totals by operation and the recent rate, aggregated in SQL over the rollups."""
    require(actor.role, Action.read)
    flush()
    now = datetime.now(UTC)
    with session_scope() as session:
        total = mon_db.totals(session=session)
        recent = mon_db.totals(session=session, since=_minute(now - RATE_WINDOW))
        pipes = pipe_db.list_pipelines(session=session)
    # The window starts at a minute boundary: divide by the seconds it really spans.
    window_s = (now - _minute(now - RATE_WINDOW)).total_seconds()
    return Dashboard(
        total_events=sum(total.values()),
        insert_count=total["insert"],
        update_count=total["update"],
        delete_count=total["delete"],
        events_per_second=round(sum(recent.values()) / window_s, 2),
        pipelines_total=len(pipes),
        pipelines_running=sum(1 for p in pipes if p.state in ("STARTING", "RUNNING")),
        pipelines_error=sum(1 for p in pipes if p.state == "ERROR"),
    )


def recent_events(
    actor: Actor, pipeline_id: int | None = None, op: str | None = None, table: str | None = None, limit: int = 100
) -> list[EventPublic]:
    """The newest logged changes, newest first."""
    require(actor.role, Action.read)
    flush()
    with session_scope() as session:
        rows = mon_db.recent_events(session=session, pipeline_id=pipeline_id, op=op, table_name=table, limit=limit)
        return [
            EventPublic(
                id=r.id,
                pipeline_id=r.pipeline_id,
                applied_at=r.applied_at,
                commit_time=r.commit_time,
                table=r.table_name,
                op=r.op,
                key=r.key,
                before=r.before,
                after=r.after,
                position=r.position,
            )
            for r in rows
        ]
