"""The API tokens page (make one, shown once, it works, revoke) and the audit page (filters, CSV)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import httpx
from nicegui.testing import User

from core.users import Role
from tests.conftest import ADMIN_EMAIL
from tests.ui.helpers import WAIT, eventually, login, make_user, set_value, table_rows


async def test_make_use_and_revoke_a_token(app_env, user: User) -> None:
    await login(user)
    await user.open("/tokens")
    user.find(marker="token-name").type("ci deploys")
    user.find(marker="token-create").click()
    await user.should_see(marker="token-text", retries=WAIT)
    token = user.find(marker="token-text").elements.pop().value
    assert token.startswith("cdcs_")
    rows = await eventually(lambda: table_rows(user, "tokens-table"))
    assert rows[0]["name"] == "ci deploys" and rows[0]["state"] == "active" and token not in str(rows)
    client: httpx.AsyncClient = user.http_client
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/api/v1/auth/me", headers=bearer)).json()["email"] == ADMIN_EMAIL

    user.find(marker="token-done").click()
    user.find(marker="tokens-table").trigger("revoke", rows[0])  # the row's Revoke button
    await user.should_see("Revoke the token 'ci deploys'", retries=WAIT)
    user.find(marker="confirm-ok").click()
    await eventually(lambda: table_rows(user, "tokens-table")[0]["state"] == "revoked")
    assert (await client.get("/api/v1/auth/me", headers=bearer)).status_code == 401


async def test_the_audit_page_filters_and_exports(app_env, user: User) -> None:
    make_user("vi@example.com", "vi-password-12", Role.viewer)
    await login(user)
    await user.open("/audit")
    rows = await eventually(lambda: table_rows(user, "audit-table"))
    assert any(r["action"] == "login" for r in rows)
    user.find(marker="audit-action").type("user.")
    user.find(marker="audit-apply").click()
    rows = await eventually(lambda: (found := table_rows(user, "audit-table")) and len(found) < 4 and found)
    assert {r["action"] for r in rows} == {"user.create", "user.create_first_admin"}, rows
    user.find(marker="audit-csv").click()
    download = await user.download.next(timeout=10)
    table = list(csv.DictReader(io.StringIO(download.text)))
    assert table and {r["action"] for r in table} <= {"user.create", "user.create_first_admin"}

    # a custom time range, in UTC: today has them, tomorrow nothing; a time it cannot read is named
    today = datetime.now(UTC).date()
    set_value(user, "audit-range", "custom")
    set_value(user, "audit-since", str(today))
    set_value(user, "audit-until", f"{today} 23:59")
    user.find(marker="audit-apply").click()
    await eventually(
        lambda: {r["action"] for r in table_rows(user, "audit-table")} == {"user.create", "user.create_first_admin"}
    )
    set_value(user, "audit-since", str(today + timedelta(days=1)))
    set_value(user, "audit-until", "")
    user.find(marker="audit-apply").click()
    await eventually(lambda: table_rows(user, "audit-table") == [])
    set_value(user, "audit-since", "yesterday")
    user.find(marker="audit-apply").click()
    await user.should_see("From: write the time as YYYY-MM-DD or YYYY-MM-DD HH:MM (UTC)", retries=WAIT)
    set_value(user, "audit-since", str(today))
    set_value(user, "audit-until", str(today - timedelta(days=1)))
    user.find(marker="audit-apply").click()
    await user.should_see("To: is before From", retries=WAIT)


async def test_the_audit_page_is_for_admins(app_env, user: User) -> None:
    make_user("vi@example.com", "vi-password-12", Role.viewer)
    await login(user, "vi@example.com", "vi-password-12")
    await user.open("/audit")
    await user.should_see(marker="audit-denied", retries=WAIT)
