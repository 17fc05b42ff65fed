"""Sign-in lockouts on the real app: per account and per client address, 429 with Retry-After even for the
right password, one message for a wrong email and a wrong password, and every failure in the audit trail."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from nicegui.testing import User
from sqlmodel import select

from core.config import get_settings
from data.db import session_scope
from data.models import AuditEntry, LoginAttempt
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.ui.helpers import WAIT, eventually


@pytest.fixture
def limits(app_env, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """Small limits: 3 failures per account, 10 per address, a lockout of 2 s."""

    def set_limits(lockout_s: int = 2, per_address: int = 10) -> None:
        monkeypatch.setenv("CDC_STUDIO_LOGIN_MAX_FAILURES", "3")
        monkeypatch.setenv("CDC_STUDIO_LOGIN_MAX_FAILURES_PER_ADDRESS", str(per_address))
        monkeypatch.setenv("CDC_STUDIO_LOCKOUT_S", str(lockout_s))
        get_settings.cache_clear()

    set_limits()
    yield set_limits
    get_settings.cache_clear()


async def sign_in(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post("/api/v1/auth/token", json={"email": email, "password": password})


def audit_rows(action: str) -> list[AuditEntry]:
    with session_scope() as session:
        return list(session.exec(select(AuditEntry).where(AuditEntry.action == action)))


def attempts() -> list[LoginAttempt]:
    with session_scope() as session:
        return list(session.exec(select(LoginAttempt)))


async def test_an_account_is_locked_after_repeated_failures(limits, client: httpx.AsyncClient) -> None:  # noqa: ANN001
    wrong_password = await sign_in(client, ADMIN_EMAIL, "not-the-password")
    unknown_email = await sign_in(client, "nobody@example.com", "not-the-password")
    assert wrong_password.status_code == unknown_email.status_code == 401
    assert wrong_password.json() == unknown_email.json() == {"detail": "wrong email or password"}
    for _ in range(2):
        assert (await sign_in(client, ADMIN_EMAIL, "still-wrong")).status_code == 401

    # three failures: locked, even for the right password
    locked = await sign_in(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    assert locked.status_code == 429, locked.text
    assert 1 <= int(locked.headers["retry-after"]) <= 3
    assert "too many failed sign-ins" in locked.json()["detail"] and "access_token" not in locked.text
    # another account from the same address is not locked (the address has had 4 of its 10)
    other = await sign_in(client, "nobody@example.com", "x")
    assert other.status_code == 401

    failed = audit_rows("login_failed")
    assert [r.outcome for r in failed] == ["failed"] * 4 + ["refused", "failed"]
    assert {r.user_email for r in failed} == {ADMIN_EMAIL, "nobody@example.com"}
    assert all(r.actor_type == "anonymous" and r.object_type == "user" for r in failed)
    assert "not-the-password" not in str([(r.detail, r.target, r.changes) for r in failed])

    # after the lockout the right password works and clears the streak
    await asyncio.sleep(int(locked.headers["retry-after"]) + 0.2)
    ok = await sign_in(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    assert ok.status_code == 200, ok.text
    assert [r.user_email for r in audit_rows("login")] == [ADMIN_EMAIL]
    assert (await sign_in(client, ADMIN_EMAIL, "wrong-again")).status_code == 401
    assert (await sign_in(client, ADMIN_EMAIL, ADMIN_PASSWORD)).status_code == 200


async def test_an_address_is_locked_after_failures_on_many_accounts(limits, client: httpx.AsyncClient) -> None:  # noqa: ANN001
    limits(lockout_s=60, per_address=4)
    for i in range(4):
        assert (await sign_in(client, f"guess{i}@example.com", "password-1")).status_code == 401
    locked = await sign_in(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 50, locked.text
    tried = attempts()
    assert len(tried) == 4 and {a.client_addr for a in tried} == {"127.0.0.1"} and not any(a.ok for a in tried)


async def test_the_login_page_says_to_wait(limits, user: User) -> None:  # noqa: ANN001
    await user.open("/login")
    for attempt in range(3):
        user.find(marker="email").clear().type(ADMIN_EMAIL)
        user.find(marker="password").clear().type("wrong-password")
        user.find(marker="login").click()
        await eventually(lambda n=attempt + 1: len(attempts()) == n)
    await user.should_see("wrong email or password", retries=WAIT)
    user.find(marker="password").clear().type(ADMIN_PASSWORD)
    user.find(marker="login").click()
    await user.should_see("too many failed sign-ins", retries=WAIT)
    await user.should_see("try again in 1 minute", retries=WAIT)
    await user.should_not_see("Dashboard")
