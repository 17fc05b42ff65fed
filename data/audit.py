"""The audit trail: who did what, when."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, func, select

from data.models import AuditEntry


def record(
    *,
    session: Session,
    user_email: str | None,
    action: str,
    target: str = "",
    detail: str = "",
    actor_type: str = "user",
    token_id: int | None = None,
    object_type: str | None = None,
    object_id: str | int | None = None,
    outcome: str = "ok",
    changes: dict | None = None,
    client_addr: str | None = None,
) -> None:
    session.add(
        AuditEntry(
            user_email=user_email,
            action=action,
            target=target,
            detail=detail,
            actor_type=actor_type,
            token_id=token_id,
            object_type=object_type,
            object_id=None if object_id is None else str(object_id),
            outcome=outcome,
            changes=changes,
            client_addr=client_addr,
        )
    )


def recent(*, session: Session, limit: int = 100) -> list[AuditEntry]:
    return list(session.exec(select(AuditEntry).order_by(col(AuditEntry.id).desc()).limit(limit)))


@dataclass(frozen=True)
class AuditQuery:
    """Filters of an audit search; None means any. `user` matches part of the email (any case); `action`
    is exact unless it ends with "." or "*" (then a prefix: "pipeline." is every pipeline action)."""

    user: str | None = None
    object_type: str | None = None
    object_id: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100


def _like_escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search(*, session: Session, query: AuditQuery) -> list[AuditEntry]:
    """The entries matching every filter, newest first."""
    q = select(AuditEntry)
    if query.user:
        pattern = f"%{_like_escaped(query.user.lower())}%"
        q = q.where(func.lower(col(AuditEntry.user_email)).like(pattern, escape="\\"))
    if query.object_type:
        q = q.where(AuditEntry.object_type == query.object_type)
    if query.object_id:
        q = q.where(AuditEntry.object_id == query.object_id)
    if query.action and query.action.endswith((".", "*")):
        prefix = _like_escaped(query.action.rstrip("*"))
        q = q.where(col(AuditEntry.action).like(f"{prefix}%", escape="\\"))
    elif query.action:
        q = q.where(AuditEntry.action == query.action)
    if query.since is not None:
        q = q.where(AuditEntry.at >= query.since)
    if query.until is not None:
        q = q.where(AuditEntry.at <= query.until)
    return list(session.exec(q.order_by(col(AuditEntry.id).desc()).limit(query.limit)))
