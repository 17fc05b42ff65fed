"""What the dashboard and the events page read: totals over the rollups, the newest logged changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import BaseModel

from core.monitoring.recorder import flush, minute_of
from core.security import Action, require
from core.users import Actor
from data import monitoring as mon_db
from data import pipelines as pipe_db
from data.db import session_scope

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


def dashboard(actor: Actor) -> Dashboard:
    """Totals by operation and the recent rate, aggregated in SQL over the rollups."""
    require(actor.role, Action.read)
    flush()
    now = datetime.now(UTC)
    with session_scope() as session:
        total = mon_db.totals(session=session)
        recent = mon_db.totals(session=session, since=minute_of(now - RATE_WINDOW))
        pipes = pipe_db.list_pipelines(session=session)
    # The window starts at a minute boundary: divide by the seconds it really spans.
    window_s = (now - minute_of(now - RATE_WINDOW)).total_seconds()
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
