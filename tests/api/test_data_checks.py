"""Data checks on the real app against real PostgreSQL (#16): differences injected on the target are found,
exactly, across the type list, with a key in byte order and segments split down to rows; while a writer keeps
changing the source through a streaming pipeline, nothing else is reported (no false alarm)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from core.datacheck import engine
from tests.api.conftest import make_user
from tests.api.test_cdc_api import converge, rows, run_sql
from tests.api.test_pipelines_api import make_connections, pipeline_body, wait_for_state

TYPES = (
    "CREATE SCHEMA app",
    "CREATE TYPE app.mood AS ENUM ('sad', 'ok', 'happy')",
    """CREATE TABLE app.kinds (
        id int PRIMARY KEY, t text, amount numeric(12,2), at timestamptz, local_at timestamp, d date,
        doc jsonb, raw bytea, flag boolean, ratio double precision, r4 real, tags int[], mood app.mood,
        u uuid, note varchar(40), password text)""",
    """INSERT INTO app.kinds SELECT g, 'text ' || g, g * 1.25,
        '2026-01-01 00:00:00+00'::timestamptz + g * interval '1 min',
        '2026-01-01'::timestamp + g * interval '1 s', '2026-01-01'::date + g, jsonb_build_object('g', g, 'a', 'x'),
        decode(lpad(to_hex(g), 8, '0'), 'hex'), g % 2 = 0, g / 7.0, g / 3.0, ARRAY[g, g + 1],
        (ARRAY['sad','ok','happy'])[1 + g % 3]::app.mood, md5(g::text)::uuid, 'n' || g, 'pw-' || g
        FROM generate_series(1, 3000) g""",
    # a text key: byte order ('B' < 'a' < 'b' < 'é'), whatever the databases' collation
    "CREATE TABLE app.words (w text PRIMARY KEY, n int)",
    "INSERT INTO app.words SELECT chr(65 + g % 58) || g, g FROM generate_series(1, 2000) g",
    "INSERT INTO app.words VALUES ('élan', 1), ('Zebra', 2), ('apple', 3), ('Apple', 4)",
    "CREATE TABLE app.loose (v text)",
    "INSERT INTO app.loose VALUES ('a'), ('b')",
)

# one changed column per type (distinct rows), a changed NULL, two deleted rows and an extra row
INJECT = (
    "UPDATE copy.kinds SET t = 'changed' WHERE id = 101",
    "UPDATE copy.kinds SET amount = amount + 0.01 WHERE id = 102",
    "UPDATE copy.kinds SET at = at + interval '1 microsecond' WHERE id = 103",
    "UPDATE copy.kinds SET local_at = local_at + interval '1 s' WHERE id = 104",
    "UPDATE copy.kinds SET d = d + 1 WHERE id = 105",
    "UPDATE copy.kinds SET doc = doc || '{\"b\": 1}' WHERE id = 106",
    "UPDATE copy.kinds SET raw = '\\x00'::bytea WHERE id = 107",
    "UPDATE copy.kinds SET flag = NOT flag WHERE id = 108",
    "UPDATE copy.kinds SET ratio = ratio * 1.001 WHERE id = 109",
    "UPDATE copy.kinds SET r4 = r4 + 1 WHERE id = 110",
    "UPDATE copy.kinds SET tags = ARRAY[0] WHERE id = 111",
    "UPDATE copy.kinds SET mood = (CASE WHEN mood::text = 'sad' THEN 'ok' ELSE 'sad' END)::copy.mood WHERE id = 112",
    "UPDATE copy.kinds SET u = md5('other')::uuid WHERE id = 113",
    "UPDATE copy.kinds SET note = NULL WHERE id = 114",
    "UPDATE copy.kinds SET password = 'changed-secret' WHERE id = 115",
    "DELETE FROM copy.kinds WHERE id IN (116, 2999)",
    "INSERT INTO copy.kinds (id, t) VALUES (5000, 'only on the target')",
    "UPDATE copy.words SET n = -1 WHERE w = 'élan'",
    "DELETE FROM copy.words WHERE w = 'Apple'",
)
EXPECTED = {
    ("app.kinds", 101): ("different", ["t"]),
    ("app.kinds", 102): ("different", ["amount"]),
    ("app.kinds", 103): ("different", ["at"]),
    ("app.kinds", 104): ("different", ["local_at"]),
    ("app.kinds", 105): ("different", ["d"]),
    ("app.kinds", 106): ("different", ["doc"]),
    ("app.kinds", 107): ("different", ["raw"]),
    ("app.kinds", 108): ("different", ["flag"]),
    ("app.kinds", 109): ("different", ["ratio"]),
    ("app.kinds", 110): ("different", ["r4"]),
    ("app.kinds", 111): ("different", ["tags"]),
    ("app.kinds", 112): ("different", ["mood"]),
    ("app.kinds", 113): ("different", ["u"]),
    ("app.kinds", 114): ("different", ["note"]),
    ("app.kinds", 115): ("different", ["password"]),
    ("app.kinds", 116): ("missing", []),
    ("app.kinds", 2999): ("missing", []),
    ("app.kinds", 5000): ("extra", []),
    ("app.words", "élan"): ("different", ["n"]),
    ("app.words", "Apple"): ("missing", []),
}


async def _check(client, headers, pid: int, body: dict, timeout: float = 120) -> dict:
    r = await client.post(f"/api/v1/pipelines/{pid}/data-checks", headers=headers, json=body)
    assert r.status_code == 201, r.text
    return await _wait(client, headers, pid, r.json()["id"], timeout)


async def _wait(client, headers, pid: int, cid: int, timeout: float = 120) -> dict:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        check = (await client.get(f"/api/v1/pipelines/{pid}/data-checks/{cid}", headers=headers)).json()
        if check["status"] != "running":
            return check
        assert loop.time() < deadline, check["tables"]
        await asyncio.sleep(0.3)


async def _found(client, headers, pid: int, cid: int) -> dict:
    r = await client.get(f"/api/v1/pipelines/{pid}/data-checks/{cid}/mismatches?limit=1000", headers=headers)
    assert r.status_code == 200, r.text
    out = {}
    for m in r.json():
        (key,) = m["key"].values()
        out[(m["table"], key)] = (m["kind"], m["columns"])
    return out


async def test_injected_differences_are_found_exactly_across_types(
    client, admin, pg, pg_db, target_db, monkeypatch: pytest.MonkeyPatch
) -> None:
    # small segments so that a 3,000-row table is split and bisected as a big one would be
    monkeypatch.setattr(engine, "SEGMENT_ROWS", 700)
    monkeypatch.setattr(engine, "ROW_FETCH", 40)
    monkeypatch.setattr(engine, "SPLIT", 4)
    run_sql(pg, pg_db, *TYPES)
    src, tgt = await make_connections(client, admin, pg, pg_db, target_db)
    body = pipeline_body(src, tgt, source_schema="app", target_schema="copy", tables=["kinds", "words", "loose"])
    pid = (await client.post("/api/v1/pipelines", headers=admin, json=body)).json()["id"]
    assert (await client.post(f"/api/v1/pipelines/{pid}/start", headers=admin)).status_code == 200
    assert (await wait_for_state(client, admin, pid, {"STOPPED", "ERROR"}))["state"] == "STOPPED"

    clean = await _check(client, admin, pid, {"mode": "full"})
    assert clean["status"] == "completed", clean
    states = {t["table"]: t["state"] for t in clean["tables"]}
    assert states == {"app.kinds": "VALIDATED", "app.words": "VALIDATED", "app.loose": "NO_PRIMARY_KEY"}, clean
    kinds = next(t for t in clean["tables"] if t["table"] == "app.kinds")
    assert kinds["source_rows"] == kinds["target_rows"] == 3000 and kinds["segments"] >= 5

    run_sql(pg, target_db, *INJECT)
    check = await _check(client, admin, pid, {"mode": "full", "recheck_after_seconds": 0})
    assert check["status"] == "completed", check
    by_table = {t["table"]: t for t in check["tables"]}
    assert by_table["app.kinds"]["state"] == "MISMATCHED" and by_table["app.kinds"]["mismatched_rows"] == 18
    assert by_table["app.words"]["state"] == "MISMATCHED" and by_table["app.words"]["mismatched_rows"] == 2
    assert await _found(client, admin, pid, check["id"]) == EXPECTED

    r = await client.get(f"/api/v1/pipelines/{pid}/data-checks/{check['id']}/mismatches?table=app.kinds", headers=admin)
    shown = {m["key"]["id"]: m for m in r.json()}
    assert shown[101]["source"]["t"] == "text 101" and shown[101]["target"]["t"] == "changed"
    assert shown[115]["source"]["password"] == "***" and "changed-secret" not in r.text  # secret-looking columns
    assert shown[5000]["source"] is None and shown[5000]["target"]["t"] == "only on the target"
    viewer = await make_user(client, admin, "viewer")
    r = await client.get(f"/api/v1/pipelines/{pid}/data-checks/{check['id']}/mismatches", headers=viewer)
    assert r.status_code == 200 and all(m["data_withheld"] and m["source"] is None for m in r.json())
    assert "text 101" not in r.text

    counts = await _check(client, admin, pid, {"mode": "counts", "tables": ["kinds"], "recheck_after_seconds": 0})
    (only,) = counts["tables"]
    assert only["table"] == "app.kinds" and only["state"] == "MISMATCHED" and only["mismatched_rows"] == 1
    assert (only["source_rows"], only["target_rows"]) == (3000, 2999)

    quality = (await client.get(f"/api/v1/monitoring/pipelines/{pid}/data-quality", headers=viewer)).json()
    assert {q["table"]: (q["state"], q["mismatched_rows"]) for q in quality} == {
        "app.kinds": ("MISMATCHED", 1),
        "app.words": ("MISMATCHED", 2),
        "app.loose": ("NO_PRIMARY_KEY", 0),
    }
    firing = (await client.get("/api/v1/monitoring/alerts", headers=admin)).json()
    assert {(a["kind"], a["object"]) for a in firing} >= {
        ("data_mismatch", "app.kinds"),
        ("data_mismatch", "app.words"),
    }

    # repaired by hand: the next check finds the table equal and its alert resolves
    words = rows(pg, pg_db, "SELECT w, n FROM app.words")
    conn = pg.connect(target_db)
    with conn.cursor() as cur:
        cur.execute("DELETE FROM copy.words")
        cur.executemany("INSERT INTO copy.words VALUES (%s, %s)", words)
    conn.close()
    again = await _check(client, admin, pid, {"tables": ["app.words"], "recheck_after_seconds": 0})
    assert [(t["table"], t["state"]) for t in again["tables"]] == [("app.words", "VALIDATED")], again
    firing = (await client.get("/api/v1/monitoring/alerts", headers=admin)).json()
    assert ("data_mismatch", "app.words") not in {(a["kind"], a["object"]) for a in firing}

    # Resync rows: exactly the mismatched keys are written (the others keep their row versions), then equal
    before = dict(rows(pg, target_db, "SELECT id, xmin::text FROM copy.kinds"))
    url = f"/api/v1/pipelines/{pid}/tables/app.kinds/resync"
    assert (await client.post(url, headers=viewer, json={"mode": "rows"})).status_code == 403
    r = await client.post(url, headers=admin, json={"mode": "rows", "check_id": check["id"]})
    assert r.status_code == 200, r.text
    assert r.json() == {"table": "app.kinds", "mode": "rows", "check_id": check["id"], "rows": 18, "state": None}
    after = dict(rows(pg, target_db, "SELECT id, xmin::text FROM copy.kinds"))
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    assert changed == {k for (t, k) in EXPECTED if t == "app.kinds"}
    r = await client.post(url, headers=admin, json={"mode": "validate_only"})
    assert r.status_code == 200 and r.json()["check_id"], r.text
    again = await _wait(client, admin, pid, r.json()["check_id"])
    assert [(t["table"], t["state"]) for t in again["tables"]] == [("app.kinds", "VALIDATED")], again
    r = await client.post(url, headers=admin, json={"mode": "rows"})  # nothing left to fix
    assert r.status_code == 409 and "validate the table first" in r.json()["detail"]
    r = await client.post(url, headers=admin, json={"mode": "reload"})
    assert r.status_code == 422 and "FULL_LOAD_ONLY" in r.text
    r = await client.post(f"/api/v1/pipelines/{pid}/tables/app.nothing/resync", headers=admin, json={})
    assert r.status_code == 404


async def test_refusals(client, admin, editor, viewer, pg, pg_db, target_db) -> None:
    run_sql(pg, pg_db, "CREATE SCHEMA app", "CREATE TABLE app.items (id int PRIMARY KEY)")
    src, tgt = await make_connections(client, admin, pg, pg_db, target_db)
    body = pipeline_body(src, tgt, source_schema="app", target_schema="copy", tables=["items"], mode="CDC_ONLY")
    pid = (await client.post("/api/v1/pipelines", headers=admin, json=body)).json()["id"]
    url = f"/api/v1/pipelines/{pid}/data-checks"
    assert (await client.post(url, headers=viewer, json={})).status_code == 403
    r = await client.post(url, headers=editor, json={})
    assert r.status_code == 409 and "not streaming" in r.json()["detail"], r.text
    r = await client.post(url, headers=editor, json={"mode": "sideways"})
    assert r.status_code == 422
    assert (await client.get(f"{url}/999", headers=viewer)).status_code == 404
    assert (await client.post("/api/v1/pipelines/999/data-checks", headers=editor, json={})).status_code == 404


ITEMS_Q = "SELECT id, n, note FROM {}.items ORDER BY id"


def _writer(pg, db: str, stop: threading.Event, done: list[int], base: int = 100_000) -> None:  # noqa: ANN001
    """Single-row changes on ids 1..500 (the injected ones are above)."""
    conn = pg.connect(db)
    n = 0
    with conn.cursor() as cur:
        while not stop.is_set():
            n += 1
            cur.execute("UPDATE app.items SET n = n + 1, note = %s WHERE id = %s", (f"w{n}", 1 + n % 500))
            if n % 7 == 0:
                cur.execute("INSERT INTO app.items (id, n, note) VALUES (%s, 0, 'new')", (base + n,))
            if n % 11 == 0:
                cur.execute("DELETE FROM app.items WHERE id = %s", (base + n - 4,))
    conn.close()
    done.append(n)


async def test_no_false_alarm_while_changes_flow(client, admin, pg, pg_db, target_db, monkeypatch) -> None:
    monkeypatch.setattr(engine, "SEGMENT_ROWS", 2000)
    monkeypatch.setattr(engine, "ROW_FETCH", 200)
    monkeypatch.setattr(engine, "SPLIT", 8)
    run_sql(
        pg,
        pg_db,
        "CREATE SCHEMA app",
        "CREATE TABLE app.items (id bigint PRIMARY KEY, n int NOT NULL, note text, at timestamptz DEFAULT now())",
        "INSERT INTO app.items (id, n, note) SELECT g, 0, 'i' || g FROM generate_series(1, 10000) g",
    )
    src, tgt = await make_connections(client, admin, pg, pg_db, target_db)
    body = pipeline_body(
        src, tgt, source_schema="app", target_schema="copy", tables=["items"], mode="FULL_LOAD_AND_CDC"
    )
    pid = (await client.post("/api/v1/pipelines", headers=admin, json=body)).json()["id"]
    assert (await client.post(f"/api/v1/pipelines/{pid}/start", headers=admin)).status_code == 200
    status = await wait_for_state(client, admin, pid, {"RUNNING", "ERROR"})
    assert status["state"] == "RUNNING" and status["cdc_status"] == "RUNNING", status
    await asyncio.sleep(1.0)
    run_sql(
        pg,
        target_db,
        "UPDATE copy.items SET note = 'tampered' WHERE id = 7001",
        "DELETE FROM copy.items WHERE id = 8002",
        "INSERT INTO copy.items (id, n, note) VALUES (99999, 1, 'extra')",
    )
    expected = {7001: ("different", ["note"]), 8002: ("missing", []), 99999: ("extra", [])}

    stop, done = threading.Event(), []
    w = threading.Thread(target=_writer, args=(pg, pg_db, stop, done))
    w.start()
    began = time.monotonic()
    checks = 0
    try:
        while time.monotonic() - began < 60 or checks == 0:
            check = await _check(client, admin, pid, {"mode": "full", "recheck_after_seconds": 3}, timeout=90)
            checks += 1
            assert check["status"] == "completed", check
            (table,) = check["tables"]
            assert table["state"] == "MISMATCHED" and table["mismatched_rows"] == 3, table
            r = await client.get(f"/api/v1/pipelines/{pid}/data-checks/{check['id']}/mismatches", headers=admin)
            assert {m["key"]["id"]: (m["kind"], m["columns"]) for m in r.json()} == expected, r.json()
    finally:
        stop.set()
        w.join()
    assert done and done[0] > 500, "the writer did not keep changing the source"
    assert checks >= 2
    assert rows(pg, pg_db, "SELECT count(*) FROM app.items WHERE note LIKE 'w%'")[0][0] > 0

    # Resync rows while the writer goes on, one of the rows changed again on the source meanwhile: the target
    # ends equal, that row with its newest value
    stop.clear()
    w = threading.Thread(target=_writer, args=(pg, pg_db, stop, done, 10_000_000))
    w.start()
    try:
        run_sql(pg, pg_db, "UPDATE app.items SET note = 'newest' WHERE id = 7001")
        r = await client.post(f"/api/v1/pipelines/{pid}/tables/app.items/resync", headers=admin, json={})
        assert r.status_code == 200 and r.json()["rows"] == 3, r.text
        run_sql(pg, pg_db, "UPDATE app.items SET note = 'newer still' WHERE id = 7001")
        # Reload the table while changes keep coming: no gap, no duplicate
        r = await client.post(
            f"/api/v1/pipelines/{pid}/tables/app.items/resync", headers=admin, json={"mode": "reload"}
        )
        assert r.status_code == 200, r.text
        await asyncio.sleep(1.0)
    finally:
        stop.set()
        w.join()
    assert len(done) == 2 and done[1] > 0, "the second writer did not run to its end"
    assert (await wait_for_state(client, admin, pid, {"RUNNING", "ERROR"}))["state"] == "RUNNING"
    await converge(pg, pg_db, target_db, ITEMS_Q.format("app"), ITEMS_Q.format("copy"))
    assert rows(pg, target_db, "SELECT note FROM copy.items WHERE id = 7001") == [("newer still",)]
    final = await _check(client, admin, pid, {"mode": "full", "recheck_after_seconds": 1}, timeout=90)
    assert [(t["state"], t["mismatched_rows"]) for t in final["tables"]] == [("VALIDATED", 0)], final
