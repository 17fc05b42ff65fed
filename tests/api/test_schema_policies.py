"""Schema change policies on a real stream: propagate_columns follows every kind of column change (also on a
table that receives no changes, seen by the catalog scan), ignore leaves the target alone, pause stops the
pipeline in ERROR until a person starts it again, propagate_fully creates, loads and streams a new table that
matches the pipeline's wildcard; every change lands in GET /api/v1/pipelines/{id}/schema/history."""

from __future__ import annotations

import asyncio
import threading

import pytest

from core.cdc import engine as cdc_engine
from tests.api.test_cdc_api import converge, rows, run_sql
from tests.api.test_pipelines_api import make_connections, pipeline_body, wait_for_state


@pytest.fixture(autouse=True)
def fast_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cdc_engine, "CHECK_EVERY_S", 0.5)


async def _history(client, admin, pid: int, until, timeout: float = 60) -> list[dict]:  # noqa: ANN001
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        r = await client.get(f"/api/v1/pipelines/{pid}/schema/history", headers=admin)
        assert r.status_code == 200, r.text
        found = r.json()
        if until(found):
            return found
        assert loop.time() < deadline, found
        await asyncio.sleep(0.3)


def _kinds(found: list[dict], table: str) -> set[tuple]:
    return {(c["kind"], c["column"], c["before"], c["after"]) for c in found if c["table"] == table}


async def _pipeline(client, admin, pg, pg_db, target_db, policy: str, tables: list[str], **extra) -> int:  # noqa: ANN001
    src, tgt = await make_connections(client, admin, pg, pg_db, target_db)
    body = pipeline_body(src, tgt, source_schema="app", target_schema="copy", tables=tables, mode="FULL_LOAD_AND_CDC")
    body.update(schema_change_policy=policy, **extra)
    r = await client.post("/api/v1/pipelines", headers=admin, json=body)
    assert r.status_code == 201, r.text
    assert r.json()["schema_change_policy"] == policy == r.json()["schema_drift"], r.json()
    pid = r.json()["id"]
    assert (await client.post(f"/api/v1/pipelines/{pid}/start", headers=admin)).status_code == 200
    status = await wait_for_state(client, admin, pid, {"RUNNING", "ERROR"})
    assert status["state"] == "RUNNING" and status["cdc_status"] == "RUNNING", status
    return pid


def _not_null(pg, db: str, table: str, column: str) -> bool | None:  # noqa: ANN001
    found = rows(
        pg, db, f"SELECT attnotnull FROM pg_attribute WHERE attrelid = '{table}'::regclass AND attname = '{column}'"
    )
    return found[0][0] if found else None


SEED = (
    "CREATE SCHEMA app",
    "CREATE TABLE app.items (id bigint PRIMARY KEY, name text, n int NOT NULL, old text)",
    "INSERT INTO app.items SELECT g, 'i' || g, g, 'o' || g FROM generate_series(1, 500) g",
    "CREATE TABLE app.quiet (id int PRIMARY KEY, v text NOT NULL)",
    "INSERT INTO app.quiet VALUES (1, 'a'), (2, 'b')",
)


async def test_propagate_columns_follows_each_kind_of_change(client, admin, pg, pg_db, target_db) -> None:
    run_sql(pg, pg_db, *SEED)
    pid = await _pipeline(client, admin, pg, pg_db, target_db, "propagate_columns", ["items", "quiet"])

    # A table without changes: only the catalog scan sees that v allows NULL now; the target follows at once.
    run_sql(pg, pg_db, "ALTER TABLE app.quiet ALTER COLUMN v DROP NOT NULL")
    found = await _history(client, admin, pid, lambda f: _kinds(f, "app.quiet"))
    assert _kinds(found, "app.quiet") == {("nullability_changed", "v", "NOT NULL", "NULL")}
    (entry,) = [c for c in found if c["table"] == "app.quiet"]
    assert entry["detected_by"] == "schedule" and entry["policy"] == "propagate_columns", entry
    assert "allows NULL" in entry["action"], entry
    assert _not_null(pg, target_db, "copy.quiet", "v") is False
    run_sql(pg, pg_db, "INSERT INTO app.quiet VALUES (3, NULL)")
    await converge(pg, pg_db, target_db, "SELECT * FROM app.quiet ORDER BY id", "SELECT * FROM copy.quiet ORDER BY id")

    # Added, renamed, retyped and dropped columns, with changes flowing.
    run_sql(
        pg,
        pg_db,
        "ALTER TABLE app.items ADD COLUMN color text DEFAULT 'red'",
        "ALTER TABLE app.items RENAME COLUMN name TO title",
        "ALTER TABLE app.items ALTER COLUMN n TYPE bigint",
        "ALTER TABLE app.items DROP COLUMN old",
        "INSERT INTO app.items (id, title, n, color) VALUES (1001, 't', 5000000000, 'blue')",
        "UPDATE app.items SET color = 'green' WHERE id = 1",
    )
    query = "SELECT id, title, n, color FROM {}.items ORDER BY id"
    await converge(pg, pg_db, target_db, query.format("app"), query.format("copy"))
    found = await _history(client, admin, pid, lambda f: len(_kinds(f, "app.items")) >= 4)
    assert _kinds(found, "app.items") == {
        ("column_added", "color", None, "text"),
        ("column_renamed", "title", "name", "title"),
        ("type_changed", "n", "integer", "bigint"),
        ("column_dropped", "old", "text", None),
    }, found
    # never drop data: the dropped column stays on the target with its values (new rows have none)
    assert rows(pg, target_db, "SELECT old FROM copy.items WHERE id IN (2, 1001) ORDER BY id") == [("o2",), (None,)]
    quality = (await client.get(f"/api/v1/monitoring/pipelines/{pid}/data-quality", headers=admin)).json()
    assert {q["table"]: q["schema_changes"] for q in quality} == {"app.items": 4, "app.quiet": 1}, quality

    # A dropped table: set aside, kept on the target, in the history.
    run_sql(pg, pg_db, "DROP TABLE app.quiet")
    found = await _history(client, admin, pid, lambda f: ("table_dropped", None, None, None) in _kinds(f, "app.quiet"))
    status = (await client.get(f"/api/v1/pipelines/{pid}/status", headers=admin)).json()
    assert status["state"] == "RUNNING" and status["failed_tables"] == ["app.quiet"], status
    assert rows(pg, target_db, "SELECT count(*) FROM copy.quiet") == [(3,)]
    r = await client.get(f"/api/v1/pipelines/{pid}/schema/history?table=app.items&limit=2", headers=admin)
    assert len(r.json()) == 2 and {c["table"] for c in r.json()} == {"app.items"}
    await client.post(f"/api/v1/pipelines/{pid}/stop", headers=admin)
    await wait_for_state(client, admin, pid, {"STOPPED"})


