"""Schema drift raises the schema_drift alert: a change propagated to the target, and a table the drift
policy sets aside (`stop_table`), both reach the alert with what happened."""

from __future__ import annotations

import asyncio

from core.monitoring import alerts
from tests.api.test_cdc_api import SEED, converge, run_sql
from tests.api.test_pipelines_api import make_connections, pipeline_body, wait_for_state


async def _firing_drift(client, admin, pid: int) -> list[dict]:  # noqa: ANN001
    for _ in range(100):
        await asyncio.to_thread(alerts.drain_events)  # what the health-check round does first
        found = (await client.get(f"/api/v1/monitoring/alerts?state=firing&pipeline_id={pid}", headers=admin)).json()
        drift = [a for a in found if a["kind"] == "schema_drift"]
        if drift:
            return drift
        await asyncio.sleep(0.2)
    raise AssertionError("no schema_drift alert")


async def test_drift_alerts_for_a_propagated_column_and_a_table_set_aside(client, admin, pg, pg_db, target_db) -> None:
    run_sql(pg, pg_db, *SEED, "CREATE TABLE app.kept (id int PRIMARY KEY, v text)")
    src, tgt = await make_connections(client, admin, pg, pg_db, target_db)
    body = pipeline_body(src, tgt, source_schema="app", target_schema="app", tables=["items", "kept"], mode="CDC_ONLY")
    body["schema_drift"] = "stop_table"
    pid = (await client.post("/api/v1/pipelines", headers=admin, json=body)).json()["id"]
    await client.post(f"/api/v1/pipelines/{pid}/start", headers=admin)
    assert (await wait_for_state(client, admin, pid, {"RUNNING", "ERROR"}))["state"] == "RUNNING"

    run_sql(
        pg,
        pg_db,
        "ALTER TABLE app.items ADD COLUMN color text",
        "INSERT INTO app.items (id, name, n) VALUES (900001, 'x', 0)",
    )
    for _ in range(150):
        status = (await client.get(f"/api/v1/pipelines/{pid}/status", headers=admin)).json()
        if "app.items" in status["failed_tables"]:
            break
        await asyncio.sleep(0.2)
    else:
        raise AssertionError(status)
    (drift,) = await _firing_drift(client, admin, pid)
    assert drift["object"] == "app.items" and "added color" in drift["message"], drift
    # the other table goes on streaming
    run_sql(pg, pg_db, "INSERT INTO app.kept VALUES (1, 'still')")
    await converge(pg, pg_db, target_db, "SELECT * FROM app.kept", "SELECT * FROM app.kept")
    await client.post(f"/api/v1/pipelines/{pid}/stop", headers=admin)
    await wait_for_state(client, admin, pid, {"STOPPED"})


async def test_a_column_added_before_the_tables_first_change_is_propagated(client, admin, pg, pg_db, target_db) -> None:
    """The source is altered after the stream began but before the table's first change in it: the first
    description of the table already has the column; the target gets it (it used to set the table aside)."""
    run_sql(pg, pg_db, *SEED)
    src, tgt = await make_connections(client, admin, pg, pg_db, target_db)
    body = pipeline_body(src, tgt, source_schema="app", target_schema="app", tables=["items"], mode="CDC_ONLY")
    pid = (await client.post("/api/v1/pipelines", headers=admin, json=body)).json()["id"]
    await client.post(f"/api/v1/pipelines/{pid}/start", headers=admin)
    assert (await wait_for_state(client, admin, pid, {"RUNNING", "ERROR"}))["state"] == "RUNNING"
    run_sql(
        pg,
        pg_db,
        "ALTER TABLE app.items ADD COLUMN color text DEFAULT 'none'",
        "INSERT INTO app.items (id, name, n, color) VALUES (900001, 'x', 0, 'red')",
    )
    query = "SELECT id, color FROM app.items WHERE id > 900000"
    await converge(pg, pg_db, target_db, query, query)
    status = (await client.get(f"/api/v1/pipelines/{pid}/status", headers=admin)).json()
    assert status["failed_tables"] == [] and status["state"] == "RUNNING", status
    (drift,) = await _firing_drift(client, admin, pid)
    assert "added color" in drift["message"], drift
    await client.post(f"/api/v1/pipelines/{pid}/stop", headers=admin)
    await wait_for_state(client, admin, pid, {"STOPPED"})
