"""Sign-in attempts, for the lockouts of core.login_guard."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from data.models import LoginAttempt


def add(*, session: Session, email: str, client_addr: str, ok: bool, at: datetime) -> None:
    session.add(LoginAttempt(email=email, client_addr=client_addr, ok=ok, at=at))


def failures_since(
    *, session: Session, since: datetime, email: str | None = None, client_addr: str | None = None
) -> tuple[int, datetime | None]:
    """Failed attempts after `since` (and after the account's last success, for `email`) for an account or an
    address: how many, and the newest one."""
    query = select(func.count(), func.max(LoginAttempt.at)).where(col(LoginAttempt.ok).is_(False))
    if email is not None:
        last_ok = session.exec(
            select(func.max(LoginAttempt.at)).where(LoginAttempt.email == email, col(LoginAttempt.ok).is_(True))
        ).one()
        since = max(since, last_ok) if last_ok is not None else since
        query = query.where(LoginAttempt.email == email)
    if client_addr is not None:
        query = query.where(LoginAttempt.client_addr == client_addr)
    count, newest = session.exec(query.where(LoginAttempt.at > since)).one()
    return int(count or 0), newest


def prune(*, session: Session, before: datetime) -> None:
    session.exec(delete(LoginAttempt).where(col(LoginAttempt.at) < before))
