"""The embedded engine's SQL Server path end to end, against a REAL PostgreSQL target.

A CdcWorker runs in a thread as the runner runs it. Only SQL Server is faked, at the pyodbc
boundary: one scripted server (the CDC fake of test_mssql_cdc, plus the catalog views, the CDC
checks and the full load's SELECT) answers every session the code opens (the one seam,
`core.connectors.sqlserver.odbc_connect`). Everything else is the real code:
check -> max LSN -> auto-create DDL or full load -> PgApplier -> MssqlCdcStream -> the worker's loop,
and the rows and the `cdc_studio.offsets` row are read back from PostgreSQL.

LSNs are 80-bit numbers above 2**64, so the offset must survive as numeric.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from core.cdc import mssql_source as ms
from core.cdc import prepare
from core.cdc.engine import CdcFailed, CdcWorker
from core.connectors import sqlserver as sqlserver_connector
from core.connectors.base import ConnectionSpec
from core.fullload import TablePlan
from core.fullload import mssql as fullload_mssql
from core.plans import CdcPlan
from tests.core.cdc.test_mssql_source import T0, FakeConnection, FakeCursor, FakeServer, crow
from tests.pgcluster import PgCluster
from tests.workerthread import Recorded, running, wait_for

SOURCE = ConnectionSpec(
    kind="sqlserver", host="mssql.invalid", port=1433, database="Shop", username="sa", password="pw"
)


def lsn(vlf: int, block: int, slot: int) -> int:
    """An LSN from its three parts (VLF sequence, log block, slot), as SQL Server prints them."""
    return (vlf << 48) | (block << 16) | slot


VLF = 0x12345  # every LSN below is above 2**64
assert lsn(VLF, 0, 0) > 2**64
CAPTURE_START = lsn(VLF, 0x1, 0)
P = lsn(VLF, 0x10, 1)  # committed before the worker starts
A = lsn(VLF, 0x20, 4)
B = lsn(VLF + 1, 0x1, 2)  # a later VLF: compares above A although its lower parts are smaller
C = lsn(VLF + 1, 0x30, 1)

# sys.columns of dbo.orders: name, type, max_length (bytes), precision, scale, nullable
ORDERS_COLUMNS = [
    ("id", "int", 4, 10, 0, False),
    ("counter", "int", 4, 10, 0, False),
    ("name", "nvarchar", 100, 0, 0, True),
    ("amount", "decimal", 9, 18, 4, True),
    ("created", "datetime2", 8, 26, 6, True),
    ("paid", "bit", 1, 1, 0, True),
    ("token", "uniqueidentifier", 16, 0, 0, True),
    ("blob", "varbinary", -1, 0, 0, True),
    ("seen", "datetimeoffset", 10, 34, 7, True),
]
LINES_COLUMNS = [
    ("order_id", "int", 4, 10, 0, False),
    ("line", "int", 4, 10, 0, False),
    ("qty", "int", 4, 10, 0, True),
]
ORDERS_TARGET_TYPES = [
    ("id", "integer"),
    ("counter", "integer"),
    ("name", "character varying(50)"),
    ("amount", "numeric(18,4)"),
    ("created", "timestamp(6) without time zone"),
    ("paid", "boolean"),
    ("token", "uuid"),
    ("blob", "bytea"),
    ("seen", "timestamp(6) with time zone"),
]
PLANS = [TablePlan("dbo", "orders", "sales", "orders"), TablePlan("dbo", "lines", "sales", "lines")]
LINES_DDL = "CREATE TABLE sales.lines (order_id integer, line integer, qty integer, PRIMARY KEY (order_id, line))"

IST = timezone(timedelta(hours=5, minutes=30))
# Values as pyodbc hands them over: datetime, Decimal, bytes, uuid as upper-case text (or UUID), bool.
ROW1 = (
    1,
    1,
    "first 'quoted'\ttab\nnew line \\ back ünï €",
    Decimal("12345678901234.5678"),
    datetime(2024, 2, 29, 23, 59, 59, 999999),
    True,
    "6F9619FF-8B86-D011-B42D-00C04FC964FF",
    b"\x00\xff\x10\\ab\t\n",
    datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=IST),
)
ROW2 = (
    2,
    1,
    None,
    Decimal("-0.0001"),
    datetime(1, 1, 1),
    False,
    uuid.UUID("0e984725-c51c-4bf4-9960-e1c80e27aba0"),
    b"",
    None,
)
ROW3 = (
    3,
    1,
    "three",
    Decimal("0.0000"),
    datetime(2023, 12, 31, 23, 0),
    None,
    None,
    None,
    datetime(2000, 1, 1, tzinfo=UTC),
)
ROW99 = (99, 1, "before the start", Decimal("1.0000"), None, None, None, None, None)
ROW1_V2 = (
    1,
    2,
    "renamed",
    Decimal("-98765432109876.5432"),
    datetime(2024, 3, 1, 0, 0, 0, 1),
    False,
    "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
    b"\x01\x02",
    datetime(2024, 6, 30, 22, 0, tzinfo=UTC),
)
ROW20 = (20, 2, "moved key") + ROW2[3:]
ROW1_V3 = (1, 3) + ROW1_V2[2:]
ROW30 = (30, 1, "after the restart", Decimal("7.5000"), datetime(2024, 7, 1), True, None, b"\xde\xad", None)

INSERT, DELETE, BEFORE, AFTER = ms.OP_INSERT, ms.OP_DELETE, ms.OP_UPDATE_BEFORE, ms.OP_UPDATE_AFTER


# --------------------------------------------------------------------------------------------
# The fake SQL Server


@dataclass
class Table:
    object_id: int
    columns: list[tuple[str, str, int, int, int, bool]]
    key: list[str]
    rows: list[tuple[Any, ...]] = field(default_factory=list)  # what the full load's SELECT returns


class Cursor(FakeCursor):
    def fetchmany(self, size: int) -> list[tuple[Any, ...]]:
        out, self.rows = self.rows[:size], self.rows[size:]
        return out

    def cancel(self) -> None:
        pass


class Connection(FakeConnection):
    def cursor(self) -> Cursor:
        return Cursor(self)


class FakeMssql(FakeServer):
    """FakeServer's CDC functions plus the catalog, the CDC checks and the full load's SELECT.

    Thread-safe (the worker, the full load's pool and the test thread all use it); every statement
    is logged in order in `log`, so a test can tell what was asked before what.
    """

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.RLock()
        self.log: list[tuple[str, tuple[Any, ...]]] = []
        self.catalog: dict[tuple[str, str], Table] = {}
        self.db_cdc_enabled = True
        self.untracked: set[tuple[str, str]] = set()
        self.agent = (4, "Running")
        self.on_sql: Callable[[str], None] | None = None  # runs before each statement is answered
        self.on_select: Callable[[tuple[str, str]], None] | None = None  # runs when the full load read a table

    def table(
        self, schema: str, name: str, columns: list[tuple[str, str, int, int, int, bool]], key: list[str]
    ) -> Table:
        self.catalog[(schema, name)] = Table(1000 + len(self.catalog), columns, key)
        self.add(schema, name, f"{schema}_{name}", CAPTURE_START, [(c[0], c[1]) for c in columns])
        return self.catalog[(schema, name)]

    def commit(self, lsn: int, *changes: tuple[str, int, int, tuple[Any, ...]]) -> None:
        """One transaction at `lsn` (FakeServer's commit, whose commit time cannot take 80-bit LSNs)."""
        with self.lock:
            for name, seq, op, values in changes:
                self.changes[name].append(crow(lsn, seq, op, *values))
            self.local_times[lsn] = T0 + timedelta(seconds=len(self.local_times))
            self.max_lsn = max(self.max_lsn, lsn)

    def connect(self) -> Connection:
        return Connection(self.respond)

    def calls(self, fragment: str) -> list[tuple[Any, ...]]:
        with self.lock:
            return [params for sql, params in self.log if fragment in sql]

    def change_bounds(self) -> list[tuple[int, int]]:
        """(from, to) of every change-function query, in order."""
        bounds = []
        for params in self.calls("fn_cdc_get_all_changes_"):
            lo, hi = params[-2:]
            bounds.append((ms.lsn_to_int(lo), ms.lsn_to_int(hi)))
        return bounds

    def _by_id(self, object_id: int) -> Table:
        return next(t for t in self.catalog.values() if t.object_id == object_id)

    def respond(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with self.lock:
            self.log.append((sql, params))
            if self.on_sql is not None:
                self.on_sql(sql)
            return self._answer(sql, params)

    def _answer(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        for answer in (self._cdc_answer, self._catalog_answer, self._select_answer):
            found = answer(sql, params)
            if found is not None:
                return found
        return super().respond(sql, params)

    def _cdc_answer(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]] | None:
        if sql == ms.DB_ENABLED_SQL:
            return [(SOURCE.database, self.db_cdc_enabled)]
        if sql == ms.TABLE_TRACKED_SQL:
            return [(params not in self.untracked,)] if params in self.catalog else []
        if sql == ms.AGENT_SQL:
            return [self.agent]
        return None

    def _catalog_answer(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]] | None:
        s = sqlserver_connector
        if sql == s.TABLE_ID_SQL:
            return [(self.catalog[params].object_id,)] if params in self.catalog else []
        if sql == s.SCHEMA_EXISTS_SQL:
            return [(1,)] if any(schema == params[0] for schema, _ in self.catalog) else []
        if sql == s.COLUMNS_SQL:
            cols = self._by_id(params[0]).columns
            return [
                (n, t, length, p, sc, nullable, None, i + 1) for i, (n, t, length, p, sc, nullable) in enumerate(cols)
            ]
        if sql == s.INDEXES_SQL:
            table = self._by_id(params[0])
            return [("PK_x", True, True, column) for column in table.key]
        if "sys.foreign_keys" in sql:
            return []
        if sql == s.table_stats_query(0)[0]:
            return [(len(self._by_id(params[0]).rows), 8192)]
        if sql == s.tables_query("")[0]:
            return [
                (name, len(t.rows), 8192, True) for (schema, name), t in self.catalog.items() if schema == params[0]
            ]
        return None

    def _select_answer(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]] | None:
        for key, table in self.catalog.items():
            if sql == fullload_mssql.select_statement(*key, [c[0] for c in table.columns]):
                rows = list(table.rows)
                if self.on_select is not None:
                    self.on_select(key)
                return rows
        return None


def shop() -> FakeMssql:
    server = FakeMssql()
    server.table("dbo", "orders", ORDERS_COLUMNS, ["id"])
    server.table("dbo", "lines", LINES_COLUMNS, ["order_id", "line"])
    return server


# --------------------------------------------------------------------------------------------
# Running a worker


@pytest.fixture
def recorded() -> Recorded:
    """The sink workers report what they applied to (no app database here)."""
    return Recorded()


def install(monkeypatch: pytest.MonkeyPatch, server: FakeMssql) -> None:
    """Every SQL Server session the code opens talks to `server`."""
    monkeypatch.setattr(sqlserver_connector, "odbc_connect", lambda _spec, **_kw: server.connect())


def target_spec(pg: PgCluster, db: str) -> ConnectionSpec:
    return ConnectionSpec(
        kind="postgresql", host=pg.host, port=pg.port, database=db, username=pg.user, password=pg.password
    )


def make_plan(pg: PgCluster, db: str, pipeline_id: int, mode: str = "CDC_ONLY") -> CdcPlan:
    return CdcPlan(
        pipeline_id=pipeline_id,
        source=SOURCE,
        target=target_spec(pg, db),
        tables=list(PLANS),
        mode=mode,
        auto_create=True,
        target_table_policy="fail",
    )


def query(pg: PgCluster, db: str, statement: str, params: tuple = ()) -> list[tuple]:
    conn = pg.connect(db)
    try:
        with conn.cursor() as cur:
            cur.execute(statement, params or None)
            return cur.fetchall()
    finally:
        conn.close()


def offsets(pg: PgCluster, db: str) -> list[tuple[int, str, int]]:
    if not query(pg, db, "SELECT to_regclass('cdc_studio.offsets') IS NOT NULL")[0][0]:
        return []
    rows = query(pg, db, "SELECT pipeline_id, source, position FROM cdc_studio.offsets ORDER BY 1, 2")
    return [(pid, source, int(position)) for pid, source, position in rows]


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)  # exact digits and scale, not just an equal number
    if isinstance(value, memoryview):
        return bytes(value)
    return value


