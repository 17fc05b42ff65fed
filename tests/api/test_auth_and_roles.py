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
