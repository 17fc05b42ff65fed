"""Embedded CDC through the API against real PostgreSQL (wal_level=logical)."""

from __future__ import annotations

import asyncio
import random
import threading

import psycopg2

from tests.api.test_pipelines_api import make_connections, pipeline_body, wait_for_state
from tests.pgcluster import PgCluster


def run_sql(pg: PgCluster, db: str, *statements: str) -> None:
    conn = pg.connect(db)
    with conn.cursor() as cur:
        for s in statements:
            cur.execute(s)
    conn.close()


def rows(pg: PgCluster, db: str, query: str) -> list[tuple]:
    conn = pg.connect(db)
    with conn.cursor() as cur:
        cur.execute(query)
        out = cur.fetchall()
    conn.close()
    return out


def slots(pg: PgCluster, db: str) -> list[tuple]:
    return rows(pg, db, "SELECT slot_name, confirmed_flush_lsn::text FROM pg_replication_slots")


async def converge(
    pg: PgCluster, source_db: str, target_db: str, query_src: str, query_tgt: str, timeout: float = 60
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        src = rows(pg, source_db, query_src)
        try:
            tgt = rows(pg, target_db, query_tgt)
        except psycopg2.Error as exc:  # e.g. a column the target does not have yet
            tgt = [repr(exc)]
        if src == tgt:
            return
        assert loop.time() < deadline, (len(src), len(tgt), _differences(src, tgt))
        await asyncio.sleep(0.3)


def _differences(src: list[tuple], tgt: list[tuple]) -> list:
    """The first differing rows, column by column (for failure messages)."""
    out = []
    for r, t in zip(src, tgt, strict=False):
        if r != t:
            out.append([(i, a, b) for i, (a, b) in enumerate(zip(r, t, strict=False)) if a != b] or (r, t))
        if len(out) == 3:
            break
    return out


def writer(pg: PgCluster, db: str, stop: threading.Event, seed: int) -> None:
    """Single-row transactions: inserts, counter updates, deletes (committed while the pipeline starts)."""
    rnd = random.Random(seed)
    conn = pg.connect(db)
    next_id = 100_000
    with conn.cursor() as cur:
        while not stop.is_set():
            roll = rnd.random()
            if roll < 0.5:
                cur.execute("INSERT INTO app.items (id, name, n) VALUES (%s, %s, 0)", (next_id, f"w{next_id}"))
                next_id += 1
            elif roll < 0.85:
                cur.execute("UPDATE app.items SET n = n + 1 WHERE id = %s", (rnd.randint(1, 5000),))
            else:
                cur.execute("DELETE FROM app.items WHERE id = %s", (rnd.randint(1, 5000),))
    conn.close()


SEED = (
    "CREATE SCHEMA app",
    "CREATE TABLE app.items (id bigint PRIMARY KEY, name text, n int NOT NULL, big text)",
    "INSERT INTO app.items SELECT g, 'i' || g, 0, NULL FROM generate_series(1, 20000) g",
)
ITEMS = "SELECT id, name, n, big FROM {}.items ORDER BY id"


async def test_handoff_under_load_pause_resume_lag_and_delete(client, admin, pg, pg_db, target_db) -> None:
    run_sql(pg, pg_db, *SEED)
    src, tgt = await make_connections(client, admin, pg, pg_db, target_db)
    body = pipeline_body(
        src, tgt, source_schema="app", target_schema="copy", tables=["items"], mode="FULL_LOAD_AND_CDC"
    )
    pid = (await client.post("/api/v1/pipelines", headers=admin, json=body)).json()["id"]
    assert (await client.post(f"/api/v1/pipelines/{pid}/validate", headers=admin)).json()["ok"] is True
    stop = threading.Event()
    w = threading.Thread(target=writer, args=(pg, pg_db, stop, 1))
    w.start()
    try:
        await asyncio.sleep(0.3)
        r = await client.post(f"/api/v1/pipelines/{pid}/start", headers=admin)
        assert r.status_code == 200, r.text
        status = await wait_for_state(client, admin, pid, {"RUNNING", "ERROR"})
        assert status["state"] == "RUNNING", status
        assert status["full_load_status"] == "COMPLETED" and status["cdc_status"] == "RUNNING"
        await asyncio.sleep(1.5)
    finally:
        stop.set()
        w.join()
    await converge(pg, pg_db, target_db, ITEMS.format("app"), ITEMS.format("copy"))

    # Pause: changes wait in the slot; resume: they arrive.
    slot = (await client.get(f"/api/v1/pipelines/{pid}", headers=admin)).json()["slot_name"]
    r = await client.post(f"/api/v1/pipelines/{pid}/pause", headers=admin)
    assert r.status_code == 200 and r.json()["state"] == "PAUSED", r.text
    # Paused means nobody reads the slot: it is inactive (a pause that kept streaming would hold it active),
    # and the changes written now wait in it (lag_bytes: the WAL past its confirmed position).
    active = f"SELECT active FROM pg_replication_slots WHERE slot_name = '{slot}'"
    assert rows(pg, pg_db, active) == [(False,)]
    run_sql(pg, pg_db, "UPDATE app.items SET name = 'paused' WHERE id <= 10", "DELETE FROM app.items WHERE id = 20000")
    assert rows(pg, target_db, "SELECT count(*) FROM copy.items WHERE name = 'paused'") == [(0,)]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while (lag := (await client.get(f"/api/v1/pipelines/{pid}/lag", headers=admin)).json())["lag_bytes"] == 0:
        assert loop.time() < deadline, lag  # the changes must show as WAL the slot still holds
        await asyncio.sleep(0.2)
    assert lag["state"] == "PAUSED" and lag["lag_bytes"] > 0 and lag["slot_active"] is False
    assert rows(pg, pg_db, active) == [(False,)]
    before = dict(slots(pg, pg_db))[slot]
    r = await client.post(f"/api/v1/pipelines/{pid}/resume", headers=admin)
    assert r.status_code == 200, r.text
    await wait_for_state(client, admin, pid, {"RUNNING"})
    await converge(pg, pg_db, target_db, ITEMS.format("app"), ITEMS.format("copy"))
    lag = (await client.get(f"/api/v1/pipelines/{pid}/lag", headers=admin)).json()
    assert lag["events"] >= 2 and lag["update_count"] >= 1 and lag["delete_count"] == 1

    # The slot's confirmed position advances after applies.
    deadline = loop.time() + 15
    while dict(slots(pg, pg_db))[slot] == before:
        assert loop.time() < deadline
        await asyncio.sleep(0.3)

    # Events reached the monitoring log and dashboard.
    events = (await client.get("/api/v1/monitoring/events", headers=admin, params={"pipeline_id": pid})).json()
    assert events and events[0]["table"] == "app.items"
    dash = (await client.get("/api/v1/monitoring/dashboard", headers=admin)).json()
    assert dash["pipelines_running"] == 1 and dash["update_count"] >= 10

    # Delete: stops the stream and leaves no slot or publication behind.
    assert (await client.delete(f"/api/v1/pipelines/{pid}", headers=admin)).status_code == 204
    assert slots(pg, pg_db) == []
    assert rows(pg, pg_db, "SELECT pubname FROM pg_publication") == []


async def test_cdc_only_schema_change_toast_and_truncate(client, admin, pg, pg_db, target_db) -> None:
    run_sql(pg, pg_db, *SEED)
    src, tgt = await make_connections(client, admin, pg, pg_db, target_db)
    body = pipeline_body(src, tgt, source_schema="app", target_schema="app", tables=["items"], mode="CDC_ONLY")
    pid = (await client.post("/api/v1/pipelines", headers=admin, json=body)).json()["id"]
    await client.post(f"/api/v1/pipelines/{pid}/start", headers=admin)
    status = await wait_for_state(client, admin, pid, {"RUNNING", "ERROR"})
    assert status["state"] == "RUNNING", status
    # CDC_ONLY created the target table empty and now carries only new changes.
    assert rows(pg, target_db, "SELECT count(*) FROM app.items") == [(0,)]
    # md5 text barely compresses: 320 kB is stored out of line (TOAST) and not resent by unrelated updates.
    run_sql(
        pg,
        pg_db,
        "INSERT INTO app.items SELECT 900001, 'a', 0, string_agg(md5(g::text), '') FROM generate_series(1, 10000) g",
        "INSERT INTO app.items VALUES (900002, 'b', 0, NULL)",
    )
    run_sql(pg, pg_db, "UPDATE app.items SET n = n + 1 WHERE id = 900001")  # big is TOASTed and unchanged
    run_sql(pg, pg_db, "UPDATE app.items SET id = 900003 WHERE id = 900002")  # a key update
    run_sql(
        pg,
        pg_db,
        "ALTER TABLE app.items ADD COLUMN color text",
        "INSERT INTO app.items (id, name, n, color) VALUES (900004, 'c', 0, 'red')",
    )
    query = "SELECT id, n, length(big), color FROM app.items WHERE id > 900000 ORDER BY id"
    await converge(pg, pg_db, target_db, query, query)
    assert rows(pg, target_db, query) == [(900001, 1, 320_000, None), (900003, 0, None, None), (900004, 0, None, "red")]
    run_sql(pg, pg_db, "TRUNCATE app.items")
    await converge(pg, pg_db, target_db, "SELECT count(*) FROM app.items", "SELECT count(*) FROM app.items")
    # A dropped source table stops the pipeline in ERROR with the reason; the target keeps its data.
    run_sql(pg, pg_db, "INSERT INTO app.items (id, name, n) VALUES (1, 'kept', 0)")
    await converge(pg, pg_db, target_db, "SELECT id FROM app.items", "SELECT id FROM app.items")
    run_sql(pg, pg_db, "DROP TABLE app.items")
    status = await wait_for_state(client, admin, pid, {"ERROR"}, timeout=30)
    assert "no longer exist" in status["error_message"]
    assert rows(pg, target_db, "SELECT id FROM app.items") == [(1,)]
    assert (await client.delete(f"/api/v1/pipelines/{pid}", headers=admin)).status_code == 204
    assert slots(pg, pg_db) == []


async def test_table_without_key_is_refused_for_cdc(client, admin, pg, pg_db, target_db) -> None:
    run_sql(pg, pg_db, "CREATE SCHEMA app", "CREATE TABLE app.nokey (v text)")
    src, tgt = await make_connections(client, admin, pg, pg_db, target_db)
    body = pipeline_body(src, tgt, source_schema="app", target_schema="app", tables=["nokey"], mode="CDC_ONLY")
    pid = (await client.post("/api/v1/pipelines", headers=admin, json=body)).json()["id"]
    report = (await client.post(f"/api/v1/pipelines/{pid}/validate", headers=admin)).json()
    assert report["ok"] is False and any("ADD PRIMARY KEY" in e for e in report["errors"])
    assert report["startable"] is False  # its only table cannot stream
    r = await client.post(f"/api/v1/pipelines/{pid}/start", headers=admin)
    assert r.status_code == 422 and "nokey" in r.text, r.text
    status = (await client.get(f"/api/v1/pipelines/{pid}/status", headers=admin)).json()
    assert status["state"] == "NOT_STARTED"
    assert slots(pg, pg_db) == []  # refused before anything was created
    assert (await client.post(f"/api/v1/pipelines/{pid}/pause", headers=admin)).status_code == 409


async def test_stop_while_paused_ends_stopped_and_a_start_resumes(client, admin, pg, pg_db, target_db) -> None:
    run_sql(pg, pg_db, *SEED)
    src, tgt = await make_connections(client, admin, pg, pg_db, target_db)
    body = pipeline_body(src, tgt, source_schema="app", target_schema="app", tables=["items"], mode="CDC_ONLY")
    pid = (await client.post("/api/v1/pipelines", headers=admin, json=body)).json()["id"]
    assert (await client.post(f"/api/v1/pipelines/{pid}/start", headers=admin)).status_code == 200
    await wait_for_state(client, admin, pid, {"RUNNING"})
    assert (await client.post(f"/api/v1/pipelines/{pid}/pause", headers=admin)).json()["state"] == "PAUSED"
    run_sql(pg, pg_db, "INSERT INTO app.items (id, name, n) VALUES (900001, 'while paused', 0)")
    r = await client.post(f"/api/v1/pipelines/{pid}/stop", headers=admin)
    assert r.status_code == 200 and r.json()["state"] == "STOPPED" and r.json()["cdc_status"] == "STOPPED", r.text
    assert len(slots(pg, pg_db)) == 1  # the slot keeps the change for the next start
    assert (await client.post(f"/api/v1/pipelines/{pid}/start", headers=admin)).status_code == 200
    query = "SELECT id, name FROM app.items WHERE id > 900000"
    await converge(pg, pg_db, target_db, query, query)
    assert (await client.delete(f"/api/v1/pipelines/{pid}", headers=admin)).status_code == 204