def target_orders(pg: PgCluster, db: str) -> list[tuple]:
    names = ", ".join(c[0] for c in ORDERS_COLUMNS)
    return [tuple(map(_plain, r)) for r in query(pg, db, f"SELECT {names} FROM sales.orders ORDER BY id")]


def expected(row: tuple) -> tuple:
    """A source row as the target must hold it."""
    out = list(map(_plain, row))
    if out[6] is not None:
        out[6] = str(uuid.UUID(str(out[6])))  # uuid: psycopg2 returns PostgreSQL's lower-case text
    return tuple(out)


def target_lines(pg: PgCluster, db: str) -> list[tuple]:
    return query(pg, db, "SELECT order_id, line, qty FROM sales.lines ORDER BY 1, 2")


def column_types(pg: PgCluster, db: str, table: str) -> list[tuple[str, str]]:
    return query(
        pg,
        db,
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        (f"sales.{table}",),
    )


def summary(events: list) -> list[tuple]:
    return [(e.position, e.table, e.op, e.key) for e in events]


def execute(pg: PgCluster, db: str, *statements: str) -> None:
    conn = pg.connect(db)
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
    finally:
        conn.close()


def primary_key(pg: PgCluster, db: str, table: str) -> list[str]:
    rows = query(
        pg,
        db,
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
        "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary",
        (f"sales.{table}",),
    )
    return [r[0] for r in rows]


