"""The audit trail: who did what, when."""

from __future__ import annotations

from sqlmodel import Session, col, select

from data.models import AuditEntry


def record(*, session: Session, user_email: str | None, action: str, target: str = "", detail: str = "") -> None:
    session.add(AuditEntry(user_email=user_email, action=action, target=target, detail=detail))


def recent(*, session: Session, limit: int = 100) -> list[AuditEntry]:
    return list(session.exec(select(AuditEntry).order_by(col(AuditEntry.id).desc()).limit(limit)))
