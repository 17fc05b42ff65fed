"""Pipelines over the API against real PostgreSQL: validation, preview, loads, stop, history."""

from __future__ import annotations

import asyncio

import pytest

from tests.pgcluster import PgCluster


@pytest.fixture
def target_db(pg: PgCluster):
    name = "tgt_" + pg_db_suffix()
    pg.create_database(name)
    yield name
    pg.drop_database(name)


_n = iter(range(1, 10_000))


def pg_db_suffix() -> str:
    return str(next(_n))


def seed_source(pg: PgCluster, db: str) -> None:
    conn = pg.connect(db)
    with conn.cursor() as cur:
        cur.execute("CREATE SCHEMA shop")
        cur.execute("CREATE TABLE shop.customers (id int PRIMARY KEY, name text NOT NULL)")
        cur.execute(
            "CREATE TABLE shop.orders (id bigint PRIMARY KEY, customer_id int REFERENCES shop.customers,"
            " amount numeric(12,2), note text)"
        )
        cur.execute("CREATE TABLE shop.cust_archive (id int PRIMARY KEY)")
        cur.execute("CREATE TABLE shop.nokey (v text)")
        cur.execute("INSERT INTO shop.customers SELECT g, 'c' || g FROM generate_series(1, 500) g")
        cur.execute(
            "INSERT INTO shop.orders SELECT g, 1 + g % 500, g * 1.5, repeat('x', g % 40)"
            " FROM generate_series(1, 5000) g"
        )
        cur.execute("INSERT INTO shop.nokey SELECT 'v' || g FROM generate_series(1, 10) g")
    conn.close()


async def make_connections(client, admin, pg: PgCluster, source_db: str, target_db: str) -> tuple[int, int]:
    ids = []
    for name, db, usage in (("src", source_db, "source"), ("tgt", target_db, "target")):
        r = await client.post(
            "/api/v1/connections",
            headers=admin,
            json={
                "name": name,
                "kind": "postgresql",
                "usage": usage,
                "host": pg.host,
                "port": pg.port,
                "database": db,
                "username": pg.user,
                "password": pg.password,
            },
        )
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    return ids[0], ids[1]


def pipeline_body(src: int, tgt: int, **overrides) -> dict:
    body = {
        "name": "shop copy",
        "description": "nightly",
        "source_connection_id": src,
        "target_connection_id": tgt,
        "source_schema": "shop",
        "target_schema": "shop_copy",
        "tables": ["customers", "orders"],
        "mode": "FULL_LOAD_ONLY",
        "auto_create": True,
        "target_table_policy": "fail",
    }
    body.update(overrides)
    return body


async def wait_for_state(client, headers, pid: int, states: set[str], timeout: float = 60) -> dict:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        status = (await client.get(f"/api/v1/pipelines/{pid}/status", headers=headers)).json()
        if status["state"] in states:
            return status
        assert loop.time() < deadline, status
        await asyncio.sleep(0.2)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"source_connection_id": 999}, "source_connection_id"),
        ({"target_connection_id": 999}, "target_connection_id"),
        ({"source_schema": None}, "source_schema"),
        ({"source_schema": "nope"}, "source_schema"),
        ({"target_schema": ""}, "target_schema"),
        ({"tables": ["zzz_*"]}, "tables"),
        ({"tables": []}, "tables"),
        ({"mode": "SOMETIMES"}, "mode"),
        ({"schedule": "every day at 5"}, "schedule"),
        ({"schedule": "61 * * * *"}, "schedule"),
        ({"target_table_policy": "merge"}, "target_table_policy"),
        ({"mode": "CDC_ONLY", "schedule": "0 3 * * *"}, "schedule"),
    ],
)
async def test_bad_pipelines_name_the_field(client, admin, pg, pg_db, target_db, overrides, field) -> None:
    seed_source(pg, pg_db)
    src, tgt = await make_connections(client, admin, pg, pg_db, target_db)
    r = await client.post("/api/v1/pipelines", headers=admin, json=pipeline_body(src, tgt, **overrides))
    assert r.status_code == 422, r.text
    assert field in r.json()["detail"][0]["loc"], r.json()
    assert (await client.get("/api/v1/pipelines", headers=admin)).json() == []


