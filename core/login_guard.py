"""Sign-in rate limits: failures per account and per client address lock further attempts for a while.

Every attempt (API token request or login page) is kept in `login_attempts`. When an account has had
`login_max_failures` failures within `login_window_s` since its last success, or an address
`login_max_failures_per_address`, sign-ins for it are refused for `lockout_s` after the newest failure,
even with the right password (TooManyAttempts, answered 429 with Retry-After). The counts live in the
app database, so a restart or a second replica does not reset them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.config import get_settings
from core.errors import TooManyAttempts
from data import login_attempts
from data.db import session_scope

KEEP = timedelta(days=1)
"""Attempts older than this are deleted."""


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def check(email: str, client_addr: str, now: datetime | None = None) -> None:
    """Raise TooManyAttempts while the account or the address is locked."""
    settings = get_settings()
    now = now or datetime.now(UTC)
    since = now - timedelta(seconds=settings.login_window_s)
    with session_scope() as session:
        by_account = login_attempts.failures_since(session=session, since=since, email=email)
        by_address = login_attempts.failures_since(session=session, since=since, client_addr=client_addr)
    for (count, newest), limit in (
        (by_account, settings.login_max_failures),
        (by_address, settings.login_max_failures_per_address),
    ):
        newest = _aware(newest)
        if count >= limit and newest is not None:
            left = (newest + timedelta(seconds=settings.lockout_s) - now).total_seconds()
            if left > 0:
                wait = int(left) + 1
                minutes = max(1, round(wait / 60))
                raise TooManyAttempts(
                    f"too many failed sign-ins: try again in {minutes} minute{'s' if minutes != 1 else ''}", wait
                )


def note(email: str, client_addr: str, ok: bool, now: datetime | None = None) -> None:
    """Record an attempt (and drop the ones older than KEEP)."""
    now = now or datetime.now(UTC)
    with session_scope() as session:
        login_attempts.add(session=session, email=email, client_addr=client_addr, ok=ok, at=now)
        login_attempts.prune(session=session, before=now - KEEP)
