"""Every type of the full-load round trip through the kafka_connect engine on the real stack.

PostgreSQL -> Debezium 3.6 on Kafka Connect -> tansu -> the app's consumer (core/kafka/values.py)
-> applier -> target, driven through the app's API: a CDC_ONLY pipeline with engine
kafka_connect whose target tables are auto-created. The rows of ALL_TYPES_DDL are inserted, then
every column updated, keys changed and rows deleted as in tests/core/test_cdc_types.py, plus a
table of the values the converters compute themselves (BC dates and timestamps, years past 9999,
timestamp(0..3) in milliseconds, time(0..3), extreme intervals, hstore, bit, point, money) and an
unchanged TOASTed value through an update and a primary-key change.

Source and target are compared cell by cell as text and finally with snapshot_of (psycopg2
values and an md5 of the rows). Only the cells Debezium itself cannot carry are taken out, each
listed in AFTER_INSERTS / AFTER_CHANGES with the Debezium behaviour measured and the value that
arrives instead, which is asserted; those cells are then set to the source value on the target
and both tables compared whole, rows and md5.
"""

from __future__ import annotations

import asyncio

from psycopg2 import sql

from tests.api.conftest import admin, client  # noqa: F401 - fixtures
from tests.api.test_cdc_api import rows, run_sql, slots
from tests.api.test_pipelines_api import make_connections, pipeline_body, wait_for_state
from tests.core.cdc.test_types import CHANGES, DDL, INSERTS, KEYS
from tests.core.fullload.test_fullload import ALL_TYPES_DDL, columns, snapshot_of
from tests.core.kafka.test_engine import kafka_env  # noqa: F401 - fixture
from tests.pgcluster import PgCluster

EXTRA_COLUMNS = "dt, ts, ts0, ts3, tstz, tstz3, tm0, tm3, ttz, iv, h, bits, vb, pt, mo, o, tsv, nr"
EXTRA_DDL = [
    "CREATE EXTENSION hstore",
    'CREATE TABLE "Shop".extra (id integer PRIMARY KEY, dt date, ts timestamp, ts0 timestamp(0), ts3 timestamp(3), '
    "tstz timestamptz, tstz3 timestamptz(3), tm0 time(0), tm3 time(3), ttz timetz, iv interval, h hstore, "
    "bits bit(12), vb varbit, pt point, mo money, o oid, tsv tsvector, nr numrange, big text, n integer)",
    'ALTER TABLE "Shop".extra ALTER big SET STORAGE EXTERNAL',  # out of line, uncompressed: really TOASTed
]
EXTRA_INSERTS = [
    f'INSERT INTO "Shop".extra (id, {EXTRA_COLUMNS}, big, n) SELECT 1, '
    "'0044-03-15 BC', '4713-01-01 00:00:00 BC', '0044-03-15 12:00:00.6 BC', '0001-01-01 00:00:00.001 BC', "
    "'0001-01-01 00:00:00+00 BC', '294276-12-31 23:59:59.999+00', '23:59:59.4', '13:45:56.1236', "
    "'13:45:56.123456+02', '178956970 years 7 mons 2147483647 days 2147483647:59:59.999999', "
    'E\'k1=>v1, k2=>NULL, "a b"=>"c\\\\"d", ""=>""\', B\'101000000001\', B\'0001\', \'(1.5,2)\', '
    "-92233720368547758.08, 4294967295, 'a fat:1 cat', '(1.5,2.5]', string_agg(md5(g::text), ''), 1 "
    "FROM generate_series(1, 3000) g",
    f'INSERT INTO "Shop".extra (id, {EXTRA_COLUMNS}, n) VALUES (2, '
    "'5874897-12-31', '2024-02-29 13:45:56.123456', '294276-12-31 23:59:59', '1900-01-01 00:00:00.001', "
    "'4713-01-01 00:00:00+00 BC', '1969-12-31 23:59:59.999+00', '10:00:00.6', '00:00:00', '12:00:00+00', "
    "'-178956970 years -8 mons -2147483648 days -2147483647:59:59.999999', '', B'000000000000', "
    "B'10000000000000000001', '(-0.5,1e300)', 0, 0, '', 'empty', 0)",
    "INSERT INTO \"Shop\".extra (id, dt, ts, ts0, ts3, tstz, tstz3, iv) VALUES (3, 'infinity', '-infinity', "
    "'infinity', '-infinity', 'infinity', '-infinity', '-1 days -00:00:01')",
]
EXTRA_CHANGES = [
    'UPDATE "Shop".extra SET n = 2 WHERE id = 1',  # big is TOASTed and unchanged: the placeholder arrives
    'UPDATE "Shop".extra SET id = 10, n = 3 WHERE id = 1',  # a key change: the create half has the placeholder
    f'UPDATE "Shop".extra e SET ({EXTRA_COLUMNS}) = (SELECT {EXTRA_COLUMNS} FROM "Shop".extra x '
    "WHERE x.id = CASE e.id WHEN 2 THEN 3 ELSE 2 END) WHERE e.id IN (2, 3)",
]
TABLE_KEYS = {**KEYS, "extra": ["id"]}