async def test_usage_and_duplicates(client, admin, viewer, pg, pg_db, target_db) -> None:
    seed_source(pg, pg_db)
    src, tgt = await make_connections(client, admin, pg, pg_db, target_db)
    r = await client.post("/api/v1/pipelines", headers=admin, json=pipeline_body(tgt, src))
    assert r.status_code == 422 and "source_connection_id" in r.json()["detail"][0]["loc"]
    assert (await client.post("/api/v1/pipelines", headers=viewer, json=pipeline_body(src, tgt))).status_code == 403
    assert (await client.post("/api/v1/pipelines", headers=admin, json=pipeline_body(src, tgt))).status_code == 201
    r = await client.post("/api/v1/pipelines", headers=admin, json=pipeline_body(src, tgt, tables=["orders"]))
    assert r.status_code == 409
    assert len((await client.get("/api/v1/pipelines", headers=admin)).json()) == 1
    r = await client.delete(f"/api/v1/connections/{src}", headers=admin)
    assert r.status_code == 409 and "shop copy" in r.json()["detail"]


async def test_preview_validate_load_and_history(client, admin, pg, pg_db, target_db) -> None:
    seed_source(pg, pg_db)
    src, tgt = await make_connections(client, admin, pg, pg_db, target_db)
    body = pipeline_body(
        src,
        tgt,
        tables=["cust*", "orders", "nokey"],
        exclude=["cust_archive"],
        table_mappings=[{"source": "orders", "target": "orders_v2"}],
    )
    r = await client.post("/api/v1/pipelines", headers=admin, json=body)
    assert r.status_code == 201, r.text
    p = r.json()
    assert p["state"] == "NOT_STARTED" and p["full_load_status"] == "NOT_STARTED" and p["engine"] == "embedded"
    assert p["source_database"] == pg_db and p["target_database"] == target_db
    pid = p["id"]
    preview = (await client.get(f"/api/v1/pipelines/{pid}/tables/preview", headers=admin)).json()
    by_source = {row["source"]: row for row in preview}
    assert set(by_source) == {"shop.customers", "shop.orders", "shop.nokey"}
    assert by_source["shop.orders"]["target"] == "shop_copy.orders_v2"
    assert by_source["shop.orders"]["target_status"] == "will_be_created"
    assert by_source["shop.orders"]["row_count"] == 5000
    assert by_source["shop.nokey"]["has_primary_key"] is False
    report = (await client.post(f"/api/v1/pipelines/{pid}/validate", headers=admin)).json()
    assert report["ok"] is True and any("nokey" in w for w in report["warnings"])

    r = await client.post(f"/api/v1/pipelines/{pid}/start", headers=admin)
    assert r.status_code == 200, r.text
    status = await wait_for_state(client, admin, pid, {"STOPPED", "ERROR"})
    assert status["state"] == "STOPPED" and status["full_load_status"] == "COMPLETED", status
    tables = {t["source"]: t for t in status["tables"]}
    assert tables["shop.orders"]["rows_copied"] == 5000 and tables["shop.orders"]["status"] == "COMPLETED"
    assert tables["shop.customers"]["rows_copied"] == tables["shop.customers"]["rows_expected"] == 500
    conn = pg.connect(target_db)
    with conn.cursor() as cur:
        cur.execute("SELECT count(*), sum(amount) FROM shop_copy.orders_v2")
        assert cur.fetchone() == (5000, sum(g * 1.5 for g in range(1, 5001)))
    conn.close()
    # The same tables exist now: a second run with policy "fail" would fail on every non-empty table, which
    # validation sees, so the start is refused (422, with the reason per table) and nothing runs.
    after = (await client.get(f"/api/v1/pipelines/{pid}/tables/preview", headers=admin)).json()
    assert {row["target_status"] for row in after} == {"exists"}
    r = await client.post(f"/api/v1/pipelines/{pid}/start", headers=admin)
    assert r.status_code == 422 and "not empty" in r.text, r.text
    status = (await client.get(f"/api/v1/pipelines/{pid}/status", headers=admin)).json()
    assert status["state"] == "STOPPED" and status["full_load_status"] == "COMPLETED"
    runs = (await client.get(f"/api/v1/pipelines/{pid}/runs", headers=admin)).json()
    assert [r["status"] for r in runs] == ["COMPLETED"]
    assert runs[0]["rows_processed"] == 5510 and runs[0]["completed_at"] and runs[0]["run_type"] == "FULL_LOAD"
    assert set(runs[0]) >= {
        "id",
        "run_type",
        "status",
        "started_at",
        "completed_at",
        "rows_processed",
        "rows_failed",
        "error_message",
    }
    # Switch to truncate and run again: completes.
    r = await client.put(f"/api/v1/pipelines/{pid}", headers=admin, json={"target_table_policy": "truncate"})
    assert r.status_code == 200, r.text
    await client.post(f"/api/v1/pipelines/{pid}/start", headers=admin)
    status = await wait_for_state(client, admin, pid, {"STOPPED", "ERROR"})
    assert status["full_load_status"] == "COMPLETED"
    assert (await client.delete(f"/api/v1/pipelines/{pid}", headers=admin)).status_code == 204
    assert (await client.get(f"/api/v1/pipelines/{pid}", headers=admin)).status_code == 404


