"""A Kafka Connect task forced to FAIL is restarted by recovery, on the real stack, without anyone pressing
Restart failed; past the hourly limit it is left FAILED and the status says so."""

from __future__ import annotations

import asyncio

import pytest

from core import runner
from core.kafka import engine as kafka_engine
from tests.api.conftest import admin, client  # noqa: F401 - fixtures
from tests.api.test_cdc_api import converge, run_sql
from tests.api.test_pipelines_api import make_connections, pipeline_body, wait_for_state
from tests.core.kafka.test_engine import kafka_env  # noqa: F401 - fixture

SEED = (
    "CREATE SCHEMA app",
    "CREATE TABLE app.items (id bigint PRIMARY KEY, name text, n int NOT NULL)",
    "INSERT INTO app.items SELECT g, 'i' || g, 0 FROM generate_series(1, 500) g",
)
ITEMS = "SELECT id, name, n FROM {}.items ORDER BY id"


@pytest.fixture
def fast_retry(app_env, monkeypatch: pytest.MonkeyPatch) -> None:
    """Backoff of a test's scale, and a few automatic restarts an hour (a busy machine may see a restarted task
    fail once more; the test lowers the limit to what was used before it checks the giving up)."""
    from core.config import get_settings

    monkeypatch.setenv("CDC_STUDIO_RETRY_BASE_S", "0.5")
    monkeypatch.setenv("CDC_STUDIO_RETRY_CAP_S", "2")
    monkeypatch.setattr(runner, "CONNECTOR_RESTARTS_PER_HOUR", 5)
    get_settings.cache_clear()


def fail_task(pg, db: str, slot: str) -> None:  # noqa: ANN001
    """Kill Debezium's replication session: with no retries configured its task FAILs."""
    run_sql(pg, db, f"SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = '{slot}'")


async def status_until(client, admin, pid: int, check, timeout: float = 90) -> dict:  # noqa: ANN001, F811
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        status = (await client.get(f"/api/v1/pipelines/{pid}/status", headers=admin)).json()
        if check(status):
            return status
        assert loop.time() < deadline, status
        await asyncio.sleep(0.3)


async def test_a_failed_task_is_restarted_automatically_then_left_failed(  # noqa: F811
    kafka_env, fast_retry, client, admin, pg, pg_db, target_db, monkeypatch
) -> None:
    real_config = kafka_engine.KafkaCdcWorker.connector_config
    monkeypatch.setattr(
        kafka_engine.KafkaCdcWorker, "connector_config", lambda self: {**real_config(self), "errors.max.retries": "0"}
    )
    run_sql(pg, pg_db, *SEED)
    src, tgt = await make_connections(client, admin, pg, pg_db, target_db)
    body = pipeline_body(
        src, tgt, source_schema="app", target_schema="copy", tables=["items"], mode="FULL_LOAD_AND_CDC"
    )
    body["engine"] = "kafka_connect"
    r = await client.post("/api/v1/pipelines", headers=admin, json=body)
    assert r.status_code == 201, r.text
    pid, slot = r.json()["id"], r.json()["slot_name"]
    assert (await client.post(f"/api/v1/pipelines/{pid}/start", headers=admin)).status_code == 200
    status = await wait_for_state(client, admin, pid, {"RUNNING", "ERROR"}, timeout=120)
    assert status["state"] == "RUNNING", status
    await converge(pg, pg_db, target_db, ITEMS.format("app"), ITEMS.format("copy"))

    # The task FAILs: recovery restarts it by itself and the pipeline streams again.
    fail_task(pg, pg_db, slot)
    failed = await status_until(client, admin, pid, lambda s: s["state"] == "ERROR")
    assert failed["connector"]["tasks"][0]["state"] == "FAILED", failed
    # the restart is planned at recovery's next tick (and may be done by the time we look again)
    planned = await status_until(
        client,
        admin,
        pid,
        lambda s: (
            s["retry"]
            and (
                s["health"] == "recovering"
                or s["state"] == "RUNNING"
                or (s["connector"] or {}).get("restarts", {}).get("count")
            )
        ),
    )
    assert planned["retry"]["error_kind"] == "transient", planned
    run_sql(pg, pg_db, "UPDATE app.items SET n = n + 1 WHERE id <= 50", "DELETE FROM app.items WHERE id > 490")
    # Recovery notes a restart, then counts the attempt on the pipeline: a status read between the two sees one
    # more restart than attempts, so wait for both. (A restart count kept from an earlier test's pipeline 1 made
    # them differ for good: the app's stop now forgets the process's restart record.)
    back = await status_until(
        client,
        admin,
        pid,
        lambda s: (
            s["state"] == "RUNNING"
            and (s["connector"] or {}).get("restarts", {}).get("count", 0) >= 1
            and (s["retry"] or {}).get("attempt") == s["connector"]["restarts"]["count"]
        ),
    )
    restarts = back["connector"]["restarts"]
    assert restarts["last_at"], back
    await converge(pg, pg_db, target_db, ITEMS.format("app"), ITEMS.format("copy"))

    # Again, past the limit (lowered to the restarts already used this hour): left FAILED, terminal, and why.
    monkeypatch.setattr(runner, "CONNECTOR_RESTARTS_PER_HOUR", restarts["count"])
    fail_task(pg, pg_db, slot)
    given_up = await status_until(client, admin, pid, lambda s: s["state"] == "ERROR")
    assert given_up["retry"]["error_kind"] == "terminal" and given_up["health"] == "failed", given_up
    assert "giving up" in given_up["error_message"] and given_up["connector"]["restarts"]["gave_up"], given_up
    assert given_up["retry"]["next_at"] is None
    # A person's Recover restarts the failed tasks (not counted against the automatic limit).
    r = await client.post(f"/api/v1/pipelines/{pid}/recover", headers=admin)
    assert r.status_code == 200, r.text
    await status_until(client, admin, pid, lambda s: s["state"] == "RUNNING")
    assert (await client.delete(f"/api/v1/pipelines/{pid}", headers=admin)).status_code == 204
