"""Metrics of applied changes: per-minute rollups, the capped event log, dashboard figures.

Engines call `record_applied` after each target commit (from their own thread); it writes the
rollups and the log in one app-database transaction and publishes one bus event per batch, so
live pages get batches, never a message per row.
"""

from __future__ import annotations

import os
from collections import Counter
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel

from core.cdc.events import ChangeEvent
from core.events import Event, bus
from core.security import Action, require
from core.users import Actor
from data import monitoring as mon_db
from data import pipelines as pipe_db
from data.db import session_scope
from data.models import EventLogEntry

EVENT_LOG_CAP = int(os.environ.get("CDC_STUDIO_EVENT_LOG_CAP", "1000"))
LIVE_ROWS_PER_BATCH = 50
RATE_WINDOW = timedelta(minutes=5)


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
        "pipeline_id": pipeline_id, "applied_at": applied_at.isoformat(),
        "commit_time": e.commit_time.isoformat() if e.commit_time else None,
        "table": f"{e.schema}.{e.table}", "op": e.op, "key": e.key or {}, "before": e.before, "after": e.after,
        "position": str(e.position),
    }


def record_applied(pipeline_id: int, events: list[ChangeEvent], applied_at: datetime | None = None) -> None:
    """Count a committed batch into the rollups, log its newest changes, publish it live."""
    if not events:
        return
    applied_at = applied_at or datetime.now(UTC)
    minute = _minute(applied_at)
    per_table: dict[str, Counter] = {}
    for e in events:
        per_table.setdefault(f"{e.schema}.{e.table}", Counter())[e.op] += 1
    logged = events[-EVENT_LOG_CAP:]
    with session_scope() as session:
        for table_name, counts in per_table.items():
            mon_db.add_counts(session=session, pipeline_id=pipeline_id, minute=minute, table_name=table_name,
                              counts=counts)
        mon_db.add_events(session=session, entries=[EventLogEntry(
            pipeline_id=pipeline_id, applied_at=applied_at, commit_time=e.commit_time,
            table_name=f"{e.schema}.{e.table}", op=e.op, key=e.key or {}, before=e.before, after=e.after,
            position=str(e.position)) for e in logged])
        mon_db.trim_events(session=session, pipeline_id=pipeline_id, keep=EVENT_LOG_CAP)
    counts = Counter(e.op for e in events)
    bus.publish(Event("cdc.events", {
        "counts": dict(counts), "total": len(events),
        "latest": [event_dict(pipeline_id, e, applied_at) for e in events[-LIVE_ROWS_PER_BATCH:]],
    }, pipeline_id))


def dashboard(actor: Actor) -> Dashboard:
    """Totals by operation and the recent rate, aggregated in SQL over the rollups."""
    require(actor.role, Action.read)
    now = datetime.now(UTC)
    with session_scope() as session:
        total = mon_db.totals(session=session)
        recent = mon_db.totals(session=session, since=_minute(now - RATE_WINDOW))
        pipes = pipe_db.list_pipelines(session=session)
    # The window starts at a minute boundary: divide by the seconds it really spans.
    window_s = (now - _minute(now - RATE_WINDOW)).total_seconds()
    return Dashboard(
        total_events=sum(total.values()), insert_count=total["insert"], update_count=total["update"],
        delete_count=total["delete"], events_per_second=round(sum(recent.values()) / window_s, 2),
        pipelines_total=len(pipes), pipelines_running=sum(1 for p in pipes if p.state in ("STARTING", "RUNNING")),
        pipelines_error=sum(1 for p in pipes if p.state == "ERROR"),
    )


def recent_events(
    actor: Actor, pipeline_id: int | None = None, op: str | None = None, table: str | None = None, limit: int = 100
) -> list[EventPublic]:
    """The newest logged changes, newest first."""
    require(actor.role, Action.read)
    with session_scope() as session:
        rows = mon_db.recent_events(session=session, pipeline_id=pipeline_id, op=op, table_name=table, limit=limit)
        return [EventPublic(id=r.id, pipeline_id=r.pipeline_id, applied_at=r.applied_at, commit_time=r.commit_time,
                            table=r.table_name, op=r.op, key=r.key, before=r.before, after=r.after,
                            position=r.position) for r in rows]
