"""The full-load engine against real PostgreSQL (source and target are two databases of one cluster).

Round trips with exact equality, auto-create output, target policies, failures next to
successes, cancel, progress, snapshots, foreign-key order; SQL Server paths through a fake
pyodbc connection with the real PostgreSQL on the other side.
"""

from __future__ import annotations

import io
import itertools
import os
import struct
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from datetime import time as dtime
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg2
import pytest
from psycopg2 import sql

from core.connectors.base import ColumnInfo, ConnectionSpec, TableDetail
from core.connectors.postgres import PostgresConnector
from core.connectors.sqlserver import SqlServerConnector
from core.fullload import (
    FullLoadResult,
    LoadOptions,
    TablePlan,
    TableProgress,
    compare_columns,
    mssql,
    pgsql,
    plan_target_ddl,
    run_full_load,
    runner,
)
from core.fullload.model import TableSpec
from core.fullload.pgsql import APPLICATION_NAME
from core.fullload.prepare import map_columns
from tests.pgcluster import PgCluster

_counter = itertools.count(1)


@pytest.fixture
def target_db(pg: PgCluster) -> Iterator[str]:
    """A second fresh database: the load's target."""
    name = f"fl_tgt_{os.getpid()}_{next(_counter)}"
    pg.create_database(name)
    yield name
    pg.drop_database(name)


def spec(pg: PgCluster, db: str) -> ConnectionSpec:
    return ConnectionSpec(
        kind="postgresql", host=pg.host, port=pg.port, database=db, username=pg.user, password=pg.password
    )


def execute(pg: PgCluster, db: str, statement: str | sql.Composable, params: tuple = ()) -> None:
    conn = pg.connect(db)
    try:
        with conn.cursor() as cur:
            cur.execute(statement, params or None)
    finally:
        conn.close()


def fetch(pg: PgCluster, db: str, query: str | sql.Composable, params: tuple = ()) -> list[tuple]:
    conn = pg.connect(db)
    try:
        with conn.cursor() as cur:
            cur.execute(query, params or None)
            return cur.fetchall()
    finally:
        conn.close()


def load(
    pg: PgCluster,
    source_db: str,
    target_db: str,
    plans: list[TablePlan],
    events: list[TableProgress] | None = None,
    cancel: threading.Event | None = None,
    on_progress: Callable[[TableProgress], None] | None = None,
    **options: Any,
) -> FullLoadResult:
    seen = events if events is not None else []
    callback = on_progress or seen.append
    return run_full_load(
        spec(pg, source_db), spec(pg, target_db), plans, LoadOptions(**options), callback, cancel or threading.Event()
    )


def by_source(result: FullLoadResult) -> dict[str, TableProgress]:
    return {t.source: t for t in result.tables}


def count(pg: PgCluster, db: str, schema: str, table: str) -> int:
    return fetch(pg, db, sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table)))[0][0]


def exists(pg: PgCluster, db: str, schema: str, table: str) -> bool:
    return pgsql.target_oid(_Cur(pg, db), schema, table) is not None


class _Cur:
    """Just enough of a cursor for pgsql.target_oid in assertions."""

    def __init__(self, pg: PgCluster, db: str) -> None:
        self.pg, self.db, self.rows = pg, db, []

    def execute(self, query: str, params: tuple) -> None:
        self.rows = fetch(self.pg, self.db, query, params)

    def fetchone(self) -> tuple | None:
        return self.rows[0] if self.rows else None


# ---------------------------------------------------------------------------------------------
# Round trip of every common type

ALL_TYPES_DDL = r"""
CREATE SCHEMA "Shop";
CREATE TYPE "Shop".mood AS ENUM ('sad', 'ok', 'very "happy"', 'it''s');
CREATE TABLE "Shop"."Order" (
    "Group" integer NOT NULL,
    "select" text NOT NULL,
    i2 smallint, i4 integer, i8 bigint,
    n20 numeric(20,6), n numeric,
    r real, d double precision,
    t text, vc varchar(10), c char(5), b boolean NOT NULL DEFAULT false,
    dt date, tm time, ts timestamp, tstz timestamptz, iv interval,
    u uuid, j json, jb jsonb, "by" bytea,
    ia integer[], ta text[],
    m "Shop".mood,
    "MixedCase" text,
    PRIMARY KEY ("Group", "select")
);
INSERT INTO "Shop"."Order" VALUES
 (1, 'a', -32768, -2147483648, -9223372036854775808, -99999999999999.999999, 'NaN', 'NaN', '-Infinity',
  E'tab\there\nnew\\line ''q'' "dq" \U0001F600 漢字 \r end', 'abcdefghij', 'ab', false,
  '-infinity', '00:00:00', '-infinity', '-infinity', '-178000000 years',
  '00000000-0000-0000-0000-000000000000', '{ "a" :  1,"b":[1, 2] }', '{"a": 1, "b": [1, 2]}', '\x00ff00',
  '{1,NULL,3}', ARRAY['a b', NULL, 'c,d', 'e"f', '', 'NULL', E'back\\slash', E'tab\t'], 'sad', 'Mixed'),
 (1, 'b', 32767, 2147483647, 9223372036854775807, 99999999999999.999999,
  '123456789012345678901234567890.123456789012345', 'Infinity', 'Infinity',
  E'\\N', '', '     ', true, 'infinity', '24:00:00', 'infinity', 'infinity', '178000000 years',
  'ffffffff-ffff-ffff-ffff-ffffffffffff', '[]', '{}', '', '{}', '{}', 'very "happy"', ''),
 (2, E'sel\tect', 0, 0, 0, 0.000001, '-0.5', 3.4028235e38, 1.7976931348623157e308,
  '\N', 'x', 'abc', true, '2024-02-29', '12:34:56.789012', '2024-02-29 12:34:56.789012',
  '2024-02-29 12:34:56.789012+05:30', '1 year 2 mons 3 days 04:05:06.789',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'null', '"str"', '\x5c00', '{{1,2},{3,4}}', '{"\\t"}', 'it''s',
  'Ünïcödé'),
 (3, 'nulls', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, DEFAULT, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (3, 'small', 1, 2, 3, 1.5, 1e-30, 1.17549435e-38, 2.2250738585072014e-308, 'x', 'y', 'z', true,
  '0001-01-01', '23:59:59.999999', '0001-01-01 00:00:00', '1999-12-31 23:59:59.999999-12', '-1 day -00:00:01',
  'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', '  {"sp": " aces "}  ', '{"n": 1.50, "z": null}', '\x',
  '{-1}', '{"NULL"}', 'ok', 'x');
-- Enum arrays carry type oids in binary COPY: this table takes the text path.
CREATE TABLE "Shop"."select" (
    "Key" integer NOT NULL,
    "Order" text NOT NULL,
    ma "Shop".mood[],
    m "Shop".mood,
    PRIMARY KEY ("Order", "Key")
);
INSERT INTO "Shop"."select" VALUES
 (1, 'x', '{sad,"very \"happy\""}', 'ok'), (2, 'y', '{NULL,it''s}', NULL), (3, 'z', NULL, 'sad'), (1, 'z', '{}', 'ok');
"""


