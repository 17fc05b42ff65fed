"""Dashboard figures and the event log."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query

from core import monitoring
from core.api.deps import current_actor
from core.monitoring import Dashboard, EventPublic
from core.users import Actor

router = APIRouter(prefix="/monitoring", tags=["monitoring"])


@router.get("/dashboard", response_model=Dashboard)
def dashboard(actor: Actor = Depends(current_actor)) -> Dashboard:
    """Totals by operation, events/s over the last minutes, pipelines by state (SQL over rollups)."""
    return monitoring.dashboard(actor)


@router.get("/events", response_model=list[EventPublic])
def events(
    pipeline_id: int | None = None,
    op: Literal["insert", "update", "delete", "truncate"] | None = None,
    table: str | None = None,
    key: str | None = Query(None, description="only changes whose key contains this text"),
    limit: int = Query(100, ge=1, le=1000),
    actor: Actor = Depends(current_actor),
) -> list[EventPublic]:
    """The newest applied changes from the capped event log.

    Key, before and after are withheld (`data_withheld`, with a `note`) from roles that may not see
    row data: viewers, unless an admin allowed them.
    """
    return monitoring.recent_events(actor, pipeline_id, op, table, limit, key_search=key)
