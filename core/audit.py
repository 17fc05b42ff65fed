"""The audit trail as users see it (admins only)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from core.security import Action, require
from core.users import Actor
from data import audit
from data.db import session_scope


class AuditPublic(BaseModel):
    id: int
    at: datetime
    user_email: str | None
    action: str
    target: str
    detail: str


def recent(actor: Actor, limit: int = 100) -> list[AuditPublic]:
    """The newest audit entries, newest first."""
    require(actor.role, Action.manage_users)
    with session_scope() as session:
        return [AuditPublic.model_validate(e, from_attributes=True) for e in audit.recent(session=session, limit=limit)]