async def test_stop_cancels_a_running_load(client, admin, pg, pg_db, target_db) -> None:
    conn = pg.connect(pg_db)
    with conn.cursor() as cur:
        cur.execute("CREATE SCHEMA big")
        cur.execute("CREATE TABLE big.t AS SELECT g AS id, md5(g::text) AS h FROM generate_series(1, 3000000) g")
        cur.execute("ALTER TABLE big.t ADD PRIMARY KEY (id)")
    conn.close()
    src, tgt = await make_connections(client, admin, pg, pg_db, target_db)
    body = pipeline_body(src, tgt, source_schema="big", target_schema="big", tables=["t"])
    pid = (await client.post("/api/v1/pipelines", headers=admin, json=body)).json()["id"]
    await client.post(f"/api/v1/pipelines/{pid}/start", headers=admin)
    r = await client.post(f"/api/v1/pipelines/{pid}/start", headers=admin)
    assert r.status_code == 409  # never two runs of one pipeline at once
    await wait_for_state(client, admin, pid, {"RUNNING"})
    r = await client.post(f"/api/v1/pipelines/{pid}/stop", headers=admin)
    assert r.status_code == 200
    status = await wait_for_state(client, admin, pid, {"STOPPED", "ERROR"}, timeout=30)
    assert status["state"] == "STOPPED" and status["full_load_status"] == "CANCELLED", status
    runs = (await client.get(f"/api/v1/pipelines/{pid}/runs", headers=admin)).json()
    assert runs[0]["status"] == "CANCELLED"
    conn = pg.connect(target_db)
    with conn.cursor() as cur:
        # The table's create and copy were one transaction: cancelling left the target as it was.
        cur.execute("SELECT to_regclass('big.t')")
        assert cur.fetchone()[0] is None
    conn.close()


async def test_schedule_fires_and_next_run_is_shown(client, admin, pg, pg_db, target_db) -> None:
    seed_source(pg, pg_db)
    src, tgt = await make_connections(client, admin, pg, pg_db, target_db)
    body = pipeline_body(src, tgt, tables=["customers"], target_table_policy="truncate", schedule="*/2 * * * * *")
    p = (await client.post("/api/v1/pipelines", headers=admin, json=body)).json()
    assert p["next_run_at"] is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while True:
        runs = (await client.get(f"/api/v1/pipelines/{p['id']}/runs", headers=admin)).json()
        done = [r for r in runs if r["status"] == "COMPLETED"]
        if len(done) >= 2:
            break
        assert loop.time() < deadline, runs
        await asyncio.sleep(0.5)
    assert all(r["trigger"] == "schedule" for r in runs)
    # Runs never overlap: each starts after the previous one completed.
    ordered = sorted(done, key=lambda r: r["id"])
    assert ordered[0]["completed_at"] <= ordered[1]["started_at"]
    r = await client.put(f"/api/v1/pipelines/{p['id']}", headers=admin, json={"schedule": None})
    assert r.json()["next_run_at"] is None


