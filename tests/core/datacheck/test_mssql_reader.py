"""The SQL Server side of a data check without a server: the reader against a fake pyodbc connection (session
settings, snapshot isolation statements, shape from catalog rows, error translation), the reader chosen by
the connection's kind, and a TableValidator run between a fake SQL Server source and a real PostgreSQL target.

The fake source answers the validator's T-SQL from rows held in Python, rendered with the portable reference
(core.datacheck.portable): what the T-SQL is specified to return (tests/core/datacheck/test_mssql_sql.py
checks the statements themselves). The target is real: segment checksums computed by the reference and by
PostgreSQL must agree for equal rows, and differ exactly where rows differ."""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pyodbc
import pytest
from psycopg2 import sql

from core.connectors import sqlserver as ss
from core.connectors.base import ConnectionSpec
from core.datacheck import engine
from core.datacheck.engine import Reader, TableValidator
from core.datacheck.mssql import MssqlColumn, MssqlShape
from core.datacheck.mssql_reader import (
    BEGIN_SNAPSHOT_SQL,
    CAPABILITIES_SQL,
    END_SNAPSHOT_SQL,
    SESSION_SQL,
    MssqlReader,
    SnapshotIsolationOff,
)
from core.datacheck.portable import hash_text, pair, segment_checksum, value_text
from core.datacheck.readers import open_reader
from core.errors import ObjectNotFound, QueryFailed, SerializationFailure, StudioError
from core.typemap import map_type
from tests.pgcluster import PgCluster

PASSWORD = "Sup3r;S3cret}pw"
Responder = Callable[[str, tuple[Any, ...]], list[tuple[Any, ...]]]


def mssql_spec() -> ConnectionSpec:
    return ConnectionSpec(
        kind="sqlserver", host="db.example.com", port=1433, database="Sales", username="sa", password=PASSWORD
    )


class FakeCursor:
    def __init__(self, conn: FakeConnection) -> None:
        self.conn, self.rows = conn, []

    def execute(self, statement: str, *params: Any) -> FakeCursor:
        self.conn.calls.append((statement, params))
        self.rows = self.conn.respond(statement, params)
        return self

    def fetchall(self) -> list[tuple[Any, ...]]:
        return list(self.rows)

    def close(self) -> None:
        pass


class FakeConnection:
    def __init__(self, respond: Responder) -> None:
        self.respond = respond
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.closed = False
        self.timeout = 0
        self.autocommit: bool | None = None

    def cursor(self) -> FakeCursor:
        return FakeCursor(self)

    def close(self) -> None:
        self.closed = True


def install(monkeypatch: pytest.MonkeyPatch, respond: Responder) -> list[FakeConnection]:
    """Replace odbc_connect (the one seam where SQL Server sessions open); the connections made, in order."""
    made: list[FakeConnection] = []

    def connect(spec: ConnectionSpec, *, autocommit: bool = True, database: str | None = None) -> FakeConnection:
        conn = FakeConnection(respond)
        conn.autocommit = autocommit
        made.append(conn)
        return conn

    monkeypatch.setattr(ss, "odbc_connect", connect)
    return made