# What Debezium 3.6.3 cannot carry, measured on this stack: table -> key (as text) -> column -> what
# arrives (the target's text of it). Everything else must arrive exactly.
_ENUM_ARRAY_WITH_NULL = None  # "Shop".mood[] with a NULL element: Debezium logs "Failed to properly convert
# data value for 'Shop.select.ma' of type _mood" (DataException: null element of a required array
# schema) and sends the whole column as null.
_NESTED_INT_ARRAY = "{NULL,NULL}"  # integer[] '{{1,2},{3,4}}': "Unexpected value for JDBC type 4 and column
# ia-element ... class=Integer[]": one null per sub-array arrives, [null,null].
_TIMETZ_IN_UTC = "11:45:56.123456+00"  # timetz '13:45:56.123456+02' arrives normalized to UTC,
# "11:45:56.123456Z": the instant is kept, the source offset is not.
_VARBIT_NO_LEADING_ZEROS = "1"  # varbit B'0001' arrives as the BitSet bytes "AQ==": leading zero bits are gone.
AFTER_INSERTS = {
    "Order": {("2", "sel\tect"): {"ia": _NESTED_INT_ARRAY}},
    "select": {("y", "2"): {"ma": _ENUM_ARRAY_WITH_NULL}},
    "extra": {("1",): {"ttz": _TIMETZ_IN_UTC, "vb": _VARBIT_NO_LEADING_ZEROS}},
}
AFTER_CHANGES = {
    "Order": {("4", "moved\nkey"): {"ia": _NESTED_INT_ARRAY}},  # the moved row is the one with the nested array
    "select": {("x", "1"): {"ma": _ENUM_ARRAY_WITH_NULL}},  # set to '{ok,NULL,"it''s"}' by CHANGES
    "extra": {("10",): {"ttz": _TIMETZ_IN_UTC, "vb": _VARBIT_NO_LEADING_ZEROS}},
}


def cells(pg: PgCluster, db: str, schema: str, table: str, key: list[str]) -> dict[tuple, dict[str, str | None]]:
    """key (as text) -> column -> the value's text output, for every row."""
    conn = pg.connect(db)
    try:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("SELECT * FROM {} LIMIT 0").format(sql.Identifier(schema, table)))
            names = [d.name for d in cur.description]
            cur.execute(
                sql.SQL("SELECT {} FROM {}").format(
                    sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(n)) for n in names),
                    sql.Identifier(schema, table),
                )
            )
            out = {}
            for values in cur.fetchall():
                row = dict(zip(names, values, strict=True))
                out[tuple(row[k] for k in key)] = row
            return out
    finally:
        conn.close()


def expected_target(source: dict, lost: dict) -> dict:
    """The source rows with the cells Debezium cannot carry replaced by what it sends."""
    out = {k: dict(v) for k, v in source.items()}
    for key, by_column in lost.items():
        assert key in out, f"row {key} is not in the source any more: the exclusion list is out of date"
        for column, arrives in by_column.items():
            assert out[key][column] != arrives, f"{key}.{column}: not a loss, remove it from the exclusions"
            out[key][column] = arrives
    return out


