"""Reload one table while two others stream under a writer: the others' changes keep arriving while the
table is copied (the copy waits for the test's go, so the test sees it in progress), all three end equal to
the source, and the other two were never reloaded (no TRUNCATE reached them)."""

from __future__ import annotations

import asyncio
import threading

from core.cdc import tableload
from tests.api.test_cdc_api import converge, rows, run_sql
from tests.api.test_pipelines_api import make_connections, pipeline_body, wait_for_state

TABLES = ("a", "b", "c")


def _writer(pg, db: str, stop: threading.Event, done: list) -> None:  # noqa: ANN001
    conn = pg.connect(db)
    n = 0
    try:
        with conn.cursor() as cur:
            while not stop.is_set():
                n += 1
                for t in TABLES:
                    cur.execute(f"INSERT INTO app.{t} (id, v) VALUES (%s, 'w')", (1_000_000 + n,))
                    cur.execute(f"UPDATE app.{t} SET v = v || '+' WHERE id = %s", (n % 5000 + 1,))
                if n % 20 == 0:
                    cur.execute("DELETE FROM app.a WHERE id = %s", (1_000_000 + n - 5,))
    finally:
        conn.close()
        done.append(n)


async def _table_status(client, admin, pid: int, source: str) -> str:  # noqa: ANN001
    status = (await client.get(f"/api/v1/pipelines/{pid}/status", headers=admin)).json()
    return next(t["status"] for t in status["tables"] if t["source"] == source)


async def test_reload_one_table_while_two_others_stream(client, admin, pg, pg_db, target_db, monkeypatch) -> None:
    # The copy of a waits for the test's go, so that the test sees the others stream while a is in progress.
    gate, real_load = threading.Event(), tableload.run_full_load

    def gated_load(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        assert gate.wait(120), "the test never let the copy go"
        return real_load(*args, **kwargs)

    monkeypatch.setattr(tableload, "run_full_load", gated_load)
    run_sql(
        pg,
        pg_db,
        "CREATE SCHEMA app",
        *(f"CREATE TABLE app.{t} (id bigint PRIMARY KEY, v text)" for t in TABLES),
        *(f"INSERT INTO app.{t} SELECT g, 'v' || g FROM generate_series(1, 20000) g" for t in TABLES),
    )
    src, tgt = await make_connections(client, admin, pg, pg_db, target_db)
    body = pipeline_body(
        src, tgt, source_schema="app", target_schema="copy", tables=list(TABLES), mode="FULL_LOAD_AND_CDC"
    )
    pid = (await client.post("/api/v1/pipelines", headers=admin, json=body)).json()["id"]
    assert (await client.post(f"/api/v1/pipelines/{pid}/start", headers=admin)).status_code == 200
    status = await wait_for_state(client, admin, pid, {"RUNNING", "ERROR"})
    assert status["state"] == "RUNNING" and status["cdc_status"] == "RUNNING", status
    run_sql(
        pg,
        target_db,
        "CREATE TABLE public.truncated (tbl text, at timestamptz DEFAULT clock_timestamp())",
        "CREATE FUNCTION public.note_truncate() RETURNS trigger LANGUAGE plpgsql AS "
        "$$BEGIN INSERT INTO public.truncated (tbl) VALUES (TG_TABLE_NAME); RETURN NULL; END$$",
        *(
            f"CREATE TRIGGER note_truncate AFTER TRUNCATE ON copy.{t} FOR EACH STATEMENT "
            "EXECUTE FUNCTION public.note_truncate()"
            for t in TABLES
        ),
    )

    stop, done = threading.Event(), []
    w = threading.Thread(target=_writer, args=(pg, pg_db, stop, done))
    w.start()
    try:
        r = await client.post(f"/api/v1/pipelines/{pid}/tables/app.a/resync", headers=admin, json={"mode": "reload"})
        assert r.status_code == 200, r.text
        for _ in range(100):
            if await _table_status(client, admin, pid, "app.a") == "RUNNING":
                break
            await asyncio.sleep(0.1)
        else:
            status = (await client.get(f"/api/v1/pipelines/{pid}/status", headers=admin)).json()
            raise AssertionError(f"app.a never started loading: {status}")
        # While a is being copied, b and c stream on.
        run_sql(pg, pg_db, "INSERT INTO app.b VALUES (-1, 'marker')", "INSERT INTO app.c VALUES (-1, 'marker')")
        marker = "SELECT id, v FROM {}.{} WHERE id = -1"
        for t in ("b", "c"):
            await converge(pg, pg_db, target_db, marker.format("app", t), marker.format("copy", t), timeout=30)
        assert await _table_status(client, admin, pid, "app.a") == "RUNNING"
        assert (await client.get(f"/api/v1/pipelines/{pid}/status", headers=admin)).json()["state"] == "RUNNING"
    finally:
        gate.set()
    try:
        for _ in range(300):
            if await _table_status(client, admin, pid, "app.a") == "COMPLETED":
                break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError("the reload of app.a did not complete")
        await asyncio.sleep(1.0)  # a's changes after its copy stream as usual
    finally:
        stop.set()
        w.join()
    assert done and done[0] > 100, "the writer did not run"
    for t in TABLES:
        query = "SELECT id, v FROM {}." + t + " ORDER BY id"
        await converge(pg, pg_db, target_db, query.format("app"), query.format("copy"))
    assert rows(pg, target_db, "SELECT tbl, count(*) FROM public.truncated GROUP BY tbl") == [("a", 1)]
    status = (await client.get(f"/api/v1/pipelines/{pid}/status", headers=admin)).json()
    assert status["state"] == "RUNNING" and status["failed_tables"] == [], status
    assert {t["source"]: t["status"] for t in status["tables"]} == {
        "app.a": "COMPLETED",
        "app.b": "COMPLETED",
        "app.c": "COMPLETED",
    }, status
    await client.post(f"/api/v1/pipelines/{pid}/stop", headers=admin)
    await wait_for_state(client, admin, pid, {"STOPPED"})
