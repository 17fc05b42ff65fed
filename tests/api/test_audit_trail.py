"""Every mutation is in the audit trail with its object and a before/after diff, secrets masked: connections,
pipelines and their lifecycle, channels, alert rules, alerts, settings (users and tokens have their own tests).

On the real app against a real PostgreSQL; the trail is read back through GET /api/v1/audit.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import datetime, timedelta, timezone

import pytest

from core import connections
from core.errors import PermissionDenied
from core.monitoring import alerts
from core.users import authenticate
from tests.api.test_pipelines_api import make_connections, pipeline_body, seed_source, wait_for_state
from tests.conftest import ADMIN_EMAIL

HOOK_SECRET = "hook-signing-secret-4471"


async def _trail(client, admin, **query) -> list[dict]:
    r = await client.get("/api/v1/audit", headers=admin, params={"limit": 500, **query})
    assert r.status_code == 200, r.text
    return r.json()


async def _latest(client, admin, object_type: str, object_id: int | str, action: str) -> dict:
    entries = await _trail(client, admin, object_type=object_type, object_id=str(object_id), action=action)
    assert entries, f"no {action} entry for {object_type} {object_id}"
    entry = entries[0]
    assert entry["user_email"] == ADMIN_EMAIL and entry["actor_type"] == "user" and entry["outcome"] == "ok"
    return entry


async def test_connection_and_pipeline_mutations_are_audited_with_their_diff(
    client, admin, pg, pg_db, target_db
) -> None:
    seed_source(pg, pg_db)
    src, tgt = await make_connections(client, admin, pg, pg_db, target_db)
    created = await _latest(client, admin, "connection", src, "connection.create")
    assert created["target"] == "src"
    assert created["changes"]["host"] == [None, pg.host]
    assert created["changes"]["password_encrypted"] == [None, "***"]

    r = await client.put(
        f"/api/v1/connections/{src}", headers=admin, json={"port": pg.port, "password": pg.password, "name": "src2"}
    )
    assert r.status_code == 200, r.text
    updated = await _latest(client, admin, "connection", src, "connection.update")
    assert updated["changes"]["name"] == ["src", "src2"]
    assert updated["changes"]["password_encrypted"] == ["***", "***"]  # given again: shown as changed, never a value
    assert "port" not in updated["changes"]  # unchanged fields are left out

    assert (await client.post(f"/api/v1/connections/{src}/test", headers=admin)).status_code == 200
    tested = await _latest(client, admin, "connection", src, "connection.test")
    assert tested["outcome"] == "ok" and tested["target"] == "src2"

    r = await client.post("/api/v1/pipelines", headers=admin, json=pipeline_body(src, tgt))
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    made = await _latest(client, admin, "pipeline", pid, "pipeline.create")
    assert made["changes"]["mode"] == [None, "FULL_LOAD_ONLY"] and made["changes"]["tables"] == [
        None,
        ["customers", "orders"],
    ]
    r = await client.put(f"/api/v1/pipelines/{pid}", headers=admin, json={"description": "hourly"})
    assert r.status_code == 200, r.text
    edit = await _latest(client, admin, "pipeline", pid, "pipeline.update")
    assert edit["changes"] == {"description": ["nightly", "hourly"]} and edit["detail"] == "description"

    assert (await client.post(f"/api/v1/pipelines/{pid}/start", headers=admin)).status_code == 200
    started = await _latest(client, admin, "pipeline", pid, "pipeline.start")
    assert started["detail"] == "manual" and started["changes"]["state"][0] == "NOT_STARTED"
    assert (await wait_for_state(client, admin, pid, {"STOPPED", "ERROR"}))["state"] == "STOPPED"

    assert (await client.delete(f"/api/v1/pipelines/{pid}", headers=admin)).status_code == 204
    gone = await _latest(client, admin, "pipeline", pid, "pipeline.delete")
    assert gone["target"] == "shop copy" and gone["changes"]["name"] == ["shop copy", None]
    assert (await client.delete(f"/api/v1/connections/{src}", headers=admin)).status_code == 204
    deleted = await _latest(client, admin, "connection", src, "connection.delete")
    assert deleted["changes"]["name"] == ["src2", None] and deleted["changes"]["password_encrypted"] == ["***", None]

    everything = str(await _trail(client, admin))
    assert pg.password not in everything


async def test_channels_rules_alerts_and_settings_are_audited(
    client, admin, editor, pg, pg_db, target_db, httpserver
) -> None:
    httpserver.expect_request("/hook").respond_with_data("ok")
    body = {"name": "hook", "kind": "webhook", "config": {"url": httpserver.url_for("/hook"), "secret": HOOK_SECRET}}
    r = await client.post("/api/v1/channels", headers=admin, json=body)
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    assert (await _latest(client, admin, "channel", cid, "channel.create"))["changes"]["secrets_encrypted"] == [
        None,
        "***",
    ]
    r = await client.put(f"/api/v1/channels/{cid}", headers=admin, json={"min_severity": "critical"})
    assert r.status_code == 200, r.text
    edit = await _latest(client, admin, "channel", cid, "channel.update")
    assert edit["changes"] == {"min_severity": ["warning", "critical"]}
    assert (await client.post(f"/api/v1/channels/{cid}/test", headers=admin)).json()["ok"] is True
    assert (await _latest(client, admin, "channel", cid, "channel.test"))["outcome"] == "ok"
    assert (await client.delete(f"/api/v1/channels/{cid}", headers=admin)).status_code == 204
    assert (await _latest(client, admin, "channel", cid, "channel.delete"))["changes"]["name"] == ["hook", None]

    seed_source(pg, pg_db)
    src, tgt = await make_connections(client, admin, pg, pg_db, target_db)
    pid = (await client.post("/api/v1/pipelines", headers=admin, json=pipeline_body(src, tgt))).json()["id"]
    rule = {"pipeline_id": pid, "kind": "lag_seconds", "threshold": 90, "for_seconds": 300, "severity": "warning"}
    r = await client.post("/api/v1/alert-rules", headers=admin, json=rule)
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    made = await _latest(client, admin, "rule", rid, "rule.create")
    assert made["target"] == f"lag_seconds (pipeline {pid})" and made["changes"]["threshold"] == [None, 90.0]
    r = await client.put(f"/api/v1/alert-rules/{rid}", headers=admin, json={"threshold": 120, "enabled": False})
    assert r.status_code == 200, r.text
    assert (await _latest(client, admin, "rule", rid, "rule.update"))["changes"] == {
        "enabled": [True, False],
        "threshold": [90.0, 120.0],
    }
    assert (await client.delete(f"/api/v1/alert-rules/{rid}", headers=admin)).status_code == 204
    assert (await _latest(client, admin, "rule", rid, "rule.delete"))["changes"]["kind"] == ["lag_seconds", None]

    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, alerts.raise_condition, pid, "data_mismatch", "shop.orders", 2.0, "2 rows differ")
    (alert,) = (await client.get("/api/v1/monitoring/alerts", headers=admin)).json()
    assert (await client.post(f"/api/v1/monitoring/alerts/{alert['id']}/ack", headers=admin)).status_code == 200
    acked = await _latest(client, admin, "alert", alert["id"], "alert.ack")
    assert acked["target"] == "data_mismatch shop.orders" and acked["changes"]["acked_by"] == [None, ADMIN_EMAIL]
    url = f"/api/v1/monitoring/alerts/{alert['id']}/silence"
    assert (await client.post(url, headers=admin, json={"hours": 2})).status_code == 200
    silenced = await _latest(client, admin, "alert", alert["id"], "alert.silence")
    assert silenced["changes"]["silenced_until"][0] is None and silenced["changes"]["silenced_until"][1]

    assert (await client.put("/api/v1/settings", headers=admin, json={"viewers_see_data": True})).status_code == 200
    setting = await _latest(client, admin, "setting", "viewers_see_data", "settings.viewers_see_data")
    assert setting["changes"] == {"viewers_see_data": [False, True]}

    # a refusal is audited too, with who asked and what they asked for
    assert (await client.delete(f"/api/v1/pipelines/{pid}", headers=editor)).status_code == 204
    assert (await client.put("/api/v1/settings", headers=editor, json={"viewers_see_data": False})).status_code == 403
    (refused,) = [e for e in await _trail(client, admin, action="request.refused") if "settings" in e["target"]]
    assert refused["user_email"] == "editor@example.com" and refused["outcome"] == "refused"
    (deleted,) = await _trail(client, admin, object_type="pipeline", object_id=str(pid), action="pipeline.delete")
    assert deleted["user_email"] == "editor@example.com" and deleted["outcome"] == "ok"

    assert HOOK_SECRET not in str(await _trail(client, admin))


async def test_a_refusal_is_audited_once_whether_the_api_or_a_page_asked(client, admin, viewer) -> None:
    async def refusals() -> list[dict]:
        entries = await _trail(client, admin, action="request.refused")
        return [e for e in entries if e["user_email"] == "viewer@example.com"]

    # refused by the route gate
    r = await client.post("/api/v1/connections", headers=viewer, json={"name": "x"})
    assert r.status_code == 403
    # refused in core (the gate lets any role make a token): recorded there, not again by the 403 handler
    r = await client.post("/api/v1/tokens", headers=viewer, json={"name": "ci", "role": "admin"})
    assert r.status_code == 403, r.text
    gate, core_refusal = (await refusals())[::-1]
    assert gate["target"] == "POST /api/v1/connections" and gate["outcome"] == "refused"
    assert core_refusal["target"] == "POST /api/v1/tokens" and "higher than yours" in core_refusal["detail"]

    # the pages call core directly, with no request to name: the permission is named instead
    who = await asyncio.to_thread(authenticate, "viewer@example.com", "viewer-password-1")
    with pytest.raises(PermissionDenied):
        await asyncio.to_thread(connections.delete_connection, who, 1)
    page_refusal = (await refusals())[0]
    assert page_refusal["target"] == "manage_connections" and page_refusal["actor_type"] == "user"
    assert len(await refusals()) == 3


async def test_the_audit_api_filters_combine(client, admin, viewer) -> None:
    r = await client.post(
        "/api/v1/channels",
        headers=admin,
        json={"name": "hook", "kind": "webhook", "config": {"url": "http://127.0.0.1:9/h"}},
    )
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    assert (await client.put(f"/api/v1/channels/{cid}", headers=admin, json={"enabled": False})).status_code == 200
    everything = await _trail(client, admin)
    newest = datetime.fromisoformat(everything[0]["at"])

    assert [e["action"] for e in await _trail(client, admin, action="channel.")] == ["channel.update", "channel.create"]
    assert [e["action"] for e in await _trail(client, admin, object_type="channel", object_id=str(cid), limit=1)] == [
        "channel.update"
    ]
    assert {e["user_email"] for e in await _trail(client, admin, user="VIEWER@")} == {"viewer@example.com"}
    # time bounds, with an offset or as UTC without one
    after = (newest + timedelta(seconds=1)).isoformat()
    assert await _trail(client, admin, since=after) == []
    assert len(await _trail(client, admin, until=after)) == len(everything)
    tokyo = (newest - timedelta(hours=1)).astimezone(timezone(timedelta(hours=9))).isoformat()
    assert len(await _trail(client, admin, since=tokyo)) == len(everything)
    naive = (newest + timedelta(seconds=1)).replace(tzinfo=None).isoformat()
    assert await _trail(client, admin, since=naive) == []
    before_all = (newest - timedelta(days=1)).isoformat()
    assert await _trail(client, admin, until=before_all) == []

    r = await client.get("/api/v1/audit", headers=admin, params={"format": "csv", "action": "channel."})
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["action"] for row in rows] == ["channel.update", "channel.create"]
    assert json.loads(rows[0]["changes"]) == {"enabled": [True, False]}
    assert (await client.get("/api/v1/audit", headers=admin, params={"since": "yesterday"})).status_code == 422
    assert (await client.get("/api/v1/audit", headers=viewer)).status_code == 403
