"""Every pipeline's health at a glance, for the dashboard: state, health, lag, throughput line, firing alerts.

One read of each source: the pipelines, the sparklines (one query), the firing alerts (one query), the
latest health reports (in memory) and the live workers' lag (in memory), so a dashboard of 50
pipelines costs a handful of queries, not 50 of each.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel

from core import runner
from core.monitoring import alerts, counters, health, metrics
from core.security import Action, require
from core.users import Actor
from data import metrics as metrics_db
from data import pipelines as pipe_db
from data.db import session_scope


class PipelineGlance(BaseModel):
    id: int
    name: str
    state: str
    mode: str
    engine: str
    health: str | None  # healthy | degraded | failing; None before its first check
    lag_bytes: int | None
    lag_seconds: float | None
    rows_per_second: float | None  # the newest point of its sparkline
    sparkline: list[float]  # rows/s over the last hour, oldest first
    alerts_firing: int
    error_message: str | None
    last_change_at: datetime | None = None  # when the last change was applied to its target
    errors: int = 0  # apply errors since the app started


def glance(actor: Actor, range: str = "1h") -> list[PipelineGlance]:  # noqa: A002 - the API's name
    """One row per pipeline, by name."""
    require(actor, Action.read)
    with session_scope() as session:
        found = pipe_db.list_pipelines(session=session)
    lines = metrics.sparklines(actor, range)
    firing = alerts.firing_counts()
    statuses = health.latest_statuses()
    since_start = counters.totals()
    rows = []
    for p in sorted(found, key=lambda p: p.name.lower()):
        assert p.id is not None
        live = runner.cdc_figures(p.id) or {}
        line = [v for _ts, v in lines.get(p.id, [])]
        rows.append(
            PipelineGlance(
                id=p.id,
                name=p.name,
                state=p.state,
                mode=p.mode,
                engine=p.engine,
                health=statuses.get(p.id),
                lag_bytes=live.get("lag_bytes"),
                lag_seconds=live.get("seconds_behind"),
                rows_per_second=line[-1] if line else None,
                sparkline=line,
                alerts_firing=firing.get(p.id, 0),
                error_message=p.error_message,
                last_change_at=_last_change(p.id, since_start.get(p.id)),
                errors=since_start[p.id].errors if p.id in since_start else 0,
            )
        )
    return rows


def _last_change(pipeline_id: int, totals: counters.Totals | None) -> datetime | None:
    """The last applied change: exact from this process's counters, else the newest rollup minute."""
    if totals is not None and totals.last_applied_at is not None:
        return totals.last_applied_at
    with session_scope() as session:  # after a restart: one small grouped read of this pipeline's rollups
        per_table = metrics_db.table_changes(session=session, pipeline_id=pipeline_id)
    stamps = [t["last"] for t in per_table.values() if t["last"] is not None]
    if not stamps:
        return None
    newest = max(stamps)
    return newest if newest.tzinfo else newest.replace(tzinfo=UTC)
