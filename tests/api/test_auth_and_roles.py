"""Auth on every route, role refusals, health."""

from __future__ import annotations

import re

import httpx

from tests.conftest import ADMIN_EMAIL

PUBLIC = {("GET", "/api/v1/health"), ("POST", "/api/v1/auth/token")}


async def test_health_needs_no_auth(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"


async def test_every_route_needs_a_token(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    routes = [(m.upper(), p) for p, ops in spec["paths"].items() if p.startswith("/api/v1") for m in ops]
    assert len(routes) >= 15
    for method, path in routes:
        if (method, path) in PUBLIC:
            continue
        url = re.sub(r"\{[^}]+\}", "1", path)
        for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic abc"}):
            r = await client.request(method, url, headers=headers)
            assert r.status_code == 401, (method, path, headers, r.status_code, r.text)
            assert r.headers.get("www-authenticate") == "Bearer"


async def test_wrong_password_gets_no_token(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/auth/token", json={"email": ADMIN_EMAIL, "password": "wrong-password"})
    assert r.status_code == 401
    r = await client.post("/api/v1/auth/token", json={"email": "nobody@example.com", "password": "whatever1"})
    assert r.status_code == 401


async def test_roles(client: httpx.AsyncClient, admin, editor, viewer) -> None:
    body = {"name": "c1", "kind": "postgresql", "host": "h", "database": "d", "username": "u", "password": "p"}
    assert (await client.get("/api/v1/users", headers=admin)).status_code == 200
    for who in (editor, viewer):
        r = await client.get("/api/v1/users", headers=who)
        assert r.status_code == 403, r.text
        assert (await client.get("/api/v1/audit", headers=who)).status_code == 403
        r = await client.post("/api/v1/users", headers=who, json={"email": "x@example.com", "password": "12345678"})
        assert r.status_code == 403
    r = await client.post("/api/v1/connections", headers=viewer, json=body)
    assert r.status_code == 403
    assert "viewer" in r.json()["detail"]
    r = await client.post("/api/v1/connections", headers=editor, json=body)
    assert r.status_code == 201
    cid = r.json()["id"]
    assert (await client.get(f"/api/v1/connections/{cid}", headers=viewer)).status_code == 200
    assert (await client.put(f"/api/v1/connections/{cid}", headers=viewer, json={"host": "x"})).status_code == 403
    assert (await client.delete(f"/api/v1/connections/{cid}", headers=viewer)).status_code == 403
    assert (await client.delete(f"/api/v1/connections/{cid}", headers=editor)).status_code == 204
    assert (await client.get(f"/api/v1/connections/{cid}", headers=viewer)).status_code == 404


async def test_user_validation_and_duplicates(client: httpx.AsyncClient, admin) -> None:
    r = await client.post("/api/v1/users", headers=admin, json={"email": "not-an-email", "password": "12345678"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "email"
    r = await client.post("/api/v1/users", headers=admin, json={"email": "a@example.com", "password": "Zq9x"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "password"
    assert "Zq9x" not in r.text
    bad_role = {"email": "a@example.com", "password": "long-enough-1", "role": "god"}
    r = await client.post("/api/v1/users", headers=admin, json=bad_role)
    assert r.status_code == 422
    r = await client.post("/api/v1/users", headers=admin, json={"email": ADMIN_EMAIL, "password": "long-enough-1"})
    assert r.status_code == 409
    users = (await client.get("/api/v1/users", headers=admin)).json()
    assert [u["email"] for u in users] == [ADMIN_EMAIL]
    assert all("password" not in str(u) for u in users)


async def test_me(client: httpx.AsyncClient, viewer) -> None:
    r = await client.get("/api/v1/auth/me", headers=viewer)
    assert r.status_code == 200 and r.json()["role"] == "viewer"


async def _users(client: httpx.AsyncClient, admin) -> dict[str, dict]:
    return {u["email"]: u for u in (await client.get("/api/v1/users", headers=admin)).json()}


async def test_admin_changes_role_deactivates_and_deletes(client: httpx.AsyncClient, admin, editor, viewer) -> None:
    ids = {email: u["id"] for email, u in (await _users(client, admin)).items()}
    vid, eid, aid = ids["viewer@example.com"], ids["editor@example.com"], ids[ADMIN_EMAIL]
    # only admins manage accounts
    for who in (editor, viewer):
        assert (await client.put(f"/api/v1/users/{vid}", headers=who, json={"role": "admin"})).status_code == 403
        assert (await client.delete(f"/api/v1/users/{vid}", headers=who)).status_code == 403
        r = await client.post(f"/api/v1/users/{vid}/password", headers=who, json={"password": "taken-over-1"})
        assert r.status_code == 403
    # a new role takes effect on the next request of the same token
    r = await client.put(f"/api/v1/users/{vid}", headers=admin, json={"role": "editor", "full_name": "Vi Ewer"})
    assert r.status_code == 200 and r.json()["role"] == "editor" and r.json()["full_name"] == "Vi Ewer"
    body = {"name": "c1", "kind": "postgresql", "host": "h", "database": "d", "username": "u"}
    assert (await client.post("/api/v1/connections", headers=viewer, json=body)).status_code == 201
    r = await client.put(f"/api/v1/users/{vid}", headers=admin, json={"role": "god"})
    assert r.status_code == 422
    # deactivated: the token stops working and no new one is issued
    r = await client.put(f"/api/v1/users/{eid}", headers=admin, json={"is_active": False})
    assert r.status_code == 200 and r.json()["is_active"] is False
    assert (await client.get("/api/v1/auth/me", headers=editor)).status_code == 401
    token = {"email": "editor@example.com", "password": "editor-password-1"}
    assert (await client.post("/api/v1/auth/token", json=token)).status_code == 401
    assert (await client.put(f"/api/v1/users/{eid}", headers=admin, json={"is_active": True})).status_code == 200
    assert (await client.post("/api/v1/auth/token", json=token)).status_code == 200
    # delete: gone, and the audit trail says who did it
    assert (await client.delete(f"/api/v1/users/{eid}", headers=admin)).status_code == 204
    assert "editor@example.com" not in await _users(client, admin)
    assert (await client.delete(f"/api/v1/users/{eid}", headers=admin)).status_code == 404
    actions = [(e["action"], e["target"]) for e in (await client.get("/api/v1/audit", headers=admin)).json()]
    assert ("user.delete", "editor@example.com") in actions and ("user.update", "viewer@example.com") in actions
    # never yourself, never the last active admin
    r = await client.delete(f"/api/v1/users/{aid}", headers=admin)
    assert r.status_code == 409 and "own account" in r.json()["detail"]
    r = await client.put(f"/api/v1/users/{aid}", headers=admin, json={"is_active": False})
    assert r.status_code == 409
    r = await client.put(f"/api/v1/users/{aid}", headers=admin, json={"role": "viewer"})
    assert r.status_code == 409 and "last active admin" in r.json()["detail"]
    assert (await _users(client, admin))[ADMIN_EMAIL]["role"] == "admin"
    # with a second admin the first may step down, and the second may then delete the first
    assert (await client.put(f"/api/v1/users/{vid}", headers=admin, json={"role": "admin"})).status_code == 200
    assert (await client.put(f"/api/v1/users/{aid}", headers=admin, json={"role": "editor"})).status_code == 200
    r = await client.delete(f"/api/v1/users/{vid}", headers=admin)
    assert r.status_code == 403  # the first is an editor now
    assert (await client.delete(f"/api/v1/users/{aid}", headers=viewer)).status_code == 204
    r = await client.put(f"/api/v1/users/{vid}", headers=viewer, json={"role": "viewer"})
    assert r.status_code == 409  # the last admin cannot demote themself


async def test_admin_resets_a_password(client: httpx.AsyncClient, admin, viewer) -> None:
    vid = (await _users(client, admin))["viewer@example.com"]["id"]
    r = await client.post(f"/api/v1/users/{vid}/password", headers=admin, json={"password": "Zq9x"})
    assert r.status_code == 422 and "Zq9x" not in r.text
    r = await client.post(f"/api/v1/users/{vid}/password", headers=admin, json={"password": "brand-new-pass-1"})
    assert r.status_code == 204
    old = {"email": "viewer@example.com", "password": "viewer-password-1"}
    assert (await client.post("/api/v1/auth/token", json=old)).status_code == 401
    new = {"email": "viewer@example.com", "password": "brand-new-pass-1"}
    assert (await client.post("/api/v1/auth/token", json=new)).status_code == 200
    assert (
        await client.post("/api/v1/users/999/password", headers=admin, json=new | {"password": "x" * 9})
    ).status_code == 404


async def test_everyone_changes_their_own_password(client: httpx.AsyncClient, admin, viewer) -> None:
    wrong = {"current_password": "not-it-at-all", "new_password": "viewer-new-pass-1"}
    r = await client.post("/api/v1/auth/password", headers=viewer, json=wrong)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "current_password"
    short = {"current_password": "viewer-password-1", "new_password": "short"}
    assert (await client.post("/api/v1/auth/password", headers=viewer, json=short)).status_code == 422
    right = {"current_password": "viewer-password-1", "new_password": "viewer-new-pass-1"}
    assert (await client.post("/api/v1/auth/password", headers=viewer, json=right)).status_code == 204
    old = {"email": "viewer@example.com", "password": "viewer-password-1"}
    assert (await client.post("/api/v1/auth/token", json=old)).status_code == 401
    new = {"email": "viewer@example.com", "password": "viewer-new-pass-1"}
    assert (await client.post("/api/v1/auth/token", json=new)).status_code == 200
    r = await client.get("/api/v1/users", headers=admin)
    assert all(u["role"] for u in r.json())  # the admin's own account and role are untouched


async def test_settings_viewers_see_data(client: httpx.AsyncClient, admin, editor, viewer) -> None:
    r = await client.get("/api/v1/settings", headers=viewer)
    assert r.status_code == 200 and r.json() == {"viewers_see_data": False, "can_edit": False}
    for who in (editor, viewer):
        r = await client.put("/api/v1/settings", headers=who, json={"viewers_see_data": True})
        assert r.status_code == 403, r.text
    r = await client.put("/api/v1/settings", headers=admin, json={"viewers_see_data": True})
    assert r.status_code == 200 and r.json() == {"viewers_see_data": True, "can_edit": True}
    assert (await client.get("/api/v1/settings", headers=viewer)).json()["viewers_see_data"] is True
    r = await client.put("/api/v1/settings", headers=admin, json={"viewers_see_data": "maybe"})
    assert r.status_code == 422
    assert (await client.put("/api/v1/settings", headers=admin, json={})).json()["viewers_see_data"] is True