def contiguous(bounds: list[tuple[int, int]], after: int) -> bool:
    """The ranges read start right after `after` and follow each other without gap or overlap."""
    ranges = sorted(set(bounds))
    return (
        bool(ranges)
        and ranges[0][0] == after + 1
        and all(nxt[0] == prev[1] + 1 for prev, nxt in zip(ranges, ranges[1:], strict=False))
    )


# --------------------------------------------------------------------------------------------
# 1. CDC_ONLY


def commit_t1(server: FakeMssql) -> None:
    """T1 at A: three orders and two lines inserted (seqvals shared across tables, as on the server)."""
    server.commit(
        A,
        ("dbo_orders", 1, INSERT, ROW1),
        ("dbo_lines", 2, INSERT, (1, 1, 5)),
        ("dbo_orders", 3, INSERT, ROW2),
        ("dbo_lines", 4, INSERT, (1, 2, 7)),
        ("dbo_orders", 5, INSERT, ROW3),
    )


def commit_t2(server: FakeMssql) -> None:
    """T2 at B: an update (3+4), a primary-key update, an update of a composite-key row, two deletes."""
    server.commit(
        B,
        ("dbo_orders", 1, BEFORE, ROW1),
        ("dbo_orders", 1, AFTER, ROW1_V2),
        ("dbo_orders", 2, BEFORE, ROW2),
        ("dbo_orders", 2, AFTER, ROW20),  # primary key 2 -> 20
        ("dbo_lines", 3, BEFORE, (1, 2, 7)),
        ("dbo_lines", 3, AFTER, (1, 2, 8)),
        ("dbo_orders", 4, DELETE, ROW3),
        ("dbo_lines", 5, DELETE, (1, 1, 5)),
    )


