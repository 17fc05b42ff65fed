"""Left alone, through a source outage: the source cluster stops while a pipeline streams; the alert fires and
its webhook arrives (signed), the pipeline retries by itself, the source comes back, the pipeline recovers
without anyone pressing Start, the resolve arrives, and the target equals the source exactly."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json

import pytest
from pytest_httpserver import HTTPServer

from tests.api.test_cdc_api import run_sql
from tests.api.test_recovery import (  # noqa: F401 - fixtures
    converge,
    fast_retry,
    pg_ctl,
    source_db,
    source_pg,
    start_streaming,
    status_until,
)

SECRET = "hook-secret-for-the-test"


@pytest.fixture
def fast_checks(fast_retry, monkeypatch: pytest.MonkeyPatch) -> None:
    """Health checks (and so alert evaluation) every half second (request it before `client`)."""
    from core.config import get_settings

    monkeypatch.setenv("CDC_STUDIO_HEALTH_INTERVAL_S", "0.5")
    get_settings.cache_clear()


def _alerts_posted(httpserver: HTTPServer) -> list[dict]:
    bodies = []
    for request, _response in httpserver.log:
        body = request.get_data()
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert request.headers["X-CDC-Studio-Signature"] == expected
        bodies.append(json.loads(body)["alert"])
    return bodies


async def _until(check, timeout: float = 60):  # noqa: ANN001, ANN202
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (found := check()):
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.2)
    return found


async def test_an_outage_alerts_recovers_by_itself_and_resolves(
    fast_checks, client, admin, source_pg, source_db, pg, target_db, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    r = await client.post(
        "/api/v1/channels",
        headers=admin,
        json={"name": "on-call", "kind": "webhook", "config": {"url": httpserver.url_for("/hook"), "secret": SECRET}},
    )
    assert r.status_code == 201, r.text
    rules = (await client.get("/api/v1/alert-rules", headers=admin)).json()
    (error_rule,) = [x for x in rules if x["kind"] == "pipeline_error" and x["pipeline_id"] is None]
    r = await client.put(f"/api/v1/alert-rules/{error_rule['id']}", headers=admin, json={"for_seconds": 1})
    assert r.status_code == 200, r.text
    pid = await start_streaming(client, admin, source_pg, source_db, pg, target_db)

    await asyncio.to_thread(pg_ctl, source_pg, "-m", "fast", "-w", "stop")
    try:
        await status_until(client, admin, pid, lambda s: s["state"] == "ERROR" and s["retry"])
        fired = await _until(lambda: [a for a in _alerts_posted(httpserver) if a["state"] == "firing"])
        assert [(a["kind"], a["severity"], a["pipeline_id"]) for a in fired] == [("pipeline_error", "critical", pid)]
        assert fired[0]["pipeline_name"] == "recovering" and fired[0]["started_at"]
        firing = (await client.get("/api/v1/monitoring/alerts?state=firing", headers=admin)).json()
        assert [a["kind"] for a in firing] == ["pipeline_error"], firing
        health = (await client.get(f"/api/v1/monitoring/pipelines/{pid}/health", headers=admin)).json()
        assert health["status"] == "failing", health
        checks = {c["name"]: c["status"] for c in health["checks"]}
        assert checks["source_reachable"] == "failing", health
    finally:
        await asyncio.to_thread(pg_ctl, source_pg, "-w", "-t", "60", "start")
    run_sql(
        source_pg, source_db, "UPDATE app.items SET n = n + 1 WHERE id % 7 = 0", "DELETE FROM app.items WHERE id < 50"
    )

    await status_until(client, admin, pid, lambda s: s["state"] == "RUNNING" and s["cdc_status"] == "RUNNING")
    resolved = await _until(lambda: [a for a in _alerts_posted(httpserver) if a["state"] == "resolved"])
    assert [(a["kind"], a["id"]) for a in resolved] == [("pipeline_error", fired[0]["id"])]
    assert resolved[0]["resolved_at"]
    await converge(source_pg, source_db, pg, target_db)
    # one notification per fire and per resolve, however many health rounds saw the outage
    assert [a["state"] for a in _alerts_posted(httpserver)] == ["firing", "resolved"]
    notes = (await client.get(f"/api/v1/monitoring/alerts/{fired[0]['id']}/notifications", headers=admin)).json()
    assert sorted((n["event"], n["status"]) for n in notes) == [("firing", "sent"), ("resolved", "sent")], notes
    await client.post(f"/api/v1/pipelines/{pid}/stop", headers=admin)
    await status_until(client, admin, pid, lambda s: s["state"] == "STOPPED")