def dispatch(table: dict[str, Any], capabilities: tuple = (1, 0, 65001)) -> Responder:
    """Answer by the first fragment found in the statement (rows, a callable of the params, or an exception)."""
    answers = {SESSION_SQL: [], CAPABILITIES_SQL: [capabilities], BEGIN_SNAPSHOT_SQL: [], END_SNAPSHOT_SQL: []}

    def respond(statement: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        if statement in answers:
            return answers[statement]
        for fragment, answer in table.items():
            if fragment in statement:
                if isinstance(answer, BaseException):
                    raise answer
                return answer(params) if callable(answer) else answer
        raise AssertionError(f"unexpected SQL: {statement}")

    return respond


# ------------------------------------------------------------------ the session


def test_the_session_is_autocommit_with_a_query_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    made = install(monkeypatch, dispatch({}))
    reader = MssqlReader(mssql_spec(), is_source=True)
    conn = made[0]
    assert conn.autocommit is True and conn.timeout == engine.STATEMENT_TIMEOUT_S
    assert [c[0] for c in conn.calls] == [SESSION_SQL, CAPABILITIES_SQL]
    assert "CONCAT_NULL_YIELDS_NULL ON" in SESSION_SQL
    assert "snapshot_isolation_state" in CAPABILITIES_SQL and "DB_ID()" in CAPABILITIES_SQL
    assert "COLLATIONPROPERTY(N'Latin1_General_100_BIN2_UTF8', 'CodePage')" in CAPABILITIES_SQL
    assert reader.kind == "sqlserver" and reader.isolation == "SNAPSHOT" and reader.utf8
    reader.close()
    assert conn.closed


def test_snapshot_reads_run_in_a_snapshot_transaction(monkeypatch: pytest.MonkeyPatch) -> None:
    gone = pyodbc.ProgrammingError(
        "42S02", "[42S02] [Microsoft][ODBC Driver 18 for SQL Server]Invalid object name 'x'. (208)"
    )
    made = install(monkeypatch, dispatch({"SELECT 1": [(1,)], "FROM x": gone}))
    reader = MssqlReader(mssql_spec(), is_source=True)
    with reader.snapshot():
        assert reader.query("SELECT 1") == [(1,)]
    with pytest.raises(ObjectNotFound), reader.snapshot():
        reader.query("SELECT * FROM x")
    sent = [c[0] for c in made[0].calls[2:]]
    assert sent == [
        BEGIN_SNAPSHOT_SQL,
        "SELECT 1",
        END_SNAPSHOT_SQL,
        BEGIN_SNAPSHOT_SQL,
        "SELECT * FROM x",
        END_SNAPSHOT_SQL,
    ]
    # SNAPSHOT is chosen before the transaction begins (a transaction cannot switch to it later)
    assert BEGIN_SNAPSHOT_SQL.index("SET TRANSACTION ISOLATION LEVEL SNAPSHOT") < BEGIN_SNAPSHOT_SQL.index("BEGIN")
    assert END_SNAPSHOT_SQL.startswith("IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION")
    assert "READ COMMITTED" in END_SNAPSHOT_SQL


def test_read_committed_snapshot_alone_needs_no_transaction(monkeypatch: pytest.MonkeyPatch) -> None:
    made = install(monkeypatch, dispatch({"SELECT 1": [(1,)]}, capabilities=(0, 1, 65001)))
    reader = MssqlReader(mssql_spec(), is_source=True)
    with reader.snapshot():
        reader.query("SELECT 1")
    assert reader.isolation == "READ COMMITTED SNAPSHOT"
    assert [c[0] for c in made[0].calls[2:]] == ["SELECT 1"]


def test_streaming_without_snapshot_isolation_is_refused_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    made = install(monkeypatch, dispatch({}, capabilities=(0, 0, 65001)))
    with pytest.raises(SnapshotIsolationOff) as info:
        MssqlReader(mssql_spec(), is_source=True, streaming=True)
    message = str(info.value)
    assert "ALTER DATABASE [Sales] SET ALLOW_SNAPSHOT_ISOLATION ON" in message
    assert "changes flow" in message and PASSWORD not in message
    assert made[0].closed
    reader = MssqlReader(mssql_spec(), is_source=True, streaming=False)  # a load-only pipeline: nothing moves
    assert reader.isolation == "READ COMMITTED"
    with pytest.raises(SnapshotIsolationOff):
        MssqlReader(mssql_spec(), is_source=True, streaming=True)  # state 3: ON in transition, not yet ON
    install(monkeypatch, dispatch({}, capabilities=(3, 0, 65001)))
    with pytest.raises(SnapshotIsolationOff):
        MssqlReader(mssql_spec(), is_source=True)


def test_servers_without_utf8_collations_compare_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, dispatch({}, capabilities=(1, 0, None)))
    reader = MssqlReader(mssql_spec(), is_source=True)
    assert not reader.utf8
    column = MssqlColumn("id", "int")
    built = reader.table_shape(("dbo", "t"), [column], [column], (pair("int", "integer"),))
    assert isinstance(built, MssqlShape) and not built.can_hash
    with pytest.raises(StudioError, match="portable"):
        reader.table_shape(("dbo", "t"), [column], [column], None)