T1_EVENTS = [
    (A, "orders", "insert", {"id": "1"}),
    (A, "lines", "insert", {"order_id": "1", "line": "1"}),
    (A, "orders", "insert", {"id": "2"}),
    (A, "lines", "insert", {"order_id": "1", "line": "2"}),
    (A, "orders", "insert", {"id": "3"}),
]
T2_EVENTS = [
    (B, "orders", "update", {"id": "1"}),
    (B, "orders", "update", {"id": "2"}),  # the key of the before image: the old row is found
    (B, "lines", "update", {"order_id": "1", "line": "2"}),
    (B, "orders", "delete", {"id": "3"}),
    (B, "lines", "delete", {"order_id": "1", "line": "1"}),
]


def first_run(pg: PgCluster, db: str, server: FakeMssql, pipeline_id: int, recorded: list) -> None:
    """CDC_ONLY from scratch (orders auto-created, lines existing); T1 then T2 applied, checked after each."""
    execute(pg, db, "CREATE SCHEMA sales", LINES_DDL)
    server.commit(P, ("dbo_orders", 1, INSERT, ROW99))  # before the start: CDC_ONLY does not read it
    with running(make_plan(pg, db, pipeline_id), sink=recorded) as run:
        # The start position (the max LSN) is stored before any change arrives.
        assert offsets(pg, db) == [(pipeline_id, "mssql", P)]
        # orders was created from the SQL Server catalog, through the type map, with its primary key.
        assert column_types(pg, db, "orders") == ORDERS_TARGET_TYPES
        assert primary_key(pg, db, "orders") == ["id"]

        commit_t1(server)
        wait_for(run, lambda: offsets(pg, db) == [(pipeline_id, "mssql", A)])
        assert target_orders(pg, db) == [expected(ROW1), expected(ROW2), expected(ROW3)]
        assert target_lines(pg, db) == [(1, 1, 5), (1, 2, 7)]

        commit_t2(server)
        wait_for(run, lambda: offsets(pg, db) == [(pipeline_id, "mssql", B)])
        assert target_orders(pg, db) == [expected(ROW1_V2), expected(ROW20)]
        assert target_lines(pg, db) == [(1, 2, 8)]
    # Counters and monitoring are updated just after the commit: read them once the worker has stopped.
    c = run.worker.counters
    assert (c.events, c.inserts, c.updates, c.deletes) == (10, 5, 3, 2)
    # T2's commit time: local 12:00:02 (T0 + its index in lsn_time_mapping) at the server's +01:00.
    assert c.last_commit_time == datetime(2024, 1, 1, 11, 0, 2, tzinfo=UTC)
    assert summary(recorded) == T1_EVENTS + T2_EVENTS
    assert contiguous(server.change_bounds(), after=P)
    assert offsets(pg, db) == [(pipeline_id, "mssql", B)]


