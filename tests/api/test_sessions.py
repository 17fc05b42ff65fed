"""Sessions end: login tokens and UI sessions begun before a password reset or an own password change are
refused; UI sessions end after their idle time and their absolute lifetime."""

from __future__ import annotations

import time

import httpx
import jwt
from nicegui import app
from nicegui.testing import User

from core.security import token_signing_key
from tests.api.conftest import make_user, token_for
from tests.conftest import ADMIN_EMAIL
from tests.ui.helpers import WAIT, login


async def user_id(client: httpx.AsyncClient, admin: dict[str, str], email: str) -> int:
    users = (await client.get("/api/v1/users", headers=admin)).json()
    return next(u["id"] for u in users if u["email"] == email)


async def test_a_reset_ends_the_sessions_begun_before(client: httpx.AsyncClient, admin) -> None:  # noqa: ANN001
    viewer = await make_user(client, admin, "viewer")
    vid = await user_id(client, admin, "viewer@example.com")
    assert (await client.get("/api/v1/auth/me", headers=viewer)).status_code == 200
    r = await client.post(f"/api/v1/users/{vid}/password", headers=admin, json={"password": "brand-new-pass-1"})
    assert r.status_code == 204, r.text
    refused = await client.get("/api/v1/auth/me", headers=viewer)
    assert refused.status_code == 401 and "sign in again" in refused.json()["detail"], refused.text
    fresh = await token_for(client, "viewer@example.com", "brand-new-pass-1")  # issued within the same second
    assert (await client.get("/api/v1/auth/me", headers=fresh)).status_code == 200

    # a role change takes effect on the next request of the same token (the role is read, not carried)
    r = await client.put(f"/api/v1/users/{vid}", headers=admin, json={"role": "editor"})
    assert r.status_code == 200, r.text
    assert (await client.get("/api/v1/auth/me", headers=fresh)).json()["role"] == "editor"
    assert (await client.get("/api/v1/auth/me", headers=admin)).status_code == 200  # the admin's own: untouched


async def test_an_own_password_change_ends_the_other_tokens(client: httpx.AsyncClient, admin) -> None:  # noqa: ANN001
    viewer = await make_user(client, admin, "viewer")
    other = await token_for(client, "viewer@example.com", "viewer-password-1")
    change = {"current_password": "viewer-password-1", "new_password": "another-pass-2"}
    assert (await client.post("/api/v1/auth/password", headers=viewer, json=change)).status_code == 204
    for headers in (viewer, other):
        assert (await client.get("/api/v1/auth/me", headers=headers)).status_code == 401
    assert (
        await client.post("/api/v1/auth/token", json={"email": "viewer@example.com", "password": "another-pass-2"})
    ).status_code == 200


async def test_a_login_token_lasts_at_most_the_session_lifetime(client: httpx.AsyncClient, admin, monkeypatch) -> None:  # noqa: ANN001
    claims = jwt.decode(admin["Authorization"].split()[1], token_signing_key(), algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] <= 12 * 3600 + 1  # CDC_STUDIO_SESSION_MAX_HOURS, below the 12 h token TTL
    assert isinstance(claims["iat"], float)  # to the microsecond: a login just after a reset is not refused


def ui_session() -> dict:
    """The user storage of the one signed-in simulated browser."""
    sessions = [s for s in app.storage._users.values() if s.get("user_id")]  # noqa: SLF001 - test inspection
    assert len(sessions) == 1, sessions
    return sessions[0]


async def test_ui_sessions_end_when_idle_too_old_or_reset(client: httpx.AsyncClient, admin, user: User) -> None:  # noqa: ANN001
    await login(user)
    await user.open("/connections")
    await user.should_see(marker="user-menu", retries=WAIT)
    ui_session()["seen_at"] = time.time() - 61 * 60  # idle past CDC_STUDIO_SESSION_IDLE_MINUTES (60)
    await user.open("/connections")
    await user.should_see(marker="login", retries=WAIT)

    await login(user)
    ui_session()["login_at"] = time.time() - 13 * 3600  # past CDC_STUDIO_SESSION_MAX_HOURS (12), though active
    await user.open("/connections")
    await user.should_see(marker="login", retries=WAIT)

    await login(user)
    await user.open("/connections")
    await user.should_see(marker="user-menu", retries=WAIT)
    aid = await user_id(client, admin, ADMIN_EMAIL)
    r = await client.post(f"/api/v1/users/{aid}/password", headers=admin, json={"password": "reset-by-someone-1"})
    assert r.status_code == 204
    await user.open("/connections")
    await user.should_see(marker="login", retries=WAIT)


async def test_a_forced_reset_allows_only_the_password_change(client: httpx.AsyncClient, admin, user: User) -> None:  # noqa: ANN001
    before = await make_user(client, admin, "viewer")
    made = await client.post("/api/v1/tokens", headers=before, json={"name": "script"})
    assert made.status_code == 201, made.text
    personal = {"Authorization": f"Bearer {made.json()['token']}"}
    vid = await user_id(client, admin, "viewer@example.com")
    reset = {"password": "temporary-pass-7", "must_change": True}
    assert (await client.post(f"/api/v1/users/{vid}/password", headers=admin, json=reset)).status_code == 204
    viewer = await token_for(client, "viewer@example.com", "temporary-pass-7")
    refused = await client.get("/api/v1/pipelines", headers=viewer)
    assert refused.status_code == 403 and "password change required" in refused.json()["detail"], refused.text
    # the account's personal tokens too, until the person has set their own password
    refused = await client.get("/api/v1/pipelines", headers=personal)
    assert refused.status_code == 403 and "password change required" in refused.json()["detail"], refused.text
    me = (await client.get("/api/v1/auth/me", headers=viewer)).json()
    assert me["must_change"] is True, me

    # the UI sends them to their account page, whatever they open
    await login(user, "viewer@example.com", "temporary-pass-7")
    await user.open("/pipelines")
    await user.should_see(marker="account-must-change", retries=WAIT)

    change = {"current_password": "temporary-pass-7", "new_password": "my-own-pass-8"}
    assert (await client.post("/api/v1/auth/password", headers=viewer, json=change)).status_code == 204
    mine = await token_for(client, "viewer@example.com", "my-own-pass-8")
    assert (await client.get("/api/v1/pipelines", headers=mine)).status_code == 200
    assert (await client.get("/api/v1/pipelines", headers=personal)).status_code == 200
    audit = (await client.get("/api/v1/audit", headers=admin)).json()
    resets = [e for e in audit if e["action"] == "user.reset_password"]
    assert resets and "must change" in resets[0]["detail"]