CATALOG = {
    "AND t.name = ?": [(42,)],
    "FROM sys.columns AS c": [
        ("id", "int", 4, 10, 0, 0, None, 1),
        ("region", "nchar", 10, 0, 0, 0, None, 2),
        ("name", "nvarchar", 100, 0, 0, 1, None, 3),
        ("at", "datetime2", 8, 27, 7, 1, None, 4),
        ("amount", "decimal", 9, 12, 2, 1, "((0))", 5),
        ("blob", "varbinary", -1, 0, 0, 1, None, 6),
    ],
    "FROM sys.indexes AS i": [
        ("PK_orders", 1, 1, "region"),
        ("PK_orders", 1, 1, "id"),
        ("IX_name", 0, 0, "name"),
    ],
}


def test_shape_comes_from_the_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    made = install(monkeypatch, dispatch(CATALOG))
    reader = MssqlReader(mssql_spec(), is_source=True)
    columns, key = reader.shape("sales", "we]ird")
    assert [(c.name, c.type) for c in columns] == [
        ("id", "int"),
        ("region", "nchar(5)"),
        ("name", "nvarchar(50)"),
        ("at", "datetime2(7)"),
        ("amount", "decimal(12,2)"),
        ("blob", "varbinary(max)"),
    ]
    assert all(isinstance(c, MssqlColumn) for c in columns)
    assert key == ["region", "id"]  # primary key columns only, in key order
    calls = made[0].calls[2:]
    assert calls[0][1] == ("sales", "we]ird") and calls[1][1] == (42,) and calls[2][1] == (42,)


def test_a_missing_table_and_driver_errors_are_told_in_plain_words(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, dispatch({"AND t.name = ?": []}))
    reader = MssqlReader(mssql_spec(), is_source=False)
    with pytest.raises(StudioError, match=r"the target table dbo.gone cannot be read: table dbo.gone does not exist"):
        reader.shape("dbo", "gone")
    timeout = pyodbc.OperationalError(
        "HYT00", "[HYT00] [Microsoft][ODBC Driver 18 for SQL Server]Query timeout expired (0)"
    )
    deadlock = pyodbc.Error("40001", "[40001] [SQL Server]Transaction (Process ID 52) was deadlocked (1205)")
    leak = pyodbc.Error("42000", f"[42000] [SQL Server]bad PWD={PASSWORD}; near 'x' (102)")
    install(monkeypatch, dispatch({"slow": timeout, "locked": deadlock, "leaky": leak}))
    reader = MssqlReader(mssql_spec(), is_source=True)
    with pytest.raises(QueryFailed, match="timed out"):
        reader.query("SELECT slow")
    with pytest.raises(SerializationFailure) as info:
        reader.query("SELECT locked")
    assert info.value.transient
    with pytest.raises(QueryFailed) as failed:
        reader.query("SELECT leaky")
    assert PASSWORD not in str(failed.value)


def test_the_reader_follows_the_connection_kind(monkeypatch: pytest.MonkeyPatch, pg: PgCluster, pg_db: str) -> None:
    install(monkeypatch, dispatch({}))
    reader = open_reader(mssql_spec(), is_source=True, streaming=True)
    assert isinstance(reader, MssqlReader)
    reader.close()
    pg_spec = ConnectionSpec(
        kind="postgresql", host=pg.host, port=pg.port, database=pg_db, username=pg.user, password=pg.password
    )
    reader = open_reader(pg_spec, is_source=False, streaming=True)
    assert isinstance(reader, Reader) and reader.kind == "postgresql"
    reader.close()


# ------------------------------------------------------------------ a validator run: fake SQL Server -> real PostgreSQL