async def test_schema_diff_shows_different_columns(client, admin, pg, pg_db, target_db) -> None:
    seed_source(pg, pg_db)
    conn = pg.connect(target_db)
    with conn.cursor() as cur:
        cur.execute("CREATE SCHEMA shop_copy; CREATE TABLE shop_copy.customers (id bigint PRIMARY KEY, extra text)")
    conn.close()
    src, tgt = await make_connections(client, admin, pg, pg_db, target_db)
    pid = (await client.post("/api/v1/pipelines", headers=admin, json=pipeline_body(src, tgt))).json()["id"]
    diff = (await client.get(f"/api/v1/pipelines/{pid}/schema/diff", headers=admin)).json()
    by_source = {row["source"]: row for row in diff}
    customers = by_source["shop.customers"]
    assert customers["target_status"] == "exists_different"
    assert "name" in customers["differences"]["added"] and "extra" in customers["differences"]["removed"]
    assert [c["name"] for c in customers["differences"]["changed"]] == ["id"]
    assert by_source["shop.orders"]["target_status"] == "will_be_created"
    report = (await client.post(f"/api/v1/pipelines/{pid}/validate", headers=admin)).json()
    assert any("shop_copy.customers exists with different columns" in w for w in report["warnings"])


async def test_cdc_history_has_the_full_load_and_a_paused_run_and_the_lag_warns(
    client, admin, pg, pg_db, target_db
) -> None:
    seed_source(pg, pg_db)
    src, tgt = await make_connections(client, admin, pg, pg_db, target_db)
    body = pipeline_body(src, tgt, tables=["customers", "orders"], mode="FULL_LOAD_AND_CDC")
    pid = (await client.post("/api/v1/pipelines", headers=admin, json=body)).json()["id"]
    assert (await client.post(f"/api/v1/pipelines/{pid}/start", headers=admin)).status_code == 200
    await wait_for_state(client, admin, pid, {"RUNNING"})
    runs = (await client.get(f"/api/v1/pipelines/{pid}/runs", headers=admin)).json()
    # newest first: the CDC run, then the full load it did first (its own row, with its rows)
    assert [(r["run_type"], r["status"]) for r in runs] == [("CDC", "RUNNING"), ("FULL_LOAD", "COMPLETED")], runs
    assert runs[1]["rows_processed"] == 5500 and runs[1]["completed_at"] is not None
    lag = (await client.get(f"/api/v1/pipelines/{pid}/lag", headers=admin)).json()
    assert lag.get("slot_warning") is None  # read by the worker
    assert (await client.post(f"/api/v1/pipelines/{pid}/pause", headers=admin)).json()["state"] == "PAUSED"
    runs = (await client.get(f"/api/v1/pipelines/{pid}/runs", headers=admin)).json()
    assert runs[0]["run_type"] == "CDC" and runs[0]["status"] == "PAUSED", runs
    slot = (await client.get(f"/api/v1/pipelines/{pid}", headers=admin)).json()["slot_name"]
    lag = (await client.get(f"/api/v1/pipelines/{pid}/lag", headers=admin)).json()
    assert lag["events_per_second"] == 0 and f"SELECT pg_drop_replication_slot('{slot}')" in lag["slot_warning"]
    status = (await client.get(f"/api/v1/pipelines/{pid}/status", headers=admin)).json()
    assert {(t["source"], t["status"], t["rows_copied"]) for t in status["tables"]} == {
        ("shop.customers", "COMPLETED", 500),
        ("shop.orders", "COMPLETED", 5000),
    }
    assert (await client.post(f"/api/v1/pipelines/{pid}/stop", headers=admin)).json()["state"] == "STOPPED"
    assert (await client.delete(f"/api/v1/pipelines/{pid}", headers=admin)).status_code == 204