def test_cdc_only_applies_inserts_updates_key_changes_and_deletes(
    pg: PgCluster, pg_db: str, monkeypatch: pytest.MonkeyPatch, recorded: list
) -> None:
    server = shop()
    install(monkeypatch, server)
    first_run(pg, pg_db, server, 7101, recorded)
    assert ("before the start",) not in query(pg, pg_db, "SELECT name FROM sales.orders")
    # The offset is an 80-bit LSN, stored exactly.
    assert query(pg, pg_db, "SELECT position::text FROM cdc_studio.offsets") == [(str(B),)]
    assert B > 2**64


# --------------------------------------------------------------------------------------------
# 2. Restart


def test_restart_reads_strictly_after_the_stored_lsn(
    pg: PgCluster, pg_db: str, monkeypatch: pytest.MonkeyPatch, recorded: list
) -> None:
    server = shop()
    install(monkeypatch, server)
    first_run(pg, pg_db, server, 7102, recorded)
    before = len(recorded)
    with server.lock:
        server.log.clear()
    # While the pipeline is stopped: counter 2 -> 3 on order 1, a new order, a line changed.
    server.commit(
        C,
        ("dbo_orders", 1, BEFORE, ROW1_V2),
        ("dbo_orders", 1, AFTER, ROW1_V3),
        ("dbo_lines", 2, BEFORE, (1, 2, 8)),
        ("dbo_lines", 2, AFTER, (1, 2, 9)),
        ("dbo_orders", 3, INSERT, ROW30),
    )
    with running(make_plan(pg, pg_db, 7102), sink=recorded) as run:
        wait_for(run, lambda: offsets(pg, pg_db) == [(7102, "mssql", C)])
    assert run.worker.counters.events == 3
    assert summary(recorded[before:]) == [
        (C, "orders", "update", {"id": "1"}),
        (C, "lines", "update", {"order_id": "1", "line": "2"}),
        (C, "orders", "insert", {"id": "30"}),
    ]
    # The stream asked only for what follows the stored LSN: nothing at or before B is read again.
    assert contiguous(server.change_bounds(), after=B)
    assert server.calls(ms.DB_ENABLED_SQL) != []  # the checks ran again
    rows = target_orders(pg, pg_db)
    assert rows == [expected(ROW1_V3), expected(ROW20), expected(ROW30)]
    assert [r[1] for r in rows] == [3, 2, 1]  # the counter: every update once
    assert target_lines(pg, pg_db) == [(1, 2, 9)]


# --------------------------------------------------------------------------------------------
# 3. check()

ENABLE_DB = "USE [Shop]; EXEC sys.sp_cdc_enable_db;"
ENABLE_ORDERS = (
    "USE [Shop]; EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'orders', "
    "@role_name = NULL, @supports_net_changes = 0;"
)