async def test_ignore_leaves_the_target_as_it_is(client, admin, pg, pg_db, target_db) -> None:
    run_sql(pg, pg_db, *SEED)
    pid = await _pipeline(client, admin, pg, pg_db, target_db, "ignore", ["items"])
    run_sql(
        pg,
        pg_db,
        "ALTER TABLE app.items ADD COLUMN color text",
        "INSERT INTO app.items (id, name, n, color) VALUES (1001, 'x', 1, 'blue')",
    )
    query = "SELECT id, name, n FROM {}.items ORDER BY id"
    await converge(pg, pg_db, target_db, query.format("app"), query.format("copy"))
    found = await _history(client, admin, pid, lambda f: _kinds(f, "app.items"))
    assert _kinds(found, "app.items") == {("column_added", "color", None, "text")}
    assert found[0]["action"].startswith("ignored"), found
    assert _not_null(pg, target_db, "copy.items", "color") is None  # no such column on the target
    await client.post(f"/api/v1/pipelines/{pid}/stop", headers=admin)
    await wait_for_state(client, admin, pid, {"STOPPED"})


async def test_pause_stops_in_error_until_a_person_starts_again(client, admin, pg, pg_db, target_db) -> None:
    run_sql(pg, pg_db, *SEED)
    pid = await _pipeline(client, admin, pg, pg_db, target_db, "pause", ["items"])
    run_sql(
        pg,
        pg_db,
        "ALTER TABLE app.items ADD COLUMN color text",
        "INSERT INTO app.items (id, name, n, color) VALUES (1001, 'x', 1, 'blue')",
    )
    status = await wait_for_state(client, admin, pid, {"ERROR"})
    assert "color" in status["error_message"] and "pause" in status["error_message"], status
    assert status["retry"]["error_kind"] == "terminal" and status["health"] == "failed", status
    found = await _history(client, admin, pid, lambda f: _kinds(f, "app.items"))
    assert found[0]["action"].startswith("pipeline paused"), found
    assert rows(pg, target_db, "SELECT count(*) FROM copy.items WHERE id = 1001") == [(0,)]
    # Start approves the change: the target's columns follow and the held-back change arrives.
    assert (await client.post(f"/api/v1/pipelines/{pid}/start", headers=admin)).status_code == 200
    assert (await wait_for_state(client, admin, pid, {"RUNNING", "ERROR"}))["state"] == "RUNNING"
    query = "SELECT id, name, n, color FROM {}.items ORDER BY id"
    await converge(pg, pg_db, target_db, query.format("app"), query.format("copy"))
    await client.post(f"/api/v1/pipelines/{pid}/stop", headers=admin)
    await wait_for_state(client, admin, pid, {"STOPPED"})


def _writer(pg, db: str, stop: threading.Event, done: list) -> None:  # noqa: ANN001
    """Keep inserting into and updating the new table while it is picked up."""
    conn = pg.connect(db)
    n = 0
    try:
        with conn.cursor() as cur:
            while not stop.is_set():
                n += 1
                cur.execute("INSERT INTO app.items_new (id, v) VALUES (%s, 'w')", (100_000 + n,))
                cur.execute("UPDATE app.items_new SET v = v || '+' WHERE id = %s", (n % 2000 + 1,))
                if n % 50 == 0:
                    cur.execute("DELETE FROM app.items_new WHERE id = %s", (100_000 + n - 10,))
    finally:
        conn.close()
        done.append(n)