SOURCE_TYPES = {"id": "int", "name": "nvarchar(20)", "amount": "decimal(10,2)", "at": "datetime2(7)", "flag": "bit"}
_SYS_TYPES = {"int": ("int", 4, 10, 0), "nvarchar(20)": ("nvarchar", 40, 0, 0), "decimal(10,2)": ("decimal", 9, 10, 2),
              "datetime2(7)": ("datetime2", 8, 27, 7), "bit": ("bit", 1, 1, 0)}  # fmt: skip


def source_rows(n: int) -> dict[int, dict[str, Any]]:
    return {
        i: {
            "id": i,
            "name": None if i % 7 == 0 else ("" if i % 5 == 0 else f"név {i}|\\"),
            "amount": Decimal(f"{i}.{i % 100:02d}"),
            "at": f"2024-01-{1 + i % 28:02d} 03:04:05.{i:06d}9",
            "flag": i % 2 == 0,
        }
        for i in range(1, n + 1)
    }


class FakeSqlServer:
    """Answers the validator's T-SQL for one table with an int key from rows held in Python, rendered by the
    portable reference: the results the T-SQL is specified to give."""

    def __init__(self, rows: dict[int, dict[str, Any]], *, utf8: bool = True) -> None:
        self.rows, self.utf8 = rows, utf8
        self.norms = {n: pair(t, map_type(t, "sqlserver", "postgresql").sql) for n, t in SOURCE_TYPES.items()}
        self.sent: list[str] = []

    def _segment(self, statement: str, params: tuple) -> list[int]:
        values = list(params)
        low = values.pop(0) if "WHERE [id] > ?" in statement else None
        high = values.pop(0) if "NOT ([id] > ?)" in statement else None
        return sorted(i for i in self.rows if (low is None or i > low) and (high is None or i <= high))

    def _texts(self, i: int, hashed: bool) -> list[str | None]:
        render = hash_text if hashed else value_text
        return [render(self.norms[n], self.rows[i][n]) for n in SOURCE_TYPES]

    def respond(self, statement: str, params: tuple) -> list[tuple]:
        self.sent.append(statement)
        if statement in (SESSION_SQL, BEGIN_SNAPSHOT_SQL, END_SNAPSHOT_SQL):
            return []
        if statement == CAPABILITIES_SQL:
            return [(1, 0, 65001 if self.utf8 else None)]
        if "AND t.name = ?" in statement:
            return [(7,)]
        if "FROM sys.columns AS c" in statement:
            return [(n, *_SYS_TYPES[t], 1, None, k) for k, (n, t) in enumerate(SOURCE_TYPES.items(), 1)]
        if "FROM sys.indexes AS i" in statement:
            return [("PK_t", 1, 1, "id")]
        if statement == "SELECT COUNT_BIG(*) FROM [dbo].[t]":
            return [(len(self.rows),)]
        if "HASHBYTES('SHA2_256'" in statement:
            return [segment_checksum(self._texts(i, True) for i in self._segment(statement, params))]
        if statement.startswith("SELECT COUNT_BIG(*) FROM [dbo].[t] WHERE"):
            return [(len(self._segment(statement, params)),)]
        if "ROW_NUMBER()" in statement:
            step = int(re.search(r"% (\d+) = 0", statement).group(1))  # type: ignore[union-attr]
            return [(i,) for n, i in enumerate(self._segment(statement, params), 1) if n % step == 0]
        if "[id] IN (" in statement:
            return [(i, *self._texts(i, False)) for i in sorted(set(params) & set(self.rows))]
        if statement.startswith("SELECT [id], CAST([id] AS varchar(20))"):
            return [(i, *self._texts(i, False)) for i in self._segment(statement, params)]
        raise AssertionError(f"unexpected SQL: {statement}")


def load_target(pg: PgCluster, db: str, rows: dict[int, dict[str, Any]]) -> None:
    """The target table as the embedded engine fills it (the type map's types; 100 ns digits cut)."""
    columns = [sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(map_type(t, "sqlserver", "postgresql").sql))
               for n, t in SOURCE_TYPES.items()]  # fmt: skip
    conn = pg.connect(db)
    with conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE TABLE t ({}, PRIMARY KEY (id))").format(sql.SQL(", ").join(columns)))
        for row in rows.values():
            cur.execute(
                "INSERT INTO t VALUES (%s, %s, %s, %s, %s)",
                [row["id"], row["name"], row["amount"], row["at"][:-1], row["flag"]],
            )
    conn.close()