def primary_key(pg: PgCluster, db: str, schema: str, table: str) -> list[str]:
    return [
        r[0]
        for r in fetch(
            pg,
            db,
            "SELECT a.attname FROM pg_constraint con CROSS JOIN unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord) "
            "JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum "
            "WHERE con.conrelid = %s::regclass AND con.contype = 'p' ORDER BY k.ord",
            (sql_name(schema, table),),
        )
    ]


def sql_name(schema: str, table: str) -> str:
    return '"' + schema.replace('"', '""') + '"."' + table.replace('"', '""') + '"'


def columns(pg: PgCluster, db: str, schema: str, table: str) -> list[tuple]:
    """(name, type name, typmod, not null) per column: enum types compare by name across schemas."""
    return fetch(
        pg,
        db,
        "SELECT a.attname, t.typname, a.atttypmod, a.attnotnull FROM pg_attribute a "
        "JOIN pg_type t ON t.oid = a.atttypid WHERE a.attrelid = %s::regclass AND a.attnum > 0 "
        "AND NOT a.attisdropped ORDER BY a.attnum",
        (sql_name(schema, table),),
    )


_DATETIME_OIDS = (1082, 1083, 1114, 1184, 1186)  # date, time, timestamp, timestamptz, interval


def snapshot_of(pg: PgCluster, db: str, schema: str, table: str, key: list[str]) -> tuple[list[str], str]:
    """Every row (repr of psycopg2's values, so NaN compares) in key order, and an md5 of the rows as text."""
    order = sql.SQL(", ").join(sql.Identifier(k) for k in key)
    name = sql.Identifier(schema, table)
    conn = pg.connect(db)
    try:
        # infinity dates and 178000000-year intervals do not fit Python's types: those come as text.
        as_text = psycopg2.extensions.new_type(_DATETIME_OIDS, "AS_TEXT", lambda value, _cur: value)
        psycopg2.extensions.register_type(as_text, conn)
        with conn.cursor() as cur:
            cur.execute(sql.SQL("SELECT * FROM {} ORDER BY {}").format(name, order))
            rows = cur.fetchall()
    finally:
        conn.close()
    digest = fetch(
        pg, db, sql.SQL("SELECT md5(string_agg(t::text, E'\\n' ORDER BY {})) FROM {} t").format(order, name)
    )[0][0]
    # bytea comes as a memoryview, whose repr is its address: compare its bytes.
    return [repr(tuple(bytes(v) if isinstance(v, memoryview) else v for v in r)) for r in rows], digest


