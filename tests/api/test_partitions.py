"""Partitioned tables through FULL_LOAD_AND_CDC: one target table, every change applied exactly once.

The parent is selected (partitions are not tables of their own), the target gets one table, and
inserts, updates, deletes and partition-moving updates in any partition — the default one and
partitions created or attached while streaming included — arrive exactly once.
"""

from __future__ import annotations

import asyncio

from tests import realschema as rs
from tests.api.test_pipelines_api import make_connections, pipeline_body, wait_for_state
from tests.pgcluster import PgCluster


def run_sql(pg: PgCluster, db: str, *statements: str) -> None:
    conn = pg.connect(db)
    with conn.cursor() as cur:
        for s in statements:
            cur.execute(s)
    conn.close()


def month(m: int, year: int = 2024) -> str:
    return f"FOR VALUES FROM ('{year}-{m:02d}-01') TO ('{year + m // 12}-{m % 12 + 1:02d}-01')"


SCHEMA = (
    "CREATE SCHEMA sales",
    "CREATE TABLE sales.customers (id int PRIMARY KEY, name text NOT NULL)",
    "CREATE TABLE sales.orders (id bigint NOT NULL, placed date NOT NULL, customer_id int NOT NULL "
    " REFERENCES sales.customers, amount numeric(10,2), note text, PRIMARY KEY (placed, id))"
    " PARTITION BY RANGE (placed)",
    *(f"CREATE TABLE sales.orders_2024_{m:02d} PARTITION OF sales.orders {month(m)}" for m in (1, 2, 3)),
    "CREATE TABLE sales.orders_default PARTITION OF sales.orders DEFAULT",
    "CREATE VIEW sales.big_orders AS SELECT * FROM sales.orders WHERE amount > 100",
    "INSERT INTO sales.customers SELECT g, 'Kundin ' || g FROM generate_series(1, 50) g",
    "INSERT INTO sales.orders SELECT g, date '2024-01-01' + g % 90, 1 + g % 50, g * 0.75, 'n' || g"
    " FROM generate_series(1, 3000) g",
    "INSERT INTO sales.orders SELECT 3000 + g, date '2030-01-01' + g, 1 + g % 50, 9.99, NULL"
    " FROM generate_series(1, 100) g",
)

# In every partition: inserts, updates in place, updates that move rows, deletes.
CHANGES = (
    "INSERT INTO sales.orders VALUES (10001, '2024-01-15', 1, 1, 'jan'), (10002, '2024-02-15', 2, 2, 'feb'),"
    " (10003, '2024-03-15', 3, 3, 'mar'), (10004, '2031-05-05', 4, 4, 'default')",
    "UPDATE sales.orders SET note = 'edited', amount = amount + 1 WHERE id IN (10, 40, 80, 3010)",
    "UPDATE sales.orders SET placed = '2024-03-20' WHERE id = 11",  # January -> March
    "UPDATE sales.orders SET placed = '2032-01-01' WHERE id = 12",  # February -> default
    "UPDATE sales.orders SET placed = '2024-02-02', note = 'back' WHERE id = 3005",  # default -> February
    "UPDATE sales.orders SET placed = placed + 1 WHERE id BETWEEN 100 AND 160",  # some move, some stay
    "DELETE FROM sales.orders WHERE id IN (20, 50, 85, 3020)",
    "BEGIN; UPDATE sales.orders SET placed = '2024-01-03' WHERE id = 200;"
    " DELETE FROM sales.orders WHERE id = 201; INSERT INTO sales.orders VALUES (10005, '2024-03-01', 5, 5, 'tx');"
    " COMMIT",
)

LATER = (
    f"CREATE TABLE sales.orders_2024_04 PARTITION OF sales.orders {month(4)}",
    "INSERT INTO sales.orders VALUES (10006, '2024-04-10', 6, 6, 'april')",
    "UPDATE sales.orders SET placed = '2024-04-01' WHERE id IN (13, 3030)",  # into the new partition
    "UPDATE sales.orders SET note = 'april edit' WHERE id = 10006",
    "DELETE FROM sales.orders WHERE id = 13",
    "CREATE TABLE sales.orders_2024_05 (LIKE sales.orders INCLUDING DEFAULTS)",
    f"ALTER TABLE sales.orders ATTACH PARTITION sales.orders_2024_05 {month(5)}",
    "INSERT INTO sales.orders VALUES (10007, '2024-05-10', 7, 7, 'may')",
    "UPDATE sales.orders SET placed = '2024-05-02' WHERE id IN (14, 10006)",  # into the attached partition
    "UPDATE sales.orders SET placed = '2024-01-31' WHERE id = 10007",  # and out of it again
)


async def converge(source, target, tables: tuple[str, ...], timeout: float = 60) -> None:  # noqa: ANN001
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while diffs := rs.differences(source, target, "sales", "sales_copy", tables):
        assert loop.time() < deadline, "\n".join(diffs)
        await asyncio.sleep(0.3)


async def test_partitioned_table_loads_and_streams_as_one_table(client, admin, pg, pg_db, target_db) -> None:
    run_sql(pg, pg_db, *SCHEMA)
    src, tgt = await make_connections(client, admin, pg, pg_db, target_db)
    body = pipeline_body(
        src, tgt, source_schema="sales", target_schema="sales_copy", tables=["*"], mode="FULL_LOAD_AND_CDC"
    )
    r = await client.post("/api/v1/pipelines", headers=admin, json=body)
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    preview = (await client.get(f"/api/v1/pipelines/{pid}/tables/preview", headers=admin)).json()
    assert [p["source"] for p in preview] == ["sales.customers", "sales.orders"]  # no partitions, no view
    assert next(p for p in preview if p["source"] == "sales.orders")["row_count"] == 3100

    r = await client.post(f"/api/v1/pipelines/{pid}/start", headers=admin)
    assert r.status_code == 200, r.text
    status = await wait_for_state(client, admin, pid, {"RUNNING", "ERROR"})
    assert status["state"] == "RUNNING", status
    source, target = pg.connect(pg_db), pg.connect(target_db)
    try:
        await converge(source, target, ("customers", "orders"))
        run_sql(pg, pg_db, *CHANGES)
        await converge(source, target, ("customers", "orders"))
        run_sql(pg, pg_db, *LATER)
        await converge(source, target, ("customers", "orders"))
        with target.cursor() as cur:
            cur.execute(
                "SELECT c.relname, c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = "
                "c.relnamespace WHERE n.nspname = 'sales_copy' AND c.relkind IN ('r', 'p', 'v', 'm') "
                "ORDER BY 1"
            )
            assert cur.fetchall() == [("customers", "r"), ("orders", "r")]
        with source.cursor() as cur:  # rows live in every partition, the later ones included
            cur.execute("SELECT tableoid::regclass::text, count(*) FROM sales.orders GROUP BY 1")
            per_partition = dict(cur.fetchall())
        assert set(per_partition) == {f"sales.orders_2024_0{m}" for m in range(1, 6)} | {"sales.orders_default"}
    finally:
        source.close()
        target.close()
    status = (await client.get(f"/api/v1/pipelines/{pid}/status", headers=admin)).json()
    assert status["state"] == "RUNNING", status
    assert (await client.delete(f"/api/v1/pipelines/{pid}", headers=admin)).status_code == 204
