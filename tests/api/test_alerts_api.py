"""Health, alerts and alert rules over the API on the real app: shapes, roles, validation."""

from __future__ import annotations

import asyncio

from core.monitoring import alerts, rules
from tests.api.test_pipelines_api import make_connections, pipeline_body, seed_source, wait_for_state

RULE_FIELDS = {"id", "pipeline_id", "kind", "threshold", "for_seconds", "severity", "enabled"}
ALERT_FIELDS = {
    "id",
    "rule_id",
    "kind",
    "severity",
    "state",
    "pipeline_id",
    "pipeline_name",
    "object",
    "message",
    "value",
    "threshold",
    "started_at",
    "fired_at",
    "resolved_at",
    "acked_by",
    "acked_at",
    "silenced_until",
}


async def _pipeline(client, admin, pg, pg_db, target_db) -> int:
    seed_source(pg, pg_db)
    src, tgt = await make_connections(client, admin, pg, pg_db, target_db)
    r = await client.post("/api/v1/pipelines", headers=admin, json=pipeline_body(src, tgt))
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def test_alert_rules_crud_validation_and_roles(client, admin, editor, viewer, pg, pg_db, target_db) -> None:
    pid = await _pipeline(client, admin, pg, pg_db, target_db)
    r = await client.get("/api/v1/alert-rules", headers=viewer)
    assert r.status_code == 200
    defaults = r.json()
    assert len(defaults) == len(rules.DEFAULT_RULES) and all(RULE_FIELDS <= set(d) for d in defaults)
    assert all(d["pipeline_id"] is None for d in defaults)
    assert {d["kind"] for d in defaults} == set(rules.KINDS)

    body = {"pipeline_id": pid, "kind": "lag_seconds", "threshold": 30, "for_seconds": 60, "severity": "critical"}
    assert (await client.post("/api/v1/alert-rules", headers=viewer, json=body)).status_code == 403
    for bad, field in (
        ({"kind": "cpu"}, "kind"),
        ({"severity": "panic"}, "severity"),
        ({"pipeline_id": 999}, "pipeline_id"),
    ):
        r = await client.post("/api/v1/alert-rules", headers=editor, json={**body, **bad})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == field, r.text
    r = await client.post("/api/v1/alert-rules", headers=editor, json={**body, "for_seconds": -1})
    assert r.status_code == 422
    r = await client.post("/api/v1/alert-rules", headers=editor, json=body)
    assert r.status_code == 201, r.text
    own = r.json()
    assert {k: own[k] for k in body} == body and own["enabled"] is True

    listed = (await client.get(f"/api/v1/alert-rules?pipeline_id={pid}", headers=viewer)).json()
    assert len(listed) == len(rules.DEFAULT_RULES) + 1 and listed[-1]["id"] == own["id"]
    effective = rules.effective_rules(pid)
    assert [r.id for r in effective["lag_seconds"]] == [own["id"]]  # the override replaces both defaults

    r = await client.put(
        f"/api/v1/alert-rules/{own['id']}", headers=editor, json={**own, "enabled": False, "threshold": 45}
    )
    assert r.status_code == 200 and r.json()["enabled"] is False and r.json()["threshold"] == 45
    assert (await client.put(f"/api/v1/alert-rules/{own['id']}", headers=viewer, json=own)).status_code == 403
    r = await client.put(f"/api/v1/alert-rules/{own['id']}", headers=editor, json={"severity": "loud"})
    assert r.status_code == 422
    assert (await client.put("/api/v1/alert-rules/99999", headers=editor, json=own)).status_code == 404
    assert (await client.delete(f"/api/v1/alert-rules/{own['id']}", headers=viewer)).status_code == 403
    assert (await client.delete(f"/api/v1/alert-rules/{own['id']}", headers=editor)).status_code == 204
    assert (await client.delete(f"/api/v1/alert-rules/{own['id']}", headers=editor)).status_code == 404
    assert (await client.get("/api/v1/alert-rules")).status_code == 401


async def test_health_and_alerts_shapes_ack_silence(client, admin, editor, viewer, pg, pg_db, target_db) -> None:
    pid = await _pipeline(client, admin, pg, pg_db, target_db)
    r = await client.get("/api/v1/monitoring/health", headers=viewer)
    assert r.status_code == 200
    system = r.json()
    assert system["status"] in ("healthy", "degraded", "failing")
    assert {"scheduler", "app_database"} <= {c["name"] for c in system["checks"]}
    assert all(set(c) == {"name", "status", "detail", "checked_at"} for c in system["checks"])
    assert (await client.get("/api/v1/monitoring/pipelines/999/health", headers=viewer)).status_code == 404
    r = await client.get(f"/api/v1/monitoring/pipelines/{pid}/health", headers=viewer)
    assert r.status_code == 200 and r.json()["status"] == "healthy"  # not started: nothing to check yet

    assert (await client.post(f"/api/v1/pipelines/{pid}/start", headers=admin)).status_code == 200
    status = await wait_for_state(client, admin, pid, {"STOPPED", "ERROR"})
    assert status["state"] == "STOPPED", status
    r = await client.get(f"/api/v1/monitoring/pipelines/{pid}/health", headers=viewer)
    health = r.json()
    names = {c["name"]: c for c in health["checks"]}
    assert names["source_reachable"]["status"] == "ok" and names["target_reachable"]["status"] == "ok", health

    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, alerts.raise_condition, pid, "data_mismatch", "shop.orders", 2.0, "2 rows differ")
    r = await client.get("/api/v1/monitoring/alerts", headers=viewer)
    assert r.status_code == 200
    (alert,) = r.json()
    assert set(alert) == ALERT_FIELDS
    assert alert["kind"] == "data_mismatch" and alert["state"] == "firing" and alert["severity"] == "critical"
    assert alert["pipeline_name"] == "shop copy" and alert["object"] == "shop.orders" and alert["value"] == 2.0
    aid = alert["id"]

    assert (await client.post(f"/api/v1/monitoring/alerts/{aid}/ack", headers=viewer)).status_code == 403
    r = await client.post(f"/api/v1/monitoring/alerts/{aid}/ack", headers=editor)
    assert r.status_code == 200 and r.json()["acked_by"] == "editor@example.com" and r.json()["acked_at"]
    assert (await client.post("/api/v1/monitoring/alerts/99999/ack", headers=editor)).status_code == 404
    url = f"/api/v1/monitoring/alerts/{aid}/silence"
    assert (await client.post(url, headers=editor, json={"hours": 0})).status_code == 422
    assert (await client.post(url, headers=viewer, json={"hours": 2})).status_code == 403
    r = await client.post(url, headers=editor, json={"hours": 2})
    assert r.status_code == 200 and r.json()["silenced_until"] is not None

    await loop.run_in_executor(None, alerts.clear_condition, pid, "data_mismatch", "shop.orders")
    get = lambda q: client.get(f"/api/v1/monitoring/alerts{q}", headers=viewer)  # noqa: E731
    assert (await get("")).json() == []
    resolved = (await get("?state=resolved")).json()
    assert [a["id"] for a in resolved] == [aid] and resolved[0]["resolved_at"] is not None
    assert [a["id"] for a in (await get(f"?state=all&pipeline_id={pid}")).json()] == [aid]
    assert (await get("?state=bogus")).status_code == 422