@pytest.fixture
def formats(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The COPY format each table was loaded with."""
    used: dict[str, str] = {}
    real = pgsql.copy_in

    def spy(table_spec: Any, fmt: str, freeze: bool = False) -> Any:
        used[table_spec.plan.source] = fmt
        return real(table_spec, fmt, freeze)

    monkeypatch.setattr(pgsql, "copy_in", spy)
    return used


def test_round_trip_of_every_common_type_is_exact(pg: PgCluster, pg_db: str, target_db: str, formats) -> None:
    execute(pg, pg_db, ALL_TYPES_DDL)
    plans = [TablePlan("Shop", "Order", "Copy", "Order"), TablePlan("Shop", "select", "Copy", "select")]
    result = load(pg, pg_db, target_db, plans)
    assert result.status == "COMPLETED", result
    assert [t.rows_copied for t in result.tables] == [5, 4] and result.rows_copied == 9
    assert formats == {"Shop.Order": "binary", "Shop.select": "text"}
    for table, key in (("Order", ["Group", "select"]), ("select", ["Order", "Key"])):
        source_rows, source_md5 = snapshot_of(pg, pg_db, "Shop", table, key)
        target_rows, target_md5 = snapshot_of(pg, target_db, "Copy", table, key)
        assert target_rows == source_rows
        assert target_md5 == source_md5 and source_md5 is not None
        # Auto-create: types, NOT NULL and primary key (in key order) as in the source.
        assert columns(pg, target_db, "Copy", table) == columns(pg, pg_db, "Shop", table)
        assert primary_key(pg, target_db, "Copy", table) == primary_key(pg, pg_db, "Shop", table) == key
    labels = fetch(pg, target_db, 'SELECT enum_range(NULL::"Copy".mood)::text')[0][0]
    assert labels == '{sad,ok,"very \\"happy\\"",it\'s}'


def test_text_copy_round_trip_into_an_existing_table_with_other_types(
    pg: PgCluster, pg_db: str, target_db: str, formats
) -> None:
    execute(pg, pg_db, ALL_TYPES_DDL)
    # The target is made by hand, with other but compatible types: binary COPY would be refused.
    execute(pg, target_db, ALL_TYPES_DDL.split("INSERT INTO")[0].replace('"Shop"', '"Copy"'))
    execute(pg, target_db, 'ALTER TABLE "Copy"."Order" ALTER i4 TYPE bigint, ALTER "MixedCase" TYPE varchar(100)')
    result = load(pg, pg_db, target_db, [TablePlan("Shop", "Order", "Copy", "Order")], target_table_policy="append")
    assert result.status == "COMPLETED", result
    assert formats == {"Shop.Order": "text"}
    key = ["Group", "select"]
    assert snapshot_of(pg, target_db, "Copy", "Order", key) == snapshot_of(pg, pg_db, "Shop", "Order", key)


def test_plan_target_ddl_quotes_identifiers_and_creates_enums_once(pg: PgCluster, pg_db: str, target_db: str) -> None:
    execute(pg, pg_db, ALL_TYPES_DDL)
    plan = TablePlan("Shop", "Order", "Copy", "Order")
    ddl = plan_target_ddl(spec(pg, pg_db), spec(pg, target_db), plan)
    assert ddl[0] == 'CREATE SCHEMA IF NOT EXISTS "Copy"'
    assert ddl[1] == "CREATE TYPE \"Copy\".\"mood\" AS ENUM ('sad', 'ok', 'very \"happy\"', 'it''s')"
    assert ddl[2].startswith('CREATE TABLE "Copy"."Order" ("Group" integer NOT NULL, "select" text NOT NULL, ')
    assert '"n20" numeric(20,6), "n" numeric' in ddl[2] and '"m" "Copy"."mood"' in ddl[2]
    assert ddl[2].endswith('"MixedCase" text, PRIMARY KEY ("Group", "select"))')
    execute(pg, target_db, ";".join(ddl))  # what it says is what runs
    assert len(plan_target_ddl(spec(pg, pg_db), spec(pg, target_db), plan)) == 2  # the enum exists now


def test_compare_columns(pg: PgCluster, pg_db: str, target_db: str) -> None:
    execute(pg, pg_db, ALL_TYPES_DDL)
    src, tgt = PostgresConnector(spec(pg, pg_db)), PostgresConnector(spec(pg, target_db))
    source_detail = src.table_detail(pg_db, "Shop", "Order")
    missing = compare_columns(source_detail, None, "postgresql")
    assert missing["status"] == "missing" and missing["added"][:2] == ["Group", "select"]
    assert load(pg, pg_db, target_db, [TablePlan("Shop", "Order", "Copy", "Order")]).status == "COMPLETED"
    same = compare_columns(source_detail, tgt.table_detail(target_db, "Copy", "Order"), "postgresql")
    assert same == {"status": "same", "added": [], "removed": [], "changed": []}
    execute(pg, target_db, 'ALTER TABLE "Copy"."Order" ALTER i4 TYPE bigint, DROP COLUMN t, ADD COLUMN extra int')
    diff = compare_columns(source_detail, tgt.table_detail(target_db, "Copy", "Order"), "postgresql")
    assert diff["status"] == "different" and diff["added"] == ["t"] and diff["removed"] == ["extra"]
    assert diff["changed"] == [{"name": "i4", "source_type": "integer", "target_type": "bigint"}]


# ---------------------------------------------------------------------------------------------
# Target policies

ITEMS_DDL = """
CREATE TABLE public.items (id integer PRIMARY KEY, name text NOT NULL);
INSERT INTO public.items SELECT g, 'item ' || g FROM generate_series(1, 100) g;
CREATE TABLE public.log (v text);
INSERT INTO public.log SELECT 'line ' || g FROM generate_series(1, 30) g;
"""
ITEMS = TablePlan("public", "items", "copy", "items")
LOG = TablePlan("public", "log", "copy", "log")


@pytest.fixture
def items(pg: PgCluster, pg_db: str) -> str:
    execute(pg, pg_db, ITEMS_DDL)
    return pg_db


def test_policy_fail_refuses_a_non_empty_target_and_leaves_it_untouched(
    pg: PgCluster, items: str, target_db: str
) -> None:
    assert load(pg, items, target_db, [ITEMS]).status == "COMPLETED"
    execute(pg, target_db, "UPDATE copy.items SET name = 'changed' WHERE id = 1")
    result = load(pg, items, target_db, [ITEMS], target_table_policy="fail")
    assert result.status == "FAILED" and result.rows_failed_tables == 1 and result.rows_copied == 0
    assert result.tables[0].error == (
        "target table copy.items is not empty (100 rows); choose truncate, append or drop_recreate"
    )
    assert fetch(pg, target_db, "SELECT count(*), min(name) FROM copy.items") == [(100, "changed")]


def test_policy_fail_loads_into_an_empty_existing_table(pg: PgCluster, items: str, target_db: str) -> None:
    execute(pg, target_db, "CREATE SCHEMA copy; CREATE TABLE copy.items (id integer PRIMARY KEY, name text)")
    assert load(pg, items, target_db, [ITEMS], target_table_policy="fail").status == "COMPLETED"
    assert count(pg, target_db, "copy", "items") == 100


def test_policy_truncate_replaces_the_rows(pg: PgCluster, items: str, target_db: str) -> None:
    assert load(pg, items, target_db, [ITEMS]).status == "COMPLETED"
    execute(pg, target_db, "INSERT INTO copy.items VALUES (1000, 'extra'); UPDATE copy.items SET name = 'x'")
    result = load(pg, items, target_db, [ITEMS], target_table_policy="truncate")
    assert result.status == "COMPLETED" and result.tables[0].rows_copied == 100
    assert fetch(pg, target_db, "SELECT count(*), max(id), min(name) FROM copy.items") == [(100, 100, "item 1")]


def test_policy_append_adds_the_rows_again(pg: PgCluster, items: str, target_db: str) -> None:
    assert load(pg, items, target_db, [LOG]).status == "COMPLETED"
    assert load(pg, items, target_db, [LOG], target_table_policy="append").status == "COMPLETED"
    assert count(pg, target_db, "copy", "log") == 60


def test_policy_drop_recreate_replaces_changed_columns(pg: PgCluster, items: str, target_db: str) -> None:
    execute(
        pg,
        target_db,
        "CREATE SCHEMA copy; CREATE TABLE copy.items (id text, other int); INSERT INTO copy.items VALUES ('old', 1)",
    )
    result = load(pg, items, target_db, [ITEMS], target_table_policy="drop_recreate")
    assert result.status == "COMPLETED"
    assert columns(pg, target_db, "copy", "items") == columns(pg, items, "public", "items")
    assert primary_key(pg, target_db, "copy", "items") == ["id"]
    assert count(pg, target_db, "copy", "items") == 100


def test_policy_drop_recreate_reports_dependents_instead_of_cascading(
    pg: PgCluster, items: str, target_db: str
) -> None:
    assert load(pg, items, target_db, [ITEMS]).status == "COMPLETED"
    execute(pg, target_db, "CREATE VIEW copy.items_view AS SELECT * FROM copy.items")
    result = load(pg, items, target_db, [ITEMS], target_table_policy="drop_recreate")
    assert result.status == "FAILED"
    error = result.tables[0].error or ""
    assert error.startswith("cannot drop target table copy.items: other objects depend on it")
    assert "items_view" in error
    assert count(pg, target_db, "copy", "items_view") == 100


def test_missing_target_with_auto_create_off_fails_clearly(pg: PgCluster, items: str, target_db: str) -> None:
    result = load(pg, items, target_db, [ITEMS], auto_create=False)
    assert result.status == "FAILED"
    assert result.tables[0].error == (
        "target table copy.items does not exist and auto-create is off; create it or turn auto-create on"
    )
    assert fetch(pg, target_db, "SELECT count(*) FROM pg_namespace WHERE nspname = 'copy'") == [(0,)]


def test_unknown_policy_is_refused(pg: PgCluster, items: str, target_db: str) -> None:
    from core.errors import ValidationFailed

    with pytest.raises(ValidationFailed, match="target_table_policy"):
        load(pg, items, target_db, [ITEMS], target_table_policy="merge")


# ---------------------------------------------------------------------------------------------
# Failures next to successes


def test_a_failing_table_does_not_hide_the_others(pg: PgCluster, pg_db: str, target_db: str) -> None:
    execute(
        pg,
        pg_db,
        """
        CREATE TABLE a (id int PRIMARY KEY, v int); INSERT INTO a SELECT g, g FROM generate_series(1, 100) g;
        CREATE TABLE b (id int PRIMARY KEY, v int); INSERT INTO b SELECT g, g FROM generate_series(1, 100) g;
        CREATE TABLE c (id int PRIMARY KEY, v int); INSERT INTO c SELECT g, g FROM generate_series(1, 100) g;
        CREATE TYPE address AS (street text, city text);
        CREATE TABLE shapes (id int PRIMARY KEY, addr address);
    """,
    )
    execute(pg, target_db, "CREATE SCHEMA copy; CREATE TABLE copy.b (id int PRIMARY KEY, v int CHECK (v < 50))")
    plans = [TablePlan("public", t, "copy", t) for t in ("a", "b", "c", "shapes")]
    result = load(pg, pg_db, target_db, plans, target_table_policy="append")
    tables = by_source(result)
    assert result.status == "FAILED" and result.rows_failed_tables == 2
    assert tables["public.a"].status == tables["public.c"].status == "COMPLETED"
    assert result.rows_copied == 200
    assert tables["public.b"].status == "FAILED"
    assert 'violates check constraint "b_v_check"' in (tables["public.b"].error or "")
    assert count(pg, target_db, "copy", "b") == 0
    assert tables["public.shapes"].status == "FAILED"
    assert "public.shapes.addr" in (tables["public.shapes"].error or "")
    assert "'address'" in (tables["public.shapes"].error or "")
    assert not exists(pg, target_db, "copy", "shapes")


def test_a_missing_source_table_fails_on_that_table(pg: PgCluster, items: str, target_db: str) -> None:
    result = load(pg, items, target_db, [ITEMS, TablePlan("public", "nope", "copy", "nope")])
    tables = by_source(result)
    assert tables["public.items"].status == "COMPLETED"
    assert tables["public.nope"].error == f"source table public.nope does not exist in database {items}"


def test_an_unreachable_target_fails_every_table(pg: PgCluster, items: str) -> None:
    result = load(pg, items, "no_such_db", [ITEMS, LOG])
    assert result.status == "FAILED" and result.rows_failed_tables == 2
    assert all("no_such_db" in (t.error or "") for t in result.tables)


# ---------------------------------------------------------------------------------------------
# Cancel, progress, snapshots, order


def load_connections(pg: PgCluster) -> int:
    return fetch(
        pg, "postgres", "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (APPLICATION_NAME,)
    )[0][0]


def test_stop_during_a_load_rolls_back_and_returns_quickly(pg: PgCluster, pg_db: str, target_db: str) -> None:
    execute(
        pg,
        pg_db,
        "CREATE TABLE big (id bigint PRIMARY KEY, v int); "
        "INSERT INTO big SELECT g, g FROM generate_series(1, 3000000) g; ANALYZE big",
    )
    cancel = threading.Event()
    cancelled_at: list[float] = []

    def on_progress(p: TableProgress) -> None:
        if p.status == "RUNNING" and p.rows_copied > 0 and not cancel.is_set():
            cancelled_at.append(time.monotonic())
            cancel.set()

    result = load(
        pg, pg_db, target_db, [TablePlan("public", "big", "copy", "big")], cancel=cancel, on_progress=on_progress
    )
    returned = time.monotonic()
    assert cancelled_at, "no progress with rows_copied > 0 arrived before the load ended"
    assert returned - cancelled_at[0] < 5
    assert result.status == "CANCELLED" and result.tables[0].status == "CANCELLED" and result.rows_copied == 0
    assert not exists(pg, target_db, "copy", "big")  # created in the load's transaction: rolled back
    deadline = time.monotonic() + 5
    while load_connections(pg) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert load_connections(pg) == 0


def test_stop_cancels_waiting_tables_and_rolls_back_a_truncate(pg: PgCluster, pg_db: str, target_db: str) -> None:
    execute(
        pg,
        pg_db,
        "CREATE TABLE big (id bigint, v int); "
        "INSERT INTO big SELECT g, g FROM generate_series(1, 2000000) g; ANALYZE big; "
        "CREATE TABLE small (id int); INSERT INTO small VALUES (1)",
    )
    execute(
        pg,
        target_db,
        "CREATE SCHEMA copy; CREATE TABLE copy.big (id bigint, v int); INSERT INTO copy.big VALUES (-1, -1)",
    )
    cancel = threading.Event()
    events: list[TableProgress] = []

    def on_progress(p: TableProgress) -> None:
        events.append(p)
        if p.status == "RUNNING" and p.source == "public.big":  # at its start: the copy is still to come
            cancel.set()

    plans = [TablePlan("public", "big", "copy", "big"), TablePlan("public", "small", "copy", "small")]
    result = load(
        pg,
        pg_db,
        target_db,
        plans,
        cancel=cancel,
        on_progress=on_progress,
        target_table_policy="truncate",
        parallelism=1,
    )
    assert result.status == "CANCELLED"
    assert [t.status for t in result.tables] == ["CANCELLED", "CANCELLED"]
    assert fetch(pg, target_db, "SELECT * FROM copy.big") == [(-1, -1)]
    assert not any(e.source == "public.small" and e.status == "RUNNING" for e in events)


def test_progress_is_monotonic_and_ends_exact(
    pg: PgCluster, pg_db: str, target_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "PROGRESS_INTERVAL_S", 0.02)
    execute(
        pg,
        pg_db,
        "CREATE TABLE t (id int PRIMARY KEY, pad text); "
        "INSERT INTO t SELECT g, repeat('x', 50) FROM generate_series(1, 600000) g; ANALYZE t; "
        "CREATE TABLE u (id int); INSERT INTO u SELECT generate_series(1, 1234)",
    )
    events: list[TableProgress] = []
    plans = [TablePlan("public", "t", "copy", "t"), TablePlan("public", "u", "copy", "u")]
    result = load(pg, pg_db, target_db, plans, events)
    assert result.status == "COMPLETED"
    for table, exact in (("public.t", 600000), ("public.u", 1234)):
        mine = [e for e in events if e.source == table]
        assert [e.status for e in mine][:2] == ["PENDING", "RUNNING"] and mine[-1].status == "COMPLETED"
        rows = [e.rows_copied for e in mine]
        assert rows == sorted(rows) and rows[-1] == exact == mine[-1].rows_expected
        assert all(e.rows_copied <= e.rows_expected for e in mine if e.status == "RUNNING")
        assert mine[-1].started_at and mine[-1].finished_at and mine[-1].rows_per_second > 0
    during = [e.rows_copied for e in events if e.source == "public.t" and e.status == "RUNNING"]
    assert any(0 < r < 600000 for r in during), during


def test_snapshot_id_loads_exactly_the_snapshot(pg: PgCluster, pg_db: str, target_db: str) -> None:
    execute(pg, pg_db, "CREATE TABLE s (id int PRIMARY KEY); INSERT INTO s SELECT generate_series(1, 100)")
    holder = pg.connect(pg_db, autocommit=False)
    try:
        holder.set_session(isolation_level="REPEATABLE READ")
        with holder.cursor() as cur:
            cur.execute("SELECT pg_export_snapshot()")
            snapshot = cur.fetchone()[0]
        execute(pg, pg_db, "INSERT INTO s SELECT generate_series(101, 150); DELETE FROM s WHERE id <= 10")
        result = load(pg, pg_db, target_db, [TablePlan("public", "s", "copy", "s")], snapshot_id=snapshot)
    finally:
        holder.close()
    assert result.status == "COMPLETED" and result.rows_copied == 100
    assert fetch(pg, target_db, "SELECT min(id), max(id), count(*) FROM copy.s") == [(1, 100, 100)]


def test_a_bad_snapshot_id_fails_with_the_server_reason(pg: PgCluster, items: str, target_db: str) -> None:
    result = load(pg, items, target_db, [ITEMS], snapshot_id="00000003-0000001B-1")
    assert result.status == "FAILED" and "snapshot" in (result.tables[0].error or "")


def test_parents_load_before_children(pg: PgCluster, pg_db: str, target_db: str) -> None:
    execute(
        pg,
        pg_db,
        """
        CREATE TABLE "Parent" (id int PRIMARY KEY);
        CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES "Parent");
        CREATE TABLE grandchild (id int PRIMARY KEY, child_id int REFERENCES child);
        CREATE TABLE solo (id int);
        INSERT INTO "Parent" VALUES (1); INSERT INTO child VALUES (1, 1); INSERT INTO grandchild VALUES (1, 1);
    """,
    )
    plans = [TablePlan("public", t, "copy", t) for t in ("grandchild", "child", "solo", "Parent")]
    for parallelism in (1, 4):
        events: list[TableProgress] = []
        result = load(pg, pg_db, target_db, plans, events, parallelism=parallelism, target_table_policy="truncate")
        assert result.status == "COMPLETED"
        started = list(dict.fromkeys(e.source for e in events if e.status == "RUNNING"))
        assert started.index("public.Parent") < started.index("public.child") < started.index("public.grandchild")
        tables = by_source(result)
        assert tables["public.child"].started_at >= tables["public.Parent"].finished_at
        assert tables["public.grandchild"].started_at >= tables["public.child"].finished_at
    assert [t.source for t in result.tables] == [p.source for p in plans]  # result in the caller's order


# ---------------------------------------------------------------------------------------------
# SQL Server: the pure helpers, and both directions through a fake pyodbc connection


def test_copy_text_values() -> None:
    assert mssql.copy_text_value(None) == "\\N"
    assert mssql.copy_text_value("a\tb\nc\\d\re") == "a\\tb\\nc\\\\d\\re"
    assert mssql.copy_text_value("\\N") == "\\\\N"
    assert (mssql.copy_text_value(True), mssql.copy_text_value(False)) == ("t", "f")
    assert mssql.copy_text_value(-9223372036854775808) == "-9223372036854775808"
    assert mssql.copy_text_value(float("nan")) == "NaN" and mssql.copy_text_value(float("-inf")) == "-Infinity"
    assert mssql.copy_text_value(Decimal("-12.3400")) == "-12.3400"
    assert mssql.copy_text_value(b"\x00\xff") == "\\\\x00ff"
    assert mssql.copy_text_value(datetime(2024, 2, 29, 1, 2, 3, 4)) == "2024-02-29 01:02:03.000004"
    assert mssql.copy_text_value(dtime(23, 59, 59, 999999)) == "23:59:59.999999"
    assert mssql.copy_text_value(UUID(int=1)) == "00000000-0000-0000-0000-000000000001"
    assert mssql.encode_copy_rows([(1, None, "x"), (2, "é", b"")]) == "1\t\\N\tx\n2\té\t\\\\x\n".encode()


ODD_ROWS = [
    (
        1,
        "tab\there\nnew\\line 'q' \"dq\" \U0001f600 漢字\r",
        b"\x00\\\xff",
        True,
        Decimal("-12.3400"),
        1.5,
        datetime(2024, 2, 29, 12, 34, 56, 789012),
        datetime(2024, 2, 29, 12, 34, 56, 789012, tzinfo=UTC),
        date(1, 1, 1),
        dtime(0, 0),
        "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
        "\\N",
    ),
    (2, "", b"", False, Decimal("0"), float("inf"), None, None, None, None, None, ""),
    (3, None, None, None, None, None, None, None, None, None, None, None),
]
ODD_COLUMNS = (
    "id int, t text, b bytea, f boolean, n numeric, d double precision, ts timestamp, tstz timestamptz, "
    "dt date, tm time, u uuid, s text"
)


def test_encoded_rows_load_exactly_through_postgresql_copy(pg: PgCluster, pg_db: str) -> None:
    execute(pg, pg_db, f"CREATE TABLE odd ({ODD_COLUMNS})")
    conn = pg.connect(pg_db)
    try:
        with conn.cursor() as cur:
            cur.copy_expert("COPY odd FROM STDIN", io.BytesIO(mssql.encode_copy_rows(ODD_ROWS)))
            cur.execute("SET TimeZone = 'UTC'; SELECT * FROM odd ORDER BY id")
            got = cur.fetchall()
    finally:
        conn.close()
    expected = [tuple(bytes(v) if isinstance(v, bytes) else v for v in row) for row in ODD_ROWS]
    expected[0] = (*expected[0][:10], expected[0][10].lower(), expected[0][11])
    assert [tuple(v.tobytes() if isinstance(v, memoryview) else v for v in row) for row in got] == expected


def test_datetimeoffset_converter() -> None:
    raw = struct.pack("<6hI2h", 2024, 2, 29, 12, 34, 56, 789012300, -5, -30)
    assert mssql.datetimeoffset_from_bytes(raw) == datetime(
        2024, 2, 29, 12, 34, 56, 789012, tzinfo=timezone(-timedelta(hours=5, minutes=30))
    )
    assert mssql.datetimeoffset_from_bytes(None) is None


def test_statements_quote_every_identifier_in_brackets() -> None:
    assert mssql.insert_statement("dbo", "Order]x", ["select", "a b"]) == (
        "INSERT INTO [dbo].[Order]]x] ([select], [a b]) VALUES (?, ?)"
    )
    assert mssql.select_statement("Sales", "Group", ["Key", "from"]) == "SELECT [Key], [from] FROM [Sales].[Group]"
    assert mssql.create_schema_statement("it's") == ("IF SCHEMA_ID(N'it''s') IS NULL EXEC(N'CREATE SCHEMA [it''s]')")
    plan = TablePlan("public", "Order", "Sales", "Order")
    columns = [
        ("Group", "integer", True, None),
        ("select", "character varying(20)", True, None),
        ("amount", "numeric(12,2)", False, None),
        ("doc", "jsonb", False, None),
    ]
    table_spec = TableSpec(
        plan=plan, columns=map_columns(plan, columns, "postgresql", "sqlserver"), primary_key=["select", "Group"]
    )
    assert mssql.create_table_statement(table_spec) == (
        "CREATE TABLE [Sales].[Order] ([Group] int NOT NULL, [select] nvarchar(20) NOT NULL, "
        "[amount] decimal(12,2) NULL, [doc] nvarchar(max) NULL, PRIMARY KEY ([select], [Group]))"
    )


def test_parameters_for_fast_executemany() -> None:
    aware = datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=2)))
    assert mssql.to_params([(memoryview(b"\x00\x01"), aware, Decimal("1.5"), None, "x")]) == [
        (b"\x00\x01", "2024-01-02T03:04:05.000006+02:00", Decimal("1.5"), None, "x")
    ]


class FakeOdbcCursor:
    def __init__(self, conn: FakeOdbc) -> None:
        self.conn = self.connection = conn
        self.fast_executemany = False
        self._result: list[tuple] = []

    def execute(self, statement: str, *params: Any) -> FakeOdbcCursor:
        self.conn.executed.append(statement)
        self._result = self.conn.answer(statement)
        return self

    def fetchone(self) -> tuple | None:
        return self._result[0] if self._result else None

    def fetchmany(self, n: int) -> list[tuple]:
        batch, self._result = self._result[:n], self._result[n:]
        return batch

    def executemany(self, statement: str, rows: list[tuple]) -> None:
        assert self.fast_executemany
        self.conn.inserted.append((statement, list(rows)))

    def cancel(self) -> None:
        pass

    def close(self) -> None:
        pass


class FakeOdbc:
    """A pyodbc connection: answers SELECTs with `rows`, the existence check with `exists`, counts with `count`."""

    def __init__(self, rows: list[tuple] = (), exists: int | None = None, count: int = 0) -> None:
        self.rows, self.exists, self.count = list(rows), exists, count
        self.executed: list[str] = []
        self.inserted: list[tuple[str, list[tuple]]] = []
        self.commits = 0

    def answer(self, statement: str) -> list[tuple]:
        if statement.startswith("SELECT OBJECT_ID"):
            return [(self.exists,)]
        if statement.startswith("SELECT COUNT_BIG"):
            return [(self.count,)]
        return list(self.rows) if statement.startswith("SELECT ") else []

    def cursor(self) -> FakeOdbcCursor:
        return FakeOdbcCursor(self)

    def commit(self) -> None:
        self.commits += 1

    def close(self) -> None:
        pass


def mssql_spec(db: str = "sales") -> ConnectionSpec:
    return ConnectionSpec(kind="sqlserver", host="mssql.invalid", port=1433, database=db, username="sa", password="pw")


def test_sqlserver_to_postgresql_through_copy(pg: PgCluster, target_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    types = [
        "int",
        "nvarchar(max)",
        "varbinary(max)",
        "bit",
        "decimal(12,4)",
        "float",
        "datetime2(7)",
        "datetimeoffset(7)",
        "date",
        "time(7)",
        "uniqueidentifier",
        "nvarchar(20)",
    ]
    names = ["id", "t", "b", "f", "n", "d", "ts", "tstz", "dt", "tm", "u", "s"]
    cols = [ColumnInfo(name=n, type=t, nullable=n != "id") for n, t in zip(names, types, strict=True)]
    detail = TableDetail(
        schema="dbo",
        name="Order",
        columns=cols,
        primary_key=["id"],
        foreign_keys=[],
        referenced_by=[],
        indexes=[],
        row_count=3,
    )
    monkeypatch.setattr(SqlServerConnector, "table_detail", lambda self, db, schema, table: detail)
    source = FakeOdbc(rows=ODD_ROWS)
    monkeypatch.setattr(mssql, "connect", lambda spec, autocommit: source)
    events: list[TableProgress] = []
    result = run_full_load(
        mssql_spec(),
        spec(pg, target_db),
        [TablePlan("dbo", "Order", "Sales", "Order")],
        LoadOptions(),
        events.append,
        threading.Event(),
    )
    assert result.status == "COMPLETED" and result.rows_copied == 3, result
    assert source.executed == [
        "SELECT [id], [t], [b], [f], [n], [d], [ts], [tstz], [dt], [tm], [u], [s] FROM [dbo].[Order]"
    ]
    got = fetch(pg, target_db, 'SELECT * FROM "Sales"."Order" ORDER BY id')
    assert [tuple(v.tobytes() if isinstance(v, memoryview) else v for v in row) for row in got][1:] == [
        (2, "", b"", False, Decimal("0.0000"), float("inf"), None, None, None, None, None, ""),
        (3, None, None, None, None, None, None, None, None, None, None, None),
    ]
    first = got[0]
    assert first[1] == ODD_ROWS[0][1] and first[2].tobytes() == ODD_ROWS[0][2] and first[4] == Decimal("-12.3400")
    assert first[6:10] == ODD_ROWS[0][6:10] and first[10] == ODD_ROWS[0][10].lower() and first[11] == "\\N"
    assert [r[1] for r in columns(pg, target_db, "Sales", "Order")] == [
        "int4",
        "text",
        "bytea",
        "bool",
        "numeric",
        "float8",
        "timestamp",
        "timestamptz",
        "date",
        "time",
        "uuid",
        "varchar",
    ]
    assert primary_key(pg, target_db, "Sales", "Order") == ["id"]
    assert events[-1].rows_expected == 3


def test_postgresql_to_sqlserver_with_fast_executemany(
    pg: PgCluster, pg_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    execute(
        pg,
        pg_db,
        """
        CREATE TYPE mood AS ENUM ('sad', 'ok');
        CREATE TABLE "Order" ("Group" int PRIMARY KEY, doc jsonb, arr int[], b bytea, ts timestamptz,
                              n numeric(10,2), t text, m mood);
        INSERT INTO "Order" VALUES (1, '{"a": 1}', '{1,NULL}', '\\x0001', '2024-01-02 03:04:05.000006+00',
                                    1.5, E'x\\ty', 'ok'),
                                   (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
    """,
    )
    target = FakeOdbc(exists=None)
    monkeypatch.setattr(mssql, "connect", lambda spec, autocommit: target)
    result = run_full_load(
        spec(pg, pg_db),
        mssql_spec(),
        [TablePlan("public", "Order", "dbo", "Order")],
        LoadOptions(),
        lambda p: None,
        threading.Event(),
    )
    assert result.status == "COMPLETED" and result.rows_copied == 2, result
    assert target.executed[0] == "IF SCHEMA_ID(N'dbo') IS NULL EXEC(N'CREATE SCHEMA [dbo]')"
    assert target.executed[2] == (
        "CREATE TABLE [dbo].[Order] ([Group] int NOT NULL, [doc] nvarchar(max) NULL, [arr] nvarchar(max) NULL, "
        "[b] varbinary(max) NULL, [ts] datetimeoffset(6) NULL, [n] decimal(10,2) NULL, [t] nvarchar(max) NULL, "
        "[m] nvarchar(64) NULL, PRIMARY KEY ([Group]))"
    )
    assert target.inserted == [
        (
            "INSERT INTO [dbo].[Order] ([Group], [doc], [arr], [b], [ts], [n], [t], [m]) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    1,
                    '{"a": 1}',
                    "{1,NULL}",
                    b"\x00\x01",
                    "2024-01-02T03:04:05.000006+00:00",
                    Decimal("1.50"),
                    "x\ty",
                    "ok",
                ),
                (2, None, None, None, None, None, None, None),
            ],
        )
    ]
    assert target.commits == 1


def test_postgresql_to_sqlserver_policy_fail(pg: PgCluster, items: str, monkeypatch: pytest.MonkeyPatch) -> None:
    target = FakeOdbc(exists=1234, count=7)
    monkeypatch.setattr(mssql, "connect", lambda spec, autocommit: target)
    result = run_full_load(
        spec(pg, items),
        mssql_spec(),
        [TablePlan("public", "items", "dbo", "items")],
        LoadOptions(),
        lambda p: None,
        threading.Event(),
    )
    assert result.status == "FAILED"
    assert result.tables[0].error == (
        "target table dbo.items is not empty (7 rows); choose truncate, append or drop_recreate"
    )
    assert target.inserted == [] and target.commits == 0


def test_partitioned_source_table_loads_through_select(pg: PgCluster, pg_db: str, target_db: str) -> None:
    execute(
        pg,
        pg_db,
        """
        CREATE TABLE m (id int, region text, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
        CREATE TABLE m_eu PARTITION OF m FOR VALUES IN ('eu');
        CREATE TABLE m_us PARTITION OF m FOR VALUES IN ('us');
        INSERT INTO m SELECT g, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END FROM generate_series(1, 1000) g;
    """,
    )
    events: list[TableProgress] = []
    result = load(pg, pg_db, target_db, [TablePlan("public", "m", "copy", "m")], events)
    assert result.status == "COMPLETED" and result.rows_copied == 1000
    assert fetch(pg, target_db, "SELECT count(*), count(DISTINCT region) FROM copy.m") == [(1000, 2)]
    assert primary_key(pg, target_db, "copy", "m") == ["id", "region"]
    assert max(e.rows_expected for e in events if e.status == "RUNNING") == 1000


def test_a_table_is_never_copied_onto_itself(pg: PgCluster, items: str) -> None:
    result = load(pg, items, items, [TablePlan("public", "items", "public", "items"), LOG])
    tables = by_source(result)
    assert tables["public.items"].error == ("source and target are the same table (public.items); pick another target")
    assert tables["public.log"].status == "COMPLETED" and count(pg, items, "public", "items") == 100
