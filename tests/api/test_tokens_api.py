"""Personal API tokens over the real API: shown once, stored hashed, capped roles, expiry and revocation."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import httpx
from sqlmodel import select

from data.db import session_scope
from data.models import ApiToken
from tests.api.conftest import make_user

CONN = {"name": "c1", "kind": "postgresql", "host": "h", "database": "d", "username": "u", "password": "p"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def new_token(client: httpx.AsyncClient, who: dict[str, str], **body: object) -> dict:
    r = await client.post("/api/v1/tokens", headers=who, json={"name": "ci", **body})
    assert r.status_code == 201, r.text
    return r.json()


async def test_created_shown_once_hashed_and_works(client: httpx.AsyncClient, admin) -> None:
    made = await new_token(client, admin)
    assert made["token"].startswith("cdcs_") and made["role"] == "admin" and made["expires_at"] is None
    listed = (await client.get("/api/v1/tokens", headers=admin)).json()
    assert [t["id"] for t in listed] == [made["id"]]
    assert listed[0]["state"] == "active" and listed[0]["prefix"] == made["token"][:12]
    assert made["token"] not in str(listed)
    with session_scope() as session:  # the app's own database (SQLite or PostgreSQL, as parametrized)
        stored = session.exec(select(ApiToken.token_hash)).one()
    assert stored == hashlib.sha256(made["token"].encode()).hexdigest()
    me = await client.get("/api/v1/auth/me", headers=bearer(made["token"]))
    assert me.status_code == 200 and me.json()["email"] == "admin@example.com"
    used = (await client.get("/api/v1/tokens", headers=admin)).json()[0]
    assert used["last_used_at"] is not None


async def test_role_capped_and_effective_role(client: httpx.AsyncClient, admin, editor) -> None:
    r = await client.post("/api/v1/tokens", headers=editor, json={"name": "x", "role": "admin"})
    assert r.status_code == 403
    viewer_token = (await new_token(client, admin, role="viewer"))["token"]
    assert (await client.get("/api/v1/connections", headers=bearer(viewer_token))).status_code == 200
    r = await client.post("/api/v1/connections", headers=bearer(viewer_token), json=CONN)
    assert r.status_code == 403
    editor_token = (await new_token(client, editor))["token"]
    assert (await client.post("/api/v1/connections", headers=bearer(editor_token), json=CONN)).status_code == 201


async def test_expiry(client: httpx.AsyncClient, admin) -> None:
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    r = await client.post("/api/v1/tokens", headers=admin, json={"name": "old", "expires_at": past})
    assert r.status_code == 422
    r = await client.post("/api/v1/tokens", headers=admin, json={"name": "", "expires_in_days": 1})
    assert r.status_code == 422
    made = await new_token(client, admin, expires_in_days=7)
    expires = datetime.fromisoformat(made["expires_at"])
    assert timedelta(days=6) < expires - datetime.now(UTC) <= timedelta(days=7)


async def test_revoke_and_admin_sees_everyone(client: httpx.AsyncClient, admin) -> None:
    editor = await make_user(client, admin, "editor")
    viewer = await make_user(client, admin, "viewer")
    mine = await new_token(client, editor)
    assert (await client.get("/api/v1/tokens", headers=viewer)).json() == []
    assert (await client.delete(f"/api/v1/tokens/{mine['id']}", headers=viewer)).status_code == 404
    everyone = (await client.get("/api/v1/tokens", headers=admin)).json()
    assert [(t["id"], t["user_email"]) for t in everyone] == [(mine["id"], "editor@example.com")]
    assert (await client.delete(f"/api/v1/tokens/{mine['id']}", headers=admin)).status_code == 204
    r = await client.get("/api/v1/auth/me", headers=bearer(mine["token"]))
    assert r.status_code == 401 and "revoked" in r.json()["detail"]
    assert (await client.get("/api/v1/tokens", headers=editor)).json()[0]["state"] == "revoked"
    r = await client.get("/api/v1/auth/me", headers=bearer("cdcs_" + "x" * 43))
    assert r.status_code == 401 and "unknown" in r.json()["detail"]
    own = await new_token(client, editor)
    assert (await client.delete(f"/api/v1/tokens/{own['id']}", headers=editor)).status_code == 204


async def test_token_actions_audited_as_token(client: httpx.AsyncClient, admin) -> None:
    made = await new_token(client, admin, role="editor")
    by_token = await new_token(client, bearer(made["token"]), role="viewer")
    viewer = await make_user(client, admin, "viewer")
    assert (await client.post("/api/v1/connections", headers=viewer, json=CONN)).status_code == 403
    trail = (await client.get("/api/v1/audit", headers=admin)).json()
    created = next(e for e in trail if e["object_type"] == "token" and e["object_id"] == str(by_token["id"]))
    assert created["actor_type"] == "token" and created["token_id"] == made["id"]
    refused = next(e for e in trail if e["outcome"] == "refused")
    assert refused["user_email"] == "viewer@example.com" and refused["target"] == "POST /api/v1/connections"
    token_entry = next(e for e in trail if e["action"] == "token.create" and e["object_id"] == str(made["id"]))
    assert token_entry["object_type"] == "token" and token_entry["changes"]["role"] == [None, "editor"]
    csv = await client.get("/api/v1/audit", headers=admin, params={"format": "csv", "action": "token."})
    assert csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.strip().splitlines()
    assert lines[0].startswith("id,at,user_email,action") and len(lines) == 3 and "token.create" in lines[1]
    only = (await client.get("/api/v1/audit", headers=admin, params={"user": "VIEWER"})).json()
    assert only and all(e["user_email"] == "viewer@example.com" for e in only)
