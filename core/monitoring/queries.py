"""What the dashboard and the events page read: totals over the rollups, the newest logged changes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel

from core.monitoring.event_view import WITHHELD_NOTE, can_see_data
from core.monitoring.recorder import flush, minute_of
from core.security import Action, refused, require
from core.users import Actor
from data import monitoring as mon_db
from data import pipelines as pipe_db
from data.db import session_scope
from data.models import EventLogEntry

RATE_WINDOW = timedelta(minutes=5)
KEY_SEARCH_SCAN = 5000  # newest logged changes a key search looks through


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
    key: dict | None
    before: dict | None
    after: dict | None
    position: str
    data_withheld: bool = False  # key/before/after left out: the actor may not see row data
    note: str | None = None  # why they were left out


def dashboard(actor: Actor) -> Dashboard:
    """Totals by operation and the recent rate, aggregated in SQL over the rollups."""
    require(actor, Action.read)
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


def _matches_key(key: dict | None, search: str) -> bool:
    text = json.dumps(key or {}, ensure_ascii=False, default=str).lower()
    return search.lower() in text


def _public(r: EventLogEntry, see_data: bool) -> EventPublic:
    withheld = not see_data
    return EventPublic(
        id=r.id or 0,
        pipeline_id=r.pipeline_id,
        applied_at=r.applied_at,
        commit_time=r.commit_time,
        table=r.table_name,
        op=r.op,
        key=None if withheld else r.key,
        before=None if withheld else r.before,
        after=None if withheld else r.after,
        position=r.position,
        data_withheld=withheld,
        note=WITHHELD_NOTE if withheld else None,
    )


def recent_events(
    actor: Actor,
    pipeline_id: int | None = None,
    op: str | None = None,
    table: str | None = None,
    limit: int = 100,
    key_search: str | None = None,
) -> list[EventPublic]:
    """The newest logged changes, newest first; row data only for roles allowed to see data.

    `key_search` keeps changes whose key contains the text; searching keys is row data too, so it
    is refused to whoever may not see data.
    """
    require(actor, Action.read)
    see_data = can_see_data(actor)
    if key_search and not see_data:
        raise refused(actor, "searching by key needs permission to see row data", "events.key_search")
    flush()
    fetch = KEY_SEARCH_SCAN if key_search else limit  # the log is capped: scanning its newest rows is cheap
    with session_scope() as session:
        rows = mon_db.recent_events(session=session, pipeline_id=pipeline_id, op=op, table_name=table, limit=fetch)
        if key_search:
            rows = [r for r in rows if _matches_key(r.key, key_search)][:limit]
        return [_public(r, see_data) for r in rows]