def validator(pg: PgCluster, db: str, server: FakeSqlServer, monkeypatch: pytest.MonkeyPatch) -> TableValidator:
    install(monkeypatch, server.respond)
    monkeypatch.setattr(engine, "SEGMENT_ROWS", 20)
    monkeypatch.setattr(engine, "ROW_FETCH", 4)
    monkeypatch.setattr(engine, "SPLIT", 3)
    pg_spec = ConnectionSpec(
        kind="postgresql", host=pg.host, port=pg.port, database=db, username=pg.user, password=pg.password
    )
    source = open_reader(mssql_spec(), is_source=True, streaming=True)
    target = open_reader(pg_spec, is_source=False, streaming=True)
    return TableValidator(source, target, ("dbo", "t"), ("public", "t"))


def test_equal_tables_validate_on_checksums_alone(pg: PgCluster, pg_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = source_rows(60)
    load_target(pg, pg_db, rows)
    server = FakeSqlServer(rows)
    check = validator(pg, pg_db, server, monkeypatch)
    try:
        assert check.hashing
        assert check.counts() == (60, 60)
        result = check.find_differences()
        assert result.candidates == {}
        assert result.segments == 4  # the top segments (..20], (20..40], (40..60], (60..) matched: none was split
        assert not any(s.startswith("SELECT [id], CAST") for s in server.sent)  # no row was fetched
    finally:
        check.close()


def test_differing_rows_are_found_by_bisection(pg: PgCluster, pg_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = source_rows(60)
    load_target(pg, pg_db, rows)
    conn = pg.connect(pg_db)
    with conn.cursor() as cur:
        cur.execute("UPDATE t SET name = 'changed' WHERE id = 17")
        cur.execute("UPDATE t SET at = at + interval '1 microsecond' WHERE id = 33")
        cur.execute("UPDATE t SET name = NULL WHERE id = 25")  # '' on the source: not the same as NULL
        cur.execute("DELETE FROM t WHERE id = 48")
        cur.execute("INSERT INTO t (id, amount, flag) VALUES (61, 1, true)")
    conn.close()
    server = FakeSqlServer(rows)
    check = validator(pg, pg_db, server, monkeypatch)
    try:
        result = check.find_differences()
        found = {k: (d.kind, d.columns) for k, d in result.candidates.items()}
        assert found == {
            ("17",): ("different", ["name"]),
            ("33",): ("different", ["at"]),
            ("25",): ("different", ["name"]),
            ("48",): ("missing", []),
            ("61",): ("extra", []),
        }
        assert check.recheck(result.candidates).keys() == result.candidates.keys()
        assert check.key_dict(("17",)) == {"id": 17}
        fetched = [s for s in server.sent if s.startswith("SELECT [id], CAST")]
        assert 0 < len(fetched) < 15  # only the segments around the differences were read row by row
    finally:
        check.close()


def test_without_utf8_every_segment_is_compared_row_by_row(
    pg: PgCluster, pg_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = source_rows(30)
    load_target(pg, pg_db, rows)
    conn = pg.connect(pg_db)
    with conn.cursor() as cur:
        cur.execute("UPDATE t SET flag = NOT flag WHERE id = 9")
    conn.close()
    server = FakeSqlServer(rows, utf8=False)
    check = validator(pg, pg_db, server, monkeypatch)
    try:
        assert not check.hashing
        result = check.find_differences()
        assert {k: d.columns for k, d in result.candidates.items()} == {("9",): ["flag"]}
        assert not any("HASHBYTES" in s for s in server.sent)
        fetched = {s for s in server.sent if s.startswith("SELECT [id], CAST")}
        assert len([s for s in server.sent if s.startswith("SELECT [id], CAST")]) >= 30 // 4 and fetched
    finally:
        check.close()