@pytest.mark.parametrize(
    ("db_enabled", "untracked", "message"),
    [
        (
            False,
            {("dbo", "orders")},
            f"CDC is not enabled on database Shop: run (as sysadmin): {ENABLE_DB}; "
            f"table dbo.orders is not tracked by CDC: run: {ENABLE_ORDERS}",
        ),
        (False, set(), f"CDC is not enabled on database Shop: run (as sysadmin): {ENABLE_DB}"),
        (True, {("dbo", "orders")}, f"table dbo.orders is not tracked by CDC: run: {ENABLE_ORDERS}"),
    ],
)
def test_check_refuses_a_source_without_cdc_with_the_command_that_enables_it(
    pg: PgCluster,
    pg_db: str,
    monkeypatch: pytest.MonkeyPatch,
    recorded: list,
    db_enabled: bool,
    untracked: set,
    message: str,
) -> None:
    server = shop()
    server.db_cdc_enabled = db_enabled
    server.untracked = untracked
    install(monkeypatch, server)
    plan = make_plan(pg, pg_db, 7103)
    with pytest.raises(CdcFailed) as caught:
        CdcWorker(plan, threading.Event()).check()
    assert str(caught.value) == message
    # run() checks first: it stops before reading an LSN or touching the target.
    with server.lock:
        server.log.clear()
    with pytest.raises(CdcFailed, match="sp_cdc_enable"):
        CdcWorker(plan, threading.Event(), sink=recorded).run()
    assert server.calls(ms.MAX_LSN_SQL) == [] and server.change_bounds() == []
    assert query(pg, pg_db, "SELECT count(*) FROM pg_namespace WHERE nspname IN ('sales', 'cdc_studio')") == [(0,)]
    assert recorded == []


