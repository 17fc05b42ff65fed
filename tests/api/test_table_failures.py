"""One table's failure is that table's: refused starts, tables set aside while the others stream, retries.

Real PostgreSQL (wal_level=logical) through the API of an app in this process.
"""

from __future__ import annotations

import asyncio
from urllib.parse import quote

from tests.api.test_cdc_api import converge, rows, run_sql, slots
from tests.api.test_pipelines_api import make_connections, pipeline_body, wait_for_state

SEED = (
    "CREATE SCHEMA app",
    "CREATE TABLE app.good (id int PRIMARY KEY, v int NOT NULL)",
    "CREATE TABLE app.bad (id int PRIMARY KEY, v int NOT NULL)",
    "CREATE TABLE app.nokey (v text)",
    "INSERT INTO app.good SELECT g, g FROM generate_series(1, 500) g",
    "INSERT INTO app.bad SELECT g, g FROM generate_series(1, 50) g",
)


GOOD = "SELECT id, v FROM {}.good ORDER BY id"
BAD = "SELECT id, v FROM {}.bad ORDER BY id"


async def _pipeline(client, admin, pg, pg_db, target_db, conns: tuple[int, int] | None = None, **overrides) -> int:
    src, tgt = conns or await make_connections(client, admin, pg, pg_db, target_db)
    body = pipeline_body(
        src,
        tgt,
        **{
            "source_schema": "app",
            "target_schema": "copy",
            "mode": "FULL_LOAD_AND_CDC",
            "tables": ["good", "bad"],
            **overrides,
        },
    )
    r = await client.post("/api/v1/pipelines", headers=admin, json=body)
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def _table(client, admin, pid: int, source: str, statuses: set[str], timeout: float = 30) -> dict:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        status = (await client.get(f"/api/v1/pipelines/{pid}/status", headers=admin)).json()
        table = next((t for t in status["tables"] if t["source"] == source), None)
        if table is not None and table["status"] in statuses:
            return status
        assert loop.time() < deadline, status
        await asyncio.sleep(0.2)


async def test_a_pipeline_that_does_not_validate_does_not_start(client, admin, pg, pg_db, target_db) -> None:
    run_sql(pg, pg_db, *SEED)
    pid = await _pipeline(client, admin, pg, pg_db, target_db, tables=["good", "nokey"], on_table_error="stop")
    report = (await client.post(f"/api/v1/pipelines/{pid}/validate", headers=admin)).json()
    nokey = next(t for t in report["tables"] if t["source"] == "app.nokey")
    assert report["ok"] is False and report["startable"] is False
    assert nokey["errors"] and "no primary key" in nokey["errors"][0]
    r = await client.post(f"/api/v1/pipelines/{pid}/start", headers=admin)
    assert r.status_code == 422, r.text
    assert any("app.nokey has no primary key" in d["msg"] for d in r.json()["detail"])
    status = (await client.get(f"/api/v1/pipelines/{pid}/status", headers=admin)).json()
    assert status["state"] == "NOT_STARTED"
    assert slots(pg, pg_db) == [] and rows(pg, target_db, "SELECT to_regclass('copy.good')") == [(None,)]


async def test_a_refused_table_fails_alone_while_the_others_stream(client, admin, pg, pg_db, target_db) -> None:
    run_sql(pg, pg_db, *SEED)
    pid = await _pipeline(client, admin, pg, pg_db, target_db, tables=["good", "nokey"])
    report = (await client.post(f"/api/v1/pipelines/{pid}/validate", headers=admin)).json()
    assert report["ok"] is False and report["startable"] is True
    r = await client.post(f"/api/v1/pipelines/{pid}/start", headers=admin)
    assert r.status_code == 200, r.text
    status = await wait_for_state(client, admin, pid, {"RUNNING", "ERROR"})
    assert status["state"] == "RUNNING" and status["health"] == "degraded", status
    nokey = next(t for t in status["tables"] if t["source"] == "app.nokey")
    assert nokey["status"] == "FAILED" and "no primary key" in nokey["error"]
    assert status["failed_tables"] == ["app.nokey"]
    run_sql(pg, pg_db, "UPDATE app.good SET v = v + 1 WHERE id <= 100", "INSERT INTO app.nokey VALUES ('x')")
    await converge(pg, pg_db, target_db, GOOD.format("app"), GOOD.format("copy"))
    assert rows(pg, target_db, "SELECT to_regclass('copy.nokey')") == [(None,)]  # never loaded