async def test_propagate_fully_loads_and_streams_a_new_matching_table(client, admin, pg, pg_db, target_db) -> None:
    run_sql(pg, pg_db, *SEED, "CREATE TABLE app.other_new (id int PRIMARY KEY)")
    pid = await _pipeline(client, admin, pg, pg_db, target_db, "propagate_fully", ["item*"])
    run_sql(
        pg,
        pg_db,
        "CREATE TABLE app.items_new (id int PRIMARY KEY, v text)",
        "INSERT INTO app.items_new SELECT g, 'v' || g FROM generate_series(1, 20000) g",
        "CREATE TABLE app.unmatched (id int PRIMARY KEY)",
        "CREATE TABLE app.items_nokey (v text)",
    )
    stop, done = threading.Event(), []
    w = threading.Thread(target=_writer, args=(pg, pg_db, stop, done))
    w.start()
    try:
        found = await _history(client, admin, pid, lambda f: _kinds(f, "app.items_new"))
        assert _kinds(found, "app.items_new") == {("table_added", None, None, None)}, found
        (added,) = [c for c in found if c["table"] == "app.items_new"]
        assert "loading it, then streaming it" in added["action"], found
        for _ in range(300):
            status = (await client.get(f"/api/v1/pipelines/{pid}/status", headers=admin)).json()
            if any(t["source"] == "app.items_new" and t["status"] == "COMPLETED" for t in status["tables"]):
                break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError(status)
        await asyncio.sleep(1.0)  # changes after the copy stream as usual
    finally:
        stop.set()
        w.join()
    assert done and done[0] > 100, "the writer did not run"
    query = "SELECT id, v FROM {}.items_new ORDER BY id"
    await converge(pg, pg_db, target_db, query.format("app"), query.format("copy"))
    status = (await client.get(f"/api/v1/pipelines/{pid}/status", headers=admin)).json()
    assert status["state"] == "RUNNING" and status["failed_tables"] == [], status
    found = await _history(client, admin, pid, lambda f: _kinds(f, "app.items_nokey"))
    (nokey,) = [c for c in found if c["table"] == "app.items_nokey"]
    assert "no primary key" in nokey["action"], nokey
    # only tables matching the pipeline's wildcard (and with a key) are picked up
    assert rows(
        pg,
        target_db,
        "SELECT to_regclass('copy.unmatched'), to_regclass('copy.other_new'), to_regclass('copy.items_nokey')",
    ) == [(None, None, None)]
    await client.post(f"/api/v1/pipelines/{pid}/stop", headers=admin)
    await wait_for_state(client, admin, pid, {"STOPPED"})


async def test_policy_field_contract(client, admin, pg, pg_db, target_db) -> None:
    """schema_change_policy and schema_drift name one setting; a bad value or a bad cron is refused by name."""
    run_sql(pg, pg_db, *SEED)
    src, tgt = await make_connections(client, admin, pg, pg_db, target_db)
    body = pipeline_body(src, tgt, source_schema="app", target_schema="copy", tables=["items"], mode="CDC_ONLY")
    r = await client.post("/api/v1/pipelines", headers=admin, json={**body, "schema_change_policy": "drop_everything"})
    assert r.status_code == 422, r.text
    r = await client.post(
        "/api/v1/pipelines", headers=admin, json={**body, "schema_change_policy": "pause", "schema_drift": "ignore"}
    )
    assert r.status_code == 422, r.text
    r = await client.post("/api/v1/pipelines", headers=admin, json={**body, "validation_schedule": "every day"})
    assert r.status_code == 422 and "validation_schedule" in r.text, r.text
    r = await client.post("/api/v1/pipelines", headers=admin, json={**body, "validation_schedule": "0 3 * * *"})
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["schema_change_policy"] == "propagate_columns" and created["validation_schedule"] == "0 3 * * *"
    assert created["next_validation_at"] is not None, created  # the scheduler holds the job
    pid = created["id"]
    r = await client.put(f"/api/v1/pipelines/{pid}", headers=admin, json={"schema_change_policy": "propagate_fully"})
    assert r.status_code == 200 and r.json()["schema_change_policy"] == "propagate_fully", r.text
    assert r.json()["schema_drift"] == "propagate_fully"
    r = await client.put(f"/api/v1/pipelines/{pid}", headers=admin, json={"validation_schedule": None})
    assert r.status_code == 200 and r.json()["validation_schedule"] is None, r.text
    assert r.json()["next_validation_at"] is None
    assert (await client.get(f"/api/v1/pipelines/{pid}/schema/history", headers=admin)).json() == []
    assert (await client.get("/api/v1/pipelines/99999/schema/history", headers=admin)).status_code == 404