def test_check_passes_when_cdc_is_on_and_warns_when_the_agent_is_stopped(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    server = shop()
    install(monkeypatch, server)
    plan = CdcPlan(7104, SOURCE, SOURCE, list(PLANS), "CDC_ONLY", True, "fail")
    CdcWorker(plan, threading.Event()).check()
    assert server.calls(ms.TABLE_TRACKED_SQL) == [("dbo", "orders"), ("dbo", "lines")]
    assert "SQL Server Agent" not in caplog.text
    server.agent = (1, "Stopped")
    with caplog.at_level("WARNING", logger="core.cdc.engine"):
        CdcWorker(plan, threading.Event()).check()
    assert "pipeline 7104: SQL Server Agent is not running (status: Stopped)" in caplog.text


def test_check_names_a_table_that_does_not_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    server = shop()
    install(monkeypatch, server)
    tables = [*PLANS, TablePlan("dbo", "gone", "sales", "gone")]
    plan = CdcPlan(7105, SOURCE, SOURCE, tables, "CDC_ONLY", True, "fail")
    with pytest.raises(CdcFailed) as caught:
        CdcWorker(plan, threading.Event()).check()
    assert str(caught.value) == "table dbo.gone does not exist in database Shop"


# --------------------------------------------------------------------------------------------
# 4. FULL_LOAD_AND_CDC


def test_full_load_and_cdc_reads_the_max_lsn_before_the_load_and_streams_strictly_after_it(
    pg: PgCluster, pg_db: str, monkeypatch: pytest.MonkeyPatch, recorded: list
) -> None:
    server = shop()
    install(monkeypatch, server)
    # History up to P: the max LSN when the pipeline starts.
    server.commit(
        P, ("dbo_orders", 1, INSERT, ROW1), ("dbo_orders", 2, INSERT, ROW2), ("dbo_lines", 3, INSERT, (1, 1, 5))
    )
    # The load reads order 1 after A updated it, but before B inserted order 30 and deleted order 2.
    server.catalog[("dbo", "orders")].rows = [ROW1_V2, ROW2]
    server.catalog[("dbo", "lines")].rows = [(1, 1, 5)]

    def concurrent_writes(key: tuple[str, str]) -> None:
        if key == ("dbo", "orders") and server.max_lsn == P:
            server.commit(A, ("dbo_orders", 1, BEFORE, ROW1), ("dbo_orders", 1, AFTER, ROW1_V2))
            server.commit(B, ("dbo_orders", 1, INSERT, ROW30), ("dbo_orders", 2, DELETE, ROW2))

    server.on_select = concurrent_writes
    real_full_load = prepare.run_full_load

    def full_load(*args: Any, **kwargs: Any) -> Any:
        with server.lock:
            server.log.append(("-- full load starts", ()))
        return real_full_load(*args, **kwargs)

    monkeypatch.setattr(prepare, "run_full_load", full_load)
    plan = make_plan(pg, pg_db, 7106, mode="FULL_LOAD_AND_CDC")
    with running(plan, sink=recorded) as run:
        assert run.worker.full_load_status == "COMPLETED"
        wait_for(run, lambda: offsets(pg, pg_db) == [(7106, "mssql", B)])

    statements = [sql for sql, _ in server.log]
    load_starts = statements.index("-- full load starts")
    orders_select = fullload_mssql.select_statement("dbo", "orders", [c[0] for c in ORDERS_COLUMNS])
    first_select = min(
        statements.index(orders_select),
        statements.index(fullload_mssql.select_statement("dbo", "lines", [c[0] for c in LINES_COLUMNS])),
    )
    stream_starts = statements.index(ms.CAPTURE_INSTANCES_SQL)
    # Exactly one max LSN read, and it comes before the load; the stream opens after the load.
    assert statements[:load_starts].count(ms.MAX_LSN_SQL) == 1
    assert ms.MAX_LSN_SQL not in statements[load_starts:stream_starts]
    assert load_starts < first_select < stream_starts
    # Strictly after P: A (committed during the load, already copied) is read again and converges.
    assert contiguous(server.change_bounds(), after=P)
    assert summary(recorded) == [
        (A, "orders", "update", {"id": "1"}),
        (B, "orders", "insert", {"id": "30"}),
        (B, "orders", "delete", {"id": "2"}),
    ]
    assert column_types(pg, pg_db, "orders") == ORDERS_TARGET_TYPES
    assert primary_key(pg, pg_db, "orders") == ["id"]
    assert target_orders(pg, pg_db) == [expected(ROW1_V2), expected(ROW30)]
    assert target_lines(pg, pg_db) == [(1, 1, 5)]


# --------------------------------------------------------------------------------------------
# Positions of a quiet pipeline, and a capture job that has not scanned yet


def test_an_idle_pipeline_keeps_its_stored_lsn_up_with_the_change_tables(
    pg: PgCluster, pg_db: str, monkeypatch: pytest.MonkeyPatch, recorded: list
) -> None:
    server = shop()
    server.add("dbo", "other", "dbo_other", CAPTURE_START, [("k", "int")])  # captured, not in the pipeline
    install(monkeypatch, server)
    execute(pg, pg_db, "CREATE SCHEMA sales", LINES_DDL)
    server.commit(P, ("dbo_other", 1, INSERT, (1,)))
    with running(make_plan(pg, pg_db, 7107), sink=recorded) as run:
        server.commit(A, ("dbo_other", 1, INSERT, (2,)))  # only other tables change: the stream's idle TxnEnd
        wait_for(run, lambda: any(hi == A for _lo, hi in server.change_bounds()))
        time.sleep(1)  # a few loop turns to store it
    assert offsets(pg, pg_db) == [(7107, "mssql", A)]
    # The cleanup job moves every capture instance's low endpoint past what no longer matters (above P).
    for instance in server.instances:
        instance["start"] = A
    with running(make_plan(pg, pg_db, 7107), sink=recorded):  # a restart must go on, not fail with ChangesLost
        pass
    assert recorded == []


def test_changes_captured_during_the_full_load_are_not_lost_when_the_max_lsn_was_still_zero(
    pg: PgCluster, pg_db: str, monkeypatch: pytest.MonkeyPatch, recorded: list
) -> None:
    """CDC was just enabled: fn_cdc_get_max_lsn() is NULL until the capture job's first scan.

    The scan captures order 30, inserted after the load read the table. Whatever the fix (read the
    change tables from their start, or wait for the first scan before the load), order 30 must arrive.
    """
    server = shop()
    install(monkeypatch, server)
    orders = server.catalog[("dbo", "orders")]
    orders.rows = [ROW1]
    max_reads = 0

    def capture_job(sql: str) -> None:
        nonlocal max_reads
        if sql == ms.MAX_LSN_SQL and server.max_lsn == 0:
            max_reads += 1
            if max_reads >= 2:  # an engine that waits for the first scan: the insert comes before the load
                server.commit(A, ("dbo_orders", 1, INSERT, ROW30))
                orders.rows.append(ROW30)

    def after_the_load_read(key: tuple[str, str]) -> None:
        if key == ("dbo", "orders") and server.max_lsn == 0:
            server.commit(A, ("dbo_orders", 1, INSERT, ROW30))  # the load has not seen it

    server.on_sql = capture_job
    server.on_select = after_the_load_read
    with running(make_plan(pg, pg_db, 7108, mode="FULL_LOAD_AND_CDC"), sink=recorded) as run:
        assert run.worker.full_load_status == "COMPLETED"
        wait_for(run, lambda: target_orders(pg, pg_db) == [expected(ROW1), expected(ROW30)], timeout_s=5)