async def test_a_table_that_fails_to_load_is_set_aside_then_retried(client, admin, pg, pg_db, target_db) -> None:
    run_sql(pg, pg_db, *SEED, "UPDATE app.bad SET v = 500 WHERE id = 7")
    # The target refuses one of bad's rows: its load fails, good's does not.
    run_sql(
        pg,
        target_db,
        "CREATE SCHEMA copy",
        "CREATE TABLE copy.bad (id int PRIMARY KEY, v int NOT NULL CONSTRAINT small CHECK (v < 100))",
    )
    pid = await _pipeline(client, admin, pg, pg_db, target_db)
    assert (await client.post(f"/api/v1/pipelines/{pid}/start", headers=admin)).status_code == 200
    status = await _table(client, admin, pid, "app.bad", {"FAILED"})
    status = await wait_for_state(client, admin, pid, {"RUNNING", "ERROR"})
    assert status["state"] == "RUNNING" and status["cdc_status"] == "RUNNING", status
    bad = next(t for t in status["tables"] if t["source"] == "app.bad")
    assert "small" in bad["error"], bad
    run_sql(
        pg,
        pg_db,
        "UPDATE app.good SET v = -v WHERE id % 7 = 0",
        "DELETE FROM app.good WHERE id > 490",
        "UPDATE app.bad SET v = v + 1",
    )
    await converge(pg, pg_db, target_db, GOOD.format("app"), GOOD.format("copy"))
    assert rows(pg, target_db, "SELECT count(*) FROM copy.bad") == [(0,)]  # the failed copy rolled back

    source = quote("app.bad", safe="")
    # The cause fixed, the table is loaded again alone while good keeps streaming.
    run_sql(pg, target_db, "ALTER TABLE copy.bad DROP CONSTRAINT small")
    r = await client.post(f"/api/v1/pipelines/{pid}/tables/{source}/retry", headers=admin)
    assert r.status_code == 200, r.text
    status = await _table(client, admin, pid, "app.bad", {"COMPLETED"})
    status = await wait_for_state(client, admin, pid, {"RUNNING", "ERROR"})
    assert status["state"] == "RUNNING" and status["health"] == "ok", status
    run_sql(
        pg,
        pg_db,
        "UPDATE app.bad SET v = v * 2 WHERE id < 20",
        "INSERT INTO app.bad VALUES (1000, 1)",
        "INSERT INTO app.good VALUES (1000, 1)",
    )
    await converge(pg, pg_db, target_db, BAD.format("app"), BAD.format("copy"))
    await converge(pg, pg_db, target_db, GOOD.format("app"), GOOD.format("copy"))
    r = await client.post(f"/api/v1/pipelines/{pid}/tables/{source}/retry", headers=admin)
    assert r.status_code == 409  # only a FAILED table is retried


async def test_a_table_that_fails_to_apply_is_set_aside_and_the_rest_goes_on(
    client, admin, pg, pg_db, target_db
) -> None:
    run_sql(pg, pg_db, *SEED)
    pid = await _pipeline(client, admin, pg, pg_db, target_db)
    assert (await client.post(f"/api/v1/pipelines/{pid}/start", headers=admin)).status_code == 200
    status = await wait_for_state(client, admin, pid, {"RUNNING", "ERROR"})
    assert status["state"] == "RUNNING", status
    await converge(pg, pg_db, target_db, BAD.format("app"), BAD.format("copy"))
    run_sql(pg, target_db, "ALTER TABLE copy.bad ADD CONSTRAINT small CHECK (v < 100)")
    # One source transaction touching both tables: bad's change cannot be applied, good's is.
    conn = pg.connect(pg_db)
    conn.autocommit = False
    with conn.cursor() as cur:
        cur.execute("UPDATE app.bad SET v = 500 WHERE id = 3")
        cur.execute("UPDATE app.good SET v = 0 WHERE id <= 10")
    conn.commit()
    conn.close()
    status = await _table(client, admin, pid, "app.bad", {"FAILED"})
    bad = next(t for t in status["tables"] if t["source"] == "app.bad")
    assert "small" in bad["error"] and status["state"] == "RUNNING", status
    run_sql(pg, pg_db, "INSERT INTO app.good VALUES (2000, 2)")
    await converge(pg, pg_db, target_db, GOOD.format("app"), GOOD.format("copy"))
    # Restarting keeps it aside (its changes are not applied) until it is retried.
    assert (await client.post(f"/api/v1/pipelines/{pid}/pause", headers=admin)).status_code == 200
    run_sql(pg, pg_db, "UPDATE app.bad SET v = 600 WHERE id = 4")
    assert (await client.post(f"/api/v1/pipelines/{pid}/resume", headers=admin)).status_code == 200
    status = await wait_for_state(client, admin, pid, {"RUNNING", "ERROR"})
    assert status["state"] == "RUNNING" and status["failed_tables"] == ["app.bad"], status
    run_sql(pg, target_db, "ALTER TABLE copy.bad DROP CONSTRAINT small")
    r = await client.post(f"/api/v1/pipelines/{pid}/tables/{quote('app.bad', safe='')}/retry", headers=admin)
    assert r.status_code == 200, r.text
    await converge(pg, pg_db, target_db, BAD.format("app"), BAD.format("copy"))


async def test_slot_names_are_never_given_twice_and_delete_forgets_offsets(client, admin, pg, pg_db, target_db) -> None:
    run_sql(pg, pg_db, *SEED)
    conns = await make_connections(client, admin, pg, pg_db, target_db)
    pid = await _pipeline(client, admin, pg, pg_db, target_db, conns, tables=["good"], mode="CDC_ONLY")
    first = (await client.get(f"/api/v1/pipelines/{pid}", headers=admin)).json()["slot_name"]
    assert first.startswith("cdc_studio_") and f"_p{pid}_" in first
    assert (await client.post(f"/api/v1/pipelines/{pid}/start", headers=admin)).status_code == 200
    await wait_for_state(client, admin, pid, {"RUNNING"})
    run_sql(pg, pg_db, "INSERT INTO app.good VALUES (5000, 1)")
    await converge(
        pg,
        pg_db,
        target_db,
        "SELECT count(*) FROM app.good WHERE id = 5000",
        "SELECT count(*) FROM copy.good WHERE id = 5000",
    )
    assert [s for s, _ in slots(pg, pg_db)] == [first]
    assert rows(pg, target_db, f"SELECT count(*) FROM cdc_studio.offsets WHERE pipeline_id = {pid}") == [(1,)]
    assert (await client.delete(f"/api/v1/pipelines/{pid}", headers=admin)).status_code == 204
    assert rows(pg, target_db, f"SELECT count(*) FROM cdc_studio.offsets WHERE pipeline_id = {pid}") == [(0,)]
    again = await _pipeline(client, admin, pg, pg_db, target_db, conns, tables=["good"], mode="CDC_ONLY", name="again")
    second = (await client.get(f"/api/v1/pipelines/{again}", headers=admin)).json()["slot_name"]
    assert again != pid and second != first
