"""Connections over the API: CRUD, validation, secrecy of the password, tests and discovery."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.pgcluster import PgCluster, free_port

SECRET = "Sup3r-Secret-Pa55word"


def body(**overrides) -> dict:
    b = {
        "name": "warehouse",
        "kind": "postgresql",
        "usage": "source",
        "host": "db.example.com",
        "port": 5432,
        "database": "shop",
        "username": "etl",
        "password": SECRET,
        "schema": "public",
        "options": {"sslmode": "prefer"},
    }
    b.update(overrides)
    return b


def pg_body(pg: PgCluster, database: str, **overrides) -> dict:
    return body(
        host=pg.host, port=pg.port, database=database, username=pg.user, password=pg.password, options={}, **overrides
    )


async def count(client, headers) -> int:
    return len((await client.get("/api/v1/connections", headers=headers)).json())


async def test_crud_and_password_is_write_only(client: httpx.AsyncClient, admin, app_env, caplog) -> None:
    seen: list[str] = []
    r = await client.post("/api/v1/connections", headers=admin, json=body())
    assert r.status_code == 201, r.text
    seen.append(r.text)
    created = r.json()
    assert created["schema"] == "public" and created["has_password"] is True and "password" not in created
    assert created["options"] == {"sslmode": "prefer"} and created["usage"] == "source"
    cid = created["id"]
    for path in ("/api/v1/connections", f"/api/v1/connections/{cid}"):
        seen.append((await client.get(path, headers=admin)).text)
    r = await client.put(f"/api/v1/connections/{cid}", headers=admin, json={"host": "db2.example.com"})
    assert r.status_code == 200 and r.json()["host"] == "db2.example.com" and r.json()["has_password"]
    seen.append(r.text)
    seen.append((await client.get("/openapi.json")).text)
    for text in seen:
        assert SECRET not in text
    assert SECRET not in caplog.text
    # Encrypted at rest: the plain password is nowhere in the SQLite files' bytes.
    data_dir = Path(app_env["CDC_STUDIO_DATA_DIR"])
    files = list(data_dir.glob("cdc_studio.db*"))
    assert files
    for f in files:
        assert SECRET.encode() not in f.read_bytes()
    assert (data_dir / "secret.key").stat().st_mode & 0o777 == 0o600
    # Clearing the password is explicit (""), leaving it out keeps it.
    r = await client.put(f"/api/v1/connections/{cid}", headers=admin, json={"password": ""})
    assert r.json()["has_password"] is False
    r = await client.delete(f"/api/v1/connections/{cid}", headers=admin)
    assert r.status_code == 204
    assert await count(client, admin) == 0
    trail = (await client.get("/api/v1/audit", headers=admin)).json()
    assert [e["action"] for e in trail][:4] == [
        "connection.delete",
        "connection.update",
        "connection.update",
        "connection.create",
    ]
    assert all(SECRET not in str(e) for e in trail)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"kind": "oracle"}, "kind"),
        ({"usage": "sideways"}, "usage"),
        ({"port": 70000}, "port"),
        ({"port": "abc"}, "port"),
        ({"name": ""}, "name"),
        ({"host": ""}, "host"),
        ({"database": None}, "database"),
        ({"username": ""}, "username"),
        ({"options": "sslmode=require"}, "options"),
    ],
)
async def test_bad_input_names_the_field_and_saves_nothing(client, admin, overrides, field) -> None:
    r = await client.post("/api/v1/connections", headers=admin, json=body(**overrides))
    assert r.status_code == 422, r.text
    assert field in r.json()["detail"][0]["loc"]
    assert SECRET not in r.text
    assert await count(client, admin) == 0


async def test_password_never_echoed_by_a_rejected_body(client, admin) -> None:
    r = await client.post("/api/v1/connections", headers=admin, json=body(password=SECRET * 100))
    assert r.status_code == 422 and "password" in r.json()["detail"][0]["loc"]
    assert SECRET not in r.text


async def test_duplicate_name_conflicts(client, admin) -> None:
    assert (await client.post("/api/v1/connections", headers=admin, json=body())).status_code == 201
    r = await client.post("/api/v1/connections", headers=admin, json=body(host="other"))
    assert r.status_code == 409 and "warehouse" in r.json()["detail"]
    other = (await client.post("/api/v1/connections", headers=admin, json=body(name="b"))).json()
    r = await client.put(f"/api/v1/connections/{other['id']}", headers=admin, json={"name": "warehouse"})
    assert r.status_code == 409
    assert (await client.get(f"/api/v1/connections/{other['id']}", headers=admin)).json()["name"] == "b"
    assert await count(client, admin) == 2


async def test_default_port_by_kind(client, admin) -> None:
    r = await client.post("/api/v1/connections", headers=admin, json=body(kind="sqlserver", port=None, schema="dbo"))
    assert r.status_code == 201 and r.json()["port"] == 1433


async def test_unknown_connection_is_404(client, admin) -> None:
    for method, path in [
        ("GET", "/api/v1/connections/999"),
        ("POST", "/api/v1/connections/999/test"),
        ("GET", "/api/v1/connections/999/tables"),
        ("DELETE", "/api/v1/connections/999"),
    ]:
        assert (await client.request(method, path, headers=admin)).status_code == 404


async def test_connection_test_and_history(client, admin, pg: PgCluster, pg_db: str) -> None:
    cid = (await client.post("/api/v1/connections", headers=admin, json=pg_body(pg, pg_db))).json()["id"]
    r = await client.post(f"/api/v1/connections/{cid}/test", headers=admin)
    assert r.status_code == 200, r.text
    ok = r.json()
    assert ok["ok"] is True and ok["server_version"].startswith("PostgreSQL") and ok["latency_ms"] > 0
    await client.put(f"/api/v1/connections/{cid}", headers=admin, json={"password": "wrong-one"})
    bad = (await client.post(f"/api/v1/connections/{cid}/test", headers=admin)).json()
    assert bad["ok"] is False and bad["error_kind"] == "auth_failed"
    assert "password authentication failed" in bad["error"] and "wrong-one" not in bad["error"]
    await client.put(f"/api/v1/connections/{cid}", headers=admin, json={"port": free_port()})
    refused = (await client.post(f"/api/v1/connections/{cid}/test", headers=admin)).json()
    assert refused["ok"] is False and refused["error_kind"] == "refused"
    history = (await client.get(f"/api/v1/connections/{cid}/tests", headers=admin)).json()
    assert [t["ok"] for t in history] == [False, False, True]
    listed = (await client.get("/api/v1/connections", headers=admin)).json()
    assert listed[0]["last_test"]["error_kind"] == "refused"
    # Discovery on an unreachable server answers 502 with the reason in words.
    r = await client.get(f"/api/v1/connections/{cid}/databases", headers=admin)
    assert r.status_code == 502 and r.json()["kind"] == "refused"


async def test_viewer_browses_but_may_not_test(client, admin, viewer, editor, pg: PgCluster, pg_db: str) -> None:
    cid = (await client.post("/api/v1/connections", headers=admin, json=pg_body(pg, "postgres"))).json()["id"]
    # A test writes the test history: read-only means no writes.
    r = await client.post(f"/api/v1/connections/{cid}/test", headers=viewer)
    assert r.status_code == 403, r.text
    assert "may not manage connections" in r.json()["detail"]
    assert (await client.get(f"/api/v1/connections/{cid}/tests", headers=viewer)).json() == []
    assert (await client.post(f"/api/v1/connections/{cid}/test", headers=editor)).json()["ok"] is True
    assert len((await client.get(f"/api/v1/connections/{cid}/tests", headers=viewer)).json()) == 1
    names = [d["name"] for d in (await client.get(f"/api/v1/connections/{cid}/databases", headers=viewer)).json()]
    assert pg_db in names


async def test_discovery_in_the_picked_database(client, admin, pg: PgCluster, pg_db: str) -> None:
    conn = pg.connect(pg_db)
    with conn.cursor() as cur:
        cur.execute("CREATE SCHEMA sales")
        cur.execute("CREATE TABLE sales.customers (id int PRIMARY KEY, name text NOT NULL)")
        cur.execute(
            "CREATE TABLE sales.orders (id int PRIMARY KEY, customer_id int REFERENCES sales.customers,"
            " total numeric(12,2) DEFAULT 0)"
        )
        cur.execute(
            "CREATE TABLE sales.order_lines (order_id int REFERENCES sales.orders, line int, sku text,"
            " PRIMARY KEY (order_id, line))"
        )
        cur.execute("CREATE TABLE sales.audit (msg text)")
        cur.execute("INSERT INTO sales.customers SELECT g, 'c' || g FROM generate_series(1, 321) g")
        cur.execute("INSERT INTO sales.orders SELECT g, 1 + g % 321, g FROM generate_series(1, 777) g")
    conn.close()
    # The connection's own database is "postgres": discovery must still count inside pg_db.
    cid = (await client.post("/api/v1/connections", headers=admin, json=pg_body(pg, "postgres"))).json()["id"]
    base = f"/api/v1/connections/{cid}"
    schemas = (await client.get(f"{base}/schemas", headers=admin, params={"database": pg_db})).json()
    assert "sales" in [s["name"] for s in schemas]
    r = await client.get(f"{base}/tables", headers=admin, params={"database": pg_db, "schema": "sales"})
    assert r.status_code == 200, r.text
    tables = {t["name"]: t for t in r.json()}
    assert set(tables) == {"customers", "orders", "order_lines", "audit"}
    assert tables["customers"]["row_count"] == 321 and tables["orders"]["row_count"] == 777
    assert tables["audit"]["has_primary_key"] is False and tables["orders"]["has_primary_key"] is True
    assert tables["orders"]["size_bytes"] > 0
    assert set(tables["orders"]) >= {"schema", "name", "row_count", "size_bytes", "has_primary_key"}
    exact = (
        await client.get(
            f"{base}/tables", headers=admin, params={"database": pg_db, "schema": "sales", "exact": "true"}
        )
    ).json()
    assert {t["name"]: t["row_count"] for t in exact}["orders"] == 777
    r = await client.get(f"{base}/tables/sales/orders", headers=admin, params={"database": pg_db})
    detail = r.json()
    assert [c["name"] for c in detail["columns"]] == ["id", "customer_id", "total"]
    total = detail["columns"][2]
    assert total == {**total, "type": "numeric(12,2)", "nullable": True} and "0" in total["default"]
    assert detail["primary_key"] == ["id"]
    assert detail["foreign_keys"][0]["referenced_table"] == "customers"
    assert detail["referenced_by"][0]["table"] == "order_lines"
    r = await client.get(f"{base}/tables/sales/orders/count", headers=admin, params={"database": pg_db})
    assert r.json()["row_count"] == 777
    r = await client.get(f"{base}/tables/sales/nope", headers=admin, params={"database": pg_db})
    assert r.status_code == 404
    r = await client.get(
        f"{base}/dependencies",
        headers=admin,
        params={"database": pg_db, "schema": "sales", "tables": "order_lines,orders,customers,audit"},
    )
    deps = r.json()
    order = deps["order"]
    assert order.index("customers") < order.index("orders") < order.index("order_lines")
    assert deps["cycles"] == []
    r = await client.get(f"{base}/schemas", headers=admin, params={"database": "no_such_db"})
    assert r.status_code == 404


async def test_entered_values_are_tested_before_saving(client, admin, editor, viewer, pg: PgCluster, pg_db) -> None:
    draft = {k: v for k, v in pg_body(pg, pg_db).items() if k != "name"}
    r = await client.post("/api/v1/connections/test", headers=editor, json=draft)
    assert r.status_code == 200, r.text
    ok = r.json()
    assert ok["ok"] is True and ok["server_version"].startswith("PostgreSQL") and ok["latency_ms"] > 0
    bad = (await client.post("/api/v1/connections/test", headers=editor, json={**draft, "password": "nope"})).json()
    assert bad["ok"] is False and bad["error_kind"] == "auth_failed" and "nope" not in bad["error"]
    assert await count(client, admin) == 0  # nothing stored
    r = await client.post("/api/v1/connections/test", headers=viewer, json=draft)
    assert r.status_code == 403
    r = await client.post("/api/v1/connections/test", headers=editor, json={**draft, "host": ""})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "host"
    # editing: no password given means the stored one; the history of the saved connection stays empty
    cid = (await client.post("/api/v1/connections", headers=admin, json=pg_body(pg, pg_db))).json()["id"]
    stored = {**draft, "password": None, "connection_id": cid}
    assert (await client.post("/api/v1/connections/test", headers=editor, json=stored)).json()["ok"] is True
    cleared = {**draft, "password": "", "connection_id": cid}
    assert (await client.post("/api/v1/connections/test", headers=editor, json=cleared)).json()["ok"] is False
    assert (await client.get(f"/api/v1/connections/{cid}/tests", headers=admin)).json() == []


async def test_cdc_readiness_checklist(client, admin, viewer, pg: PgCluster, pg_db: str) -> None:
    conn = pg.connect(pg_db)
    with conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE keyed (id int PRIMARY KEY); CREATE TABLE loose (msg text);"
            "CREATE TABLE whole (msg text); ALTER TABLE whole REPLICA IDENTITY FULL;"
            "CREATE ROLE plain_reader LOGIN PASSWORD 'reader-pass-1';"
            f'GRANT CONNECT ON DATABASE "{pg_db}" TO plain_reader'
        )
    conn.close()
    try:
        cid = (await client.post("/api/v1/connections", headers=admin, json=pg_body(pg, pg_db))).json()["id"]
        r = await client.get(f"/api/v1/connections/{cid}/readiness", headers=viewer)  # it only reads
        assert r.status_code == 200, r.text
        items = {i["key"]: i for i in r.json()}
        assert list(items) == ["wal_level", "replication", "slots", "wal_senders", "slot_wal_keep", "primary_keys"]
        assert items["wal_level"]["status"] == "ok" and items["replication"]["status"] == "ok"
        assert items["slots"]["status"] == "ok" and "of 20 free" in items["slots"]["found"]
        assert items["wal_senders"]["status"] == "ok" and "of 20 free" in items["wal_senders"]["found"]
        # the test cluster leaves max_slot_wal_keep_size at -1: a stopped slot may fill the disk
        keep = items["slot_wal_keep"]
        assert keep["status"] == "warning" and "unlimited" in keep["found"] and "max_slot_wal_keep_size" in keep["fix"]
        pk = items["primary_keys"]
        assert pk["status"] == "warning" and "public.loose" in pk["found"]
        assert "public.whole" not in pk["found"] and "public.keyed" not in pk["found"]
        assert "REPLICA IDENTITY FULL" in pk["fix"]
        # a user without the REPLICATION attribute: failing, with the ALTER ROLE that fixes it
        reader = pg_body(pg, pg_db, name="reader")
        reader.update(username="plain_reader", password="reader-pass-1")
        rid = (await client.post("/api/v1/connections", headers=admin, json=reader)).json()["id"]
        items = {i["key"]: i for i in (await client.get(f"/api/v1/connections/{rid}/readiness", headers=admin)).json()}
        assert items["replication"]["status"] == "failing"
        assert 'ALTER ROLE "plain_reader" WITH REPLICATION' in items["replication"]["fix"]
    finally:
        conn = pg.connect(pg_db)
        with conn.cursor() as cur:
            cur.execute(f'REVOKE CONNECT ON DATABASE "{pg_db}" FROM plain_reader; DROP ROLE plain_reader')
        conn.close()
