"""The audit trail (admins only): filtered, as JSON or CSV."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends, Query, Response

from core import audit_trail as audit
from core.actor import Actor
from core.api.deps import current_actor
from core.audit_trail import AuditPublic
from data.audit import AuditQuery

router = APIRouter(tags=["audit"])


def _query(
    user: str | None = Query(None, description="part of the actor's email (any case)"),
    object_type: str | None = Query(None, description="exact: connection, pipeline, token, user ..."),
    object_id: str | None = Query(None, description="exact"),
    action: str | None = Query(None, description='exact, or a prefix ending in "." or "*" (pipeline.)'),
    since: datetime | None = Query(None, description="ISO 8601; entries at or after"),
    until: datetime | None = Query(None, description="ISO 8601; entries at or before"),
    limit: int = Query(100, ge=1, le=audit.MAX_LIMIT),
) -> AuditQuery:
    return AuditQuery(
        user=user, object_type=object_type, object_id=object_id, action=action, since=since, until=until, limit=limit
    )


def _csv(actor: Actor, query: AuditQuery) -> Response:
    headers = {"Content-Disposition": 'attachment; filename="audit.csv"'}
    return Response(audit.to_csv(audit.search(actor, query)), media_type="text/csv", headers=headers)


@router.get("/audit", response_model=list[AuditPublic], responses={200: {"content": {"text/csv": {}}}})
def audit_trail(
    query: AuditQuery = Depends(_query),
    format: Literal["json", "csv"] = "json",
    actor: Actor = Depends(current_actor),
) -> list[AuditPublic] | Response:
    """Who did what and when, newest first (admins only). Filters combine; `format=csv` answers text/csv."""
    if format == "csv":
        return _csv(actor, query)
    return audit.search(actor, query)
