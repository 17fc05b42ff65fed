"""A pipeline's validation_schedule runs data checks by itself on the app's scheduler, as the system, while the
pipeline streams; removing the schedule stops them."""

from __future__ import annotations

import asyncio

from tests.api.test_cdc_api import run_sql
from tests.api.test_pipelines_api import make_connections, pipeline_body, wait_for_state


async def _checks(client, admin, pid: int) -> list[dict]:  # noqa: ANN001
    r = await client.get(f"/api/v1/monitoring/pipelines/{pid}/data-quality", headers=admin)
    assert r.status_code == 200, r.text
    return r.json()


async def test_scheduled_checks_run_while_streaming(client, admin, pg, pg_db, target_db) -> None:
    run_sql(
        pg,
        pg_db,
        "CREATE SCHEMA app",
        "CREATE TABLE app.items (id bigint PRIMARY KEY, v text)",
        "INSERT INTO app.items SELECT g, 'v' || g FROM generate_series(1, 2000) g",
    )
    src, tgt = await make_connections(client, admin, pg, pg_db, target_db)
    body = pipeline_body(
        src, tgt, source_schema="app", target_schema="copy", tables=["items"], mode="FULL_LOAD_AND_CDC"
    )
    pid = (await client.post("/api/v1/pipelines", headers=admin, json=body)).json()["id"]
    assert (await client.post(f"/api/v1/pipelines/{pid}/start", headers=admin)).status_code == 200
    assert (await wait_for_state(client, admin, pid, {"RUNNING", "ERROR"}))["state"] == "RUNNING"
    assert (await _checks(client, admin, pid))[0]["state"] == "NOT_VALIDATED"

    r = await client.put(f"/api/v1/pipelines/{pid}", headers=admin, json={"validation_schedule": "*/2 * * * * *"})
    assert r.status_code == 200 and r.json()["next_validation_at"], r.text  # editable while it runs
    for _ in range(200):
        (row,) = await _checks(client, admin, pid)
        if row["state"] == "VALIDATED":
            break
        await asyncio.sleep(0.2)
    else:
        raise AssertionError(row)
    assert row["source_rows"] == row["target_rows"] == 2000 and row["mismatched_rows"] == 0, row
    first = row["check_id"]
    for _ in range(200):  # and again at the next firing
        (row,) = await _checks(client, admin, pid)
        if row["check_id"] != first and row["state"] == "VALIDATED":
            break
        await asyncio.sleep(0.2)
    else:
        raise AssertionError(row)
    audit = (await client.get(f"/api/v1/audit?action=pipeline.data_check&object_id={pid}", headers=admin)).json()
    assert audit and {(a["actor_type"], a["user_email"]) for a in audit} == {("system", "scheduler")}, audit

    r = await client.put(f"/api/v1/pipelines/{pid}", headers=admin, json={"validation_schedule": None})
    assert r.status_code == 200 and r.json()["next_validation_at"] is None, r.text
    await asyncio.sleep(3)  # let a check started just before the removal end
    (row,) = await _checks(client, admin, pid)
    await asyncio.sleep(5)
    (later,) = await _checks(client, admin, pid)
    assert later["check_id"] == row["check_id"], (row, later)
    await client.post(f"/api/v1/pipelines/{pid}/stop", headers=admin)
    await wait_for_state(client, admin, pid, {"STOPPED"})