async def converge(pg: PgCluster, source_db: str, target: str, lost: dict, timeout: float = 90) -> None:
    """Wait until every target table equals its source (but for the measured losses); then assert it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        pairs = []
        for table, key in TABLE_KEYS.items():
            want = expected_target(cells(pg, source_db, "Shop", table, key), lost.get(table, {}))
            try:
                have = cells(pg, target, "Copy", table, key)
            except Exception as exc:  # noqa: BLE001 - the target table may not exist yet
                have = {"error": repr(exc)}
            pairs.append((table, want, have))
        if all(want == have for _t, want, have in pairs) or loop.time() > deadline:
            break
        await asyncio.sleep(0.3)
    for table, want, have in pairs:
        for key in sorted(set(want) | set(have), key=repr):
            assert have.get(key) == want.get(key), (table, key)
        assert have == want, table


def restore_lost_cells(pg: PgCluster, source_db: str, target: str, lost: dict) -> None:
    """Set the cells Debezium cannot carry to the source's value on the target (text in, same type)."""
    for table, by_key in lost.items():
        key = TABLE_KEYS[table]
        source = cells(pg, source_db, "Shop", table, key)
        conn = pg.connect(target)
        try:
            with conn.cursor() as cur:
                for key_values, columns in by_key.items():
                    for column in columns:
                        cur.execute(
                            sql.SQL("UPDATE {} SET {} = %s WHERE {}").format(
                                sql.Identifier("Copy", table),
                                sql.Identifier(column),
                                sql.SQL(" AND ").join(sql.SQL("{}::text = %s").format(sql.Identifier(k)) for k in key),
                            ),
                            (source[key_values][column], *key_values),
                        )
                        assert cur.rowcount == 1
        finally:
            conn.close()


def assert_snapshots_equal(pg: PgCluster, source_db: str, target: str) -> None:
    for table, key in TABLE_KEYS.items():
        source_rows, source_md5 = snapshot_of(pg, source_db, "Shop", table, key)
        target_rows, target_md5 = snapshot_of(pg, target, "Copy", table, key)
        assert target_rows == source_rows, table
        assert target_md5 == source_md5 and source_md5 is not None, table


async def test_every_type_round_trips_through_kafka_connect(
    kafka_env,
    client,
    admin,
    pg: PgCluster,
    pg_db: str,
    target_db: str,  # noqa: F811 - kafka_env before client
) -> None:
    assert DDL and INSERTS and all(s in ALL_TYPES_DDL for s in DDL + INSERTS)  # the very rows of ALL_TYPES_DDL
    run_sql(pg, pg_db, *DDL, *EXTRA_DDL)
    run_sql(pg, target_db, "CREATE EXTENSION hstore")  # the auto-created table has an hstore column
    src, tgt = await make_connections(client, admin, pg, pg_db, target_db)
    body = pipeline_body(
        src,
        tgt,
        source_schema="Shop",
        target_schema="Copy",
        tables=list(TABLE_KEYS),
        mode="CDC_ONLY",
        engine="kafka_connect",
    )
    r = await client.post("/api/v1/pipelines", headers=admin, json=body)
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    try:
        r = await client.post(f"/api/v1/pipelines/{pid}/start", headers=admin)
        assert r.status_code == 200, r.text
        status = await wait_for_state(client, admin, pid, {"RUNNING", "ERROR"}, timeout=120)
        assert status["state"] == "RUNNING" and status["engine"] == "kafka_connect", status
        # CDC_ONLY: the target tables were created empty, with the source's column types.
        for table in TABLE_KEYS:
            assert rows(pg, target_db, f'SELECT count(*) FROM "Copy"."{table}"') == [(0,)]
            assert columns(pg, target_db, "Copy", table) == columns(pg, pg_db, "Shop", table)

        run_sql(pg, pg_db, *INSERTS, *EXTRA_INSERTS)
        await converge(pg, pg_db, target_db, AFTER_INSERTS)

        run_sql(pg, pg_db, *CHANGES, *EXTRA_CHANGES)
        await converge(pg, pg_db, target_db, AFTER_CHANGES)
        source_rows, _ = snapshot_of(pg, pg_db, "Shop", "Order", KEYS["Order"])
        assert len(source_rows) == 4 and any("moved\\nkey" in r for r in source_rows)
        # The TOASTed value survived the update that left it out and the key change that moved it.
        toasted = "SELECT id, n, length(big), md5(big) FROM {}.extra WHERE big IS NOT NULL"
        assert rows(pg, target_db, toasted.format('"Copy"')) == rows(pg, pg_db, toasted.format('"Shop"'))
        assert [r[:3] for r in rows(pg, target_db, toasted.format('"Copy"'))] == [(10, 3, 96000)]

        # With the measured losses put back, source and target are the same, value for value and by md5.
        restore_lost_cells(pg, pg_db, target_db, AFTER_CHANGES)
        assert_snapshots_equal(pg, pg_db, target_db)
        status = (await client.get(f"/api/v1/pipelines/{pid}/status", headers=admin)).json()
        assert status["state"] == "RUNNING" and not status.get("error_message"), status
    finally:
        deleted = await client.delete(f"/api/v1/pipelines/{pid}", headers=admin)
    assert deleted.status_code == 204, deleted.text
    assert slots(pg, pg_db) == []
