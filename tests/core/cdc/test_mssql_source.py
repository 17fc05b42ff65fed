"""SQL Server CDC reader without a server: LSNs, the SQL sent, checks, operation mapping, value
conversion, and the polling stream against a scripted fake of the CDC functions."""

from __future__ import annotations

import random
import re
import struct
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import pyodbc
import pytest

from core.cdc import mssql_source as ms
from core.cdc.events import ChangeEvent
from core.cdc.mssql_source import (
    CaptureInstance,
    ChangesLost,
    MssqlCdcStream,
    changes_query,
    check_capture_instance,
    commit_times,
    enable_db_command,
    enable_table_command,
    group_transactions,
    increment_lsn,
    int_to_lsn,
    lsn_text,
    lsn_to_int,
    merge_events,
    parse_lsn,
    pg_text,
    rows_to_events,
)
from core.cdc.pgoutput import TxnEnd
from core.connectors import sqlserver
from core.connectors.base import ConnectionSpec
from core.errors import ConnectionRefused, ConnectorError, ConnectTimeout, ValidationFailed
from tests.pgcluster import free_port

SPEC = ConnectionSpec(kind="sqlserver", host="db.example.com", port=1433, database="Shop", username="sa", password="pw")
L = int_to_lsn


# --------------------------------------------------------------------------------------------
# LSNs


def test_lsn_round_trips_through_bytes_and_text() -> None:
    raw = bytes.fromhex("0000002A000001E80003")
    value = lsn_to_int(raw)
    assert value == (0x2A << 48) | (0x1E8 << 16) | 3
    assert int_to_lsn(value) == raw and len(int_to_lsn(1)) == 10
    assert lsn_text(raw) == lsn_text(value) == "0x0000002A000001E80003"
    assert parse_lsn("0x0000002A000001E80003") == value
    assert parse_lsn("0000002a:000001e8:0003") == value  # Debezium's form
    assert parse_lsn(" 2A000001E80003 ") == value
    assert lsn_to_int(None) == 0 and lsn_text(0) == "0x" + "0" * 20


def test_lsn_int_order_is_binary_order() -> None:
    rng = random.Random(7)
    values = [rng.getrandbits(80) for _ in range(200)] + [0, 1, 255, 256, (1 << 80) - 1]
    assert sorted(values) == sorted(values, key=int_to_lsn)
    assert all(lsn_to_int(int_to_lsn(v)) == v for v in values)


@pytest.mark.parametrize("bad", ["", "0x", "xyz", "0x" + "1" * 21, "12-34"])
def test_parse_lsn_refuses_what_is_not_an_lsn(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_lsn(bad)


def test_lsn_range_limits() -> None:
    with pytest.raises(ValueError):
        int_to_lsn(1 << 80)
    with pytest.raises(ValueError):
        int_to_lsn(-1)
    with pytest.raises(ValueError):
        lsn_to_int(b"\x00" * 11)


def test_increment_is_the_next_value_across_byte_carries() -> None:
    assert increment_lsn(5) == 6
    assert int_to_lsn(increment_lsn(lsn_to_int(bytes.fromhex("0000002A00000FFFFFFF")))) == bytes.fromhex(
        "0000002A000010000000"
    )


# --------------------------------------------------------------------------------------------
# SQL text


def test_changes_query_quotes_the_function_and_binds_the_bounds() -> None:
    sql, params = changes_query("dbo_orders", ["id", "we]ird col"], 0x10, 0x20)
    assert sql == (
        "SELECT [__$start_lsn], [__$seqval], [__$operation], [__$update_mask], [id], [we]]ird col] "
        "FROM [cdc].[fn_cdc_get_all_changes_dbo_orders](?, ?, N'all update old') "
        "ORDER BY [__$start_lsn], [__$seqval], [__$operation]"
    )
    assert params == (L(0x10), L(0x20))
    assert L(0x10).hex() not in sql.lower()


def test_changes_query_with_limit_and_odd_instance_name() -> None:
    sql, params = changes_query("sales_a]b'c", ["x"], 1, 2, limit=500)
    assert sql.startswith("SELECT TOP (?) [__$start_lsn]")
    assert "[cdc].[fn_cdc_get_all_changes_sales_a]]b'c](?, ?, N'all update old')" in sql
    assert params == (500, L(1), L(2))


@pytest.mark.parametrize("name", ["", "a" * 101, "bad\nname", "nul\x00"])
def test_invalid_capture_instance_names_are_refused(name: str) -> None:
    with pytest.raises(ValidationFailed):
        check_capture_instance(name)
    with pytest.raises(ValidationFailed):
        changes_query(name, ["x"], 1, 2)


def test_other_queries_bind_their_arguments() -> None:
    assert ms.min_lsn_query("dbo_orders") == ("SELECT sys.fn_cdc_get_min_lsn(?)", ("dbo_orders",))
    sql, params = ms.commit_times_query(3, 9)
    assert "cdc.lsn_time_mapping" in sql and "BETWEEN ? AND ?" in sql and params == (L(3), L(9))
    assert "DATEPART(TZOFFSET, SYSDATETIMEOFFSET())" in sql
    assert ms.MAX_LSN_SQL == "SELECT sys.fn_cdc_get_max_lsn()"
    assert "cc.object_id = ct.object_id" in ms.CAPTURE_INSTANCES_SQL


def test_enable_commands_quote_names() -> None:
    assert enable_db_command("Shop") == "USE [Shop]; EXEC sys.sp_cdc_enable_db;"
    assert enable_db_command("we]ird") == "USE [we]]ird]; EXEC sys.sp_cdc_enable_db;"
    assert enable_table_command("Shop", "dbo", "orders") == (
        "USE [Shop]; EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'orders', "
        "@role_name = NULL, @supports_net_changes = 0;"
    )
    assert enable_table_command("a]b", "s]x", "o'brien") == (
        "USE [a]]b]; EXEC sys.sp_cdc_enable_table @source_schema = N's]x', @source_name = N'o''brien', "
        "@role_name = NULL, @supports_net_changes = 0;"
    )


# --------------------------------------------------------------------------------------------
# A fake pyodbc connection

Responder = Callable[[str, tuple[Any, ...]], list[tuple[Any, ...]]]


class FakeCursor:
    def __init__(self, conn: FakeConnection) -> None:
        self.conn, self.rows = conn, []

    def execute(self, sql: str, *params: Any) -> FakeCursor:
        self.conn.calls.append((sql, params))
        self.rows = self.conn.respond(sql, params)
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

    def cursor(self) -> FakeCursor:
        return FakeCursor(self)

    def close(self) -> None:
        self.closed = True


def dispatch(table: dict[str, Any]) -> Responder:
    def respond(sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        for fragment, answer in table.items():
            if fragment in sql:
                if isinstance(answer, BaseException):
                    raise answer
                return answer(params) if callable(answer) else answer
        raise AssertionError(f"unexpected SQL: {sql}")

    return respond


def install(monkeypatch: pytest.MonkeyPatch, respond: Responder) -> list[FakeConnection]:
    conns: list[FakeConnection] = []

    def connect(spec: ConnectionSpec, *, autocommit: bool = True, database: str | None = None) -> FakeConnection:
        conns.append(FakeConnection(respond))
        return conns[-1]

    monkeypatch.setattr(sqlserver, "odbc_connect", connect)
    return conns


# --------------------------------------------------------------------------------------------
# Checks


def test_check_cdc_names_every_problem_with_its_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    tracked = {("dbo", "orders"): [(True,)], ("dbo", "o'brien"): [(False,)], ("dbo", "gone"): []}
    conns = install(
        monkeypatch,
        dispatch({"sys.databases": [("Shop]x", False)], "is_tracked_by_cdc": lambda p: tracked[p]}),
    )
    problems = ms.check_cdc(SPEC, [("dbo", "orders"), ("dbo", "o'brien"), ("dbo", "gone")])
    assert problems == [
        "CDC is not enabled on database Shop]x: run (as sysadmin): USE [Shop]]x]; EXEC sys.sp_cdc_enable_db;",
        "table dbo.o'brien is not tracked by CDC: run: USE [Shop]]x]; EXEC sys.sp_cdc_enable_table "
        "@source_schema = N'dbo', @source_name = N'o''brien', @role_name = NULL, @supports_net_changes = 0;",
        "table dbo.gone does not exist in database Shop]x",
    ]
    table_calls = [c for c in conns[0].calls if "is_tracked_by_cdc" in c[0]]
    assert [c[1] for c in table_calls] == [("dbo", "orders"), ("dbo", "o'brien"), ("dbo", "gone")]
    assert all("o'brien" not in sql for sql, _ in table_calls)
    assert conns[0].closed


def test_check_cdc_is_quiet_when_all_is_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, dispatch({"sys.databases": [("Shop", True)], "is_tracked_by_cdc": [(True,)]}))
    assert ms.check_cdc(SPEC, [("dbo", "orders")]) == []


def test_agent_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, dispatch({"dm_server_services": [(1, "Stopped")]}))
    warning = ms.agent_warning(SPEC)
    assert warning is not None and "SQL Server Agent is not running (status: Stopped)" in warning
    install(monkeypatch, dispatch({"dm_server_services": [(4, "Running")]}))
    assert ms.agent_warning(SPEC) is None
    denied = pyodbc.ProgrammingError("42000", "[42000] [SQL Server]VIEW SERVER STATE permission was denied (300)")
    install(monkeypatch, dispatch({"dm_server_services": denied}))
    assert ms.agent_warning(SPEC) is None


def test_driver_errors_leave_translated(monkeypatch: pytest.MonkeyPatch) -> None:
    gone = pyodbc.OperationalError("08S01", "[08S01] [Microsoft][ODBC Driver 18]Communication link failure (10054)")
    conns = install(monkeypatch, dispatch({"fn_cdc_get_max_lsn": gone}))
    with pytest.raises(ConnectionRefused):
        ms.max_lsn(SPEC)
    assert conns[0].closed


def test_max_and_min_lsn(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, dispatch({"fn_cdc_get_max_lsn": [(L(77),)]}))
    assert ms.max_lsn(SPEC) == 77
    install(monkeypatch, dispatch({"fn_cdc_get_max_lsn": [(None,)]}))
    assert ms.max_lsn(SPEC) == 0  # nothing captured yet
    conn = FakeConnection(dispatch({"fn_cdc_get_min_lsn": [(L(5),)]}))
    assert ms.min_lsn(conn.cursor(), "dbo_orders") == 5
    assert conn.calls == [("SELECT sys.fn_cdc_get_min_lsn(?)", ("dbo_orders",))]


# --------------------------------------------------------------------------------------------
# Capture instances

T0 = datetime(2024, 1, 1, 12, 0)


def instance_rows(
    schema: str, table: str, name: str, start: int, created: datetime, columns: list[tuple[str, str]]
) -> list[tuple[Any, ...]]:
    return [(schema, table, name, L(start), created, c, t, i + 1) for i, (c, t) in enumerate(columns)]


def test_capture_instances_pick_the_newest_and_keep_column_order() -> None:
    rows = (
        instance_rows("dbo", "orders", "dbo_orders", 10, T0, [("id", "int"), ("note", "nvarchar")])
        + instance_rows("dbo", "orders", "dbo_orders_v2", 50, T0 + timedelta(days=1), [("id", "int"), ("qty", "int")])
        + instance_rows("dbo", "other", "dbo_other", 10, T0, [("k", "int")])
    )
    conn = FakeConnection(dispatch({"cdc.change_tables": rows}))
    found = ms.capture_instances(conn.cursor(), [("dbo", "orders"), ("dbo", "missing")])
    assert list(found) == [("dbo", "orders")]
    newest = found[("dbo", "orders")]
    assert (newest.name, newest.start_lsn, newest.columns, newest.column_types) == (
        "dbo_orders_v2",
        50,
        ("id", "qty"),
        ("int", "int"),
    )
    history = ms.capture_instance_history(conn.cursor(), [("dbo", "orders")])[("dbo", "orders")]
    assert [ci.name for ci in history] == ["dbo_orders", "dbo_orders_v2"]


# --------------------------------------------------------------------------------------------
# Operation mapping

ORDERS = CaptureInstance("dbo_orders", 1, ("id", "name"), ("int", "nvarchar"), "dbo", "orders")
LINES = CaptureInstance("dbo_lines", 1, ("order_id", "line", "qty"), ("int", "int", "int"), "dbo", "lines")


def crow(lsn: int, seq: int, op: int, *values: Any) -> tuple[Any, ...]:
    return (L(lsn), L(seq), op, b"\x03", *values)


def test_insert_delete_and_update_pair() -> None:
    rows = [
        crow(100, 1, 2, 1, "a"),
        crow(100, 2, 3, 1, "a"),
        crow(100, 2, 4, 1, "b"),
        crow(101, 1, 1, 1, "b"),
    ]
    pairs = rows_to_events(ORDERS, ["id"], rows)
    events = [e for _k, e in pairs]
    assert [(e.op, e.key, e.before, e.after, e.position) for e in events] == [
        ("insert", {"id": "1"}, None, {"id": "1", "name": "a"}, 100),
        ("update", {"id": "1"}, {"id": "1", "name": "a"}, {"id": "1", "name": "b"}, 100),
        ("delete", {"id": "1"}, {"id": "1", "name": "b"}, None, 101),
    ]
    assert all((e.schema, e.table) == ("dbo", "orders") for e in events)
    assert [k for k, _e in pairs] == [(100, 1, 2), (100, 2, 3), (101, 1, 1)]


def test_key_change_takes_the_key_from_the_before_image() -> None:
    ((_, event),) = rows_to_events(ORDERS, ["id"], [crow(7, 1, 3, 1, "x"), crow(7, 1, 4, 2, "x")])
    assert event.op == "update" and event.key == {"id": "1"}
    assert event.before == {"id": "1", "name": "x"} and event.after == {"id": "2", "name": "x"}


def test_update_without_before_image_and_keyless_tables() -> None:
    ((_, event),) = rows_to_events(ORDERS, ["id"], [crow(7, 1, 4, 2, "x")])
    assert (event.op, event.key, event.before) == ("update", {"id": "2"}, None)
    ((_, event),) = rows_to_events(ORDERS, [], [crow(7, 1, 1, 2, None)])
    assert event.key == {"id": "2", "name": None}


@pytest.mark.parametrize(
    "rows",
    [
        [crow(7, 1, 3, 1, "x")],  # before image alone
        [crow(7, 1, 3, 1, "x"), crow(7, 2, 2, 5, "y")],  # followed by something else
        [crow(7, 1, 3, 1, "x"), crow(7, 2, 4, 1, "y")],  # after image of another change
        [crow(7, 1, 9, 1, "x")],  # unknown operation
    ],
)
def test_malformed_change_rows_are_errors(rows: list[tuple[Any, ...]]) -> None:
    with pytest.raises(ConnectorError):
        rows_to_events(ORDERS, ["id"], rows)


def test_two_tables_merge_in_commit_order() -> None:
    orders = rows_to_events(ORDERS, ["id"], [crow(10, 1, 2, 1, "a"), crow(12, 5, 2, 2, "b")])
    lines = rows_to_events(
        LINES,
        ["order_id", "line"],
        [crow(10, 2, 2, 1, 1, 3), crow(11, 1, 3, 1, 1, 3), crow(11, 1, 4, 1, 1, 4), crow(12, 4, 1, 1, 1, 4)],
    )
    merged = merge_events(orders, lines)
    assert [(e.position, e.table, e.op) for e in merged] == [
        (10, "orders", "insert"),
        (10, "lines", "insert"),
        (11, "lines", "update"),
        (12, "lines", "delete"),
        (12, "orders", "insert"),
    ]


def test_group_transactions_and_commit_times() -> None:
    events = merge_events(
        rows_to_events(ORDERS, ["id"], [crow(10, 1, 2, 1, "a"), crow(10, 2, 2, 2, "b"), crow(11, 1, 1, 1, "a")])
    )
    local = datetime(2024, 5, 1, 14, 30, 0, 123000)
    times = commit_times([(L(10), local, 120), (L(11), local + timedelta(seconds=1), -300), (L(12), None, 0)])
    assert times == {
        10: datetime(2024, 5, 1, 12, 30, 0, 123000, tzinfo=UTC),
        11: datetime(2024, 5, 1, 19, 30, 1, 123000, tzinfo=UTC),
    }
    assert all(t.tzinfo is UTC for t in times.values())
    items = group_transactions(events, times)
    assert [type(i).__name__ for i in items] == ["ChangeEvent", "ChangeEvent", "TxnEnd", "ChangeEvent", "TxnEnd"]
    assert items[2] == TxnEnd(xid=None, commit_lsn=10, end_lsn=10, commit_time=times[10])
    assert items[4] == TxnEnd(xid=None, commit_lsn=11, end_lsn=11, commit_time=times[11])
    assert [i.commit_time for i in items if isinstance(i, ChangeEvent)] == [times[10], times[10], times[11]]


# --------------------------------------------------------------------------------------------
# Values


def dto_bytes(*fields: int) -> bytes:
    return struct.pack("<6hI2h", *fields)


@pytest.mark.parametrize(
    ("value", "sql_type", "expected"),
    [
        (None, "int", None),
        (True, "bit", "t"),
        (False, "bit", "f"),
        (0, "int", "0"),
        (-9223372036854775808, "bigint", "-9223372036854775808"),
        (1.5, "float", "1.5"),
        (0.1, "real", "0.1"),
        (1e-7, "float", "1e-07"),
        (float("nan"), "float", "NaN"),
        (float("inf"), "float", "Infinity"),
        (float("-inf"), "float", "-Infinity"),
        (Decimal("12.3400"), "decimal", "12.3400"),
        (Decimal("1E+3"), "decimal", "1000"),
        (Decimal("-0.000001"), "money", "-0.000001"),
        (Decimal("1.23E-10"), "numeric", "0.000000000123"),
        ("plain 'text'\t\\", "nvarchar", "plain 'text'\t\\"),
        ("", "varchar", ""),
        (b"\x00\xffab", "varbinary", "\\x00ff6162"),
        (bytearray(b"\x01"), "binary", "\\x01"),
        (datetime(2024, 2, 29, 23, 59, 59, 999999), "datetime2", "2024-02-29 23:59:59.999999"),
        (datetime(2024, 2, 29, 1, 2, 3), "datetime", "2024-02-29 01:02:03"),
        (
            datetime(2024, 1, 2, 3, 4, 5, 500000, timezone(timedelta(hours=-5, minutes=-30))),
            "datetimeoffset",
            "2024-01-02 03:04:05.500000-05:30",
        ),
        ("2024-01-02 03:04:05.1234567 +01:00", "datetimeoffset", "2024-01-02 03:04:05.1234567+01:00"),
        ("2024-01-02 03:04:05 -08:00", "datetimeoffset", "2024-01-02 03:04:05-08:00"),
        ("2024-01-02 03:04:05 +01:00", "nvarchar", "2024-01-02 03:04:05 +01:00"),  # a string stays a string
        (date(1, 1, 1), "date", "0001-01-01"),
        (time(23, 59, 59, 120000), "time", "23:59:59.120000"),
        (time(8, 0), "time", "08:00:00"),
        ("6F9619FF-8B86-D011-B42D-00C04FC964FF", "uniqueidentifier", "6f9619ff-8b86-d011-b42d-00c04fc964ff"),
        (uuid.UUID("6F9619FF-8B86-D011-B42D-00C04FC964FF"), "uniqueidentifier", "6f9619ff-8b86-d011-b42d-00c04fc964ff"),
        ("ABC", "nchar", "ABC"),
    ],
)
def test_pg_text(value: Any, sql_type: str, expected: str | None) -> None:
    assert pg_text(value, sql_type) == expected


def test_datetimeoffset_output_converter() -> None:
    value = ms._datetimeoffset(dto_bytes(2017, 3, 16, 10, 35, 18, 500_000_000, -6, 0))
    assert value == datetime(2017, 3, 16, 10, 35, 18, 500000, timezone(timedelta(hours=-6)))
    assert pg_text(value, "datetimeoffset") == "2017-03-16 10:35:18.500000-06:00"
    india = ms._datetimeoffset(dto_bytes(2024, 1, 1, 0, 0, 0, 0, 5, 30))
    assert india.utcoffset() == timedelta(hours=5, minutes=30)


def test_values_in_events_are_converted_by_column_type() -> None:
    instance = CaptureInstance("dbo_t", 1, ("id", "g", "ok"), ("int", "uniqueidentifier", "bit"), "dbo", "t")
    ((_, event),) = rows_to_events(instance, ["id"], [crow(3, 1, 2, 7, "AB-CD", True)])
    assert event.after == {"id": "7", "g": "ab-cd", "ok": "t"}


# --------------------------------------------------------------------------------------------
# The stream against a scripted server


class FakeServer:
    """Just enough of SQL Server CDC: max LSN, change tables, the change functions and time mapping.

    The change function raises error 313 like the server when asked below an instance's low
    endpoint or above the max LSN, so the stream is proven never to ask out of range.
    """

    def __init__(self) -> None:
        self.max_lsn = 0
        self.instances: list[dict[str, Any]] = []
        self.changes: dict[str, list[tuple[Any, ...]]] = {}
        self.local_times: dict[int, datetime] = {}
        self.offset_minutes = 60
        self.fail: BaseException | None = None

    def add(
        self, schema: str, table: str, name: str, start: int, columns: list[tuple[str, str]], created: datetime = T0
    ) -> None:
        self.instances.append(
            dict(schema=schema, table=table, name=name, start=start, created=created, columns=columns)
        )
        self.changes[name] = []

    def instance(self, name: str) -> dict[str, Any]:
        return next(i for i in self.instances if i["name"] == name)

    def commit(self, lsn: int, *changes: tuple[str, int, int, tuple[Any, ...]]) -> None:
        """One transaction: (instance, seqval, operation, values) rows committed at `lsn`."""
        for name, seq, op, values in changes:
            self.changes[name].append(crow(lsn, seq, op, *values))
        self.local_times[lsn] = T0 + timedelta(seconds=lsn)
        self.max_lsn = max(self.max_lsn, lsn)

    def respond(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        if self.fail is not None:
            raise self.fail
        if sql == ms.MAX_LSN_SQL:
            return [(L(self.max_lsn) if self.max_lsn else None,)]
        if sql == ms.CAPTURE_INSTANCES_SQL:
            rows = []
            for i in self.instances:
                rows += instance_rows(i["schema"], i["table"], i["name"], i["start"], i["created"], i["columns"])
            return rows
        m = re.search(r"FROM \[cdc\]\.\[fn_cdc_get_all_changes_((?:[^\]]|\]\])+)\]\(\?, \?, N'all update old'\)", sql)
        if m:
            name = m.group(1).replace("]]", "]")
            limit, lo, hi = params if sql.startswith("SELECT TOP (?)") else (None, *params)
            lo, hi = lsn_to_int(lo), lsn_to_int(hi)
            if lo < self.instance(name)["start"] or hi > self.max_lsn:
                raise pyodbc.ProgrammingError(
                    "42000",
                    "[42000] [SQL Server]An insufficient number of arguments were supplied for the procedure or "
                    "function cdc.fn_cdc_get_all_changes_ ... (313)",
                )
            rows = sorted(
                (r for r in self.changes[name] if lo <= lsn_to_int(r[0]) <= hi), key=lambda r: (r[0], r[1], r[2])
            )
            return rows[:limit] if limit else rows
        if sql == ms.COMMIT_TIMES_SQL:
            lo, hi = lsn_to_int(params[0]), lsn_to_int(params[1])
            return [(L(k), v, self.offset_minutes) for k, v in sorted(self.local_times.items()) if lo <= k <= hi]
        raise AssertionError(f"unexpected SQL: {sql}")


class Harness:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, server: FakeServer) -> None:
        self.server = server
        self.connections: list[FakeConnection] = []

        def connect(spec: ConnectionSpec, *, autocommit: bool = True, database: str | None = None) -> FakeConnection:
            self.connections.append(FakeConnection(server.respond))
            return self.connections[-1]

        monkeypatch.setattr(sqlserver, "odbc_connect", connect)

    def change_calls(self) -> list[tuple[str, tuple[Any, ...]]]:
        return [c for c in self.connections[-1].calls if "fn_cdc_get_all_changes_" in c[0]]

    def clear(self) -> None:
        self.connections[-1].calls.clear()


TABLES = {("dbo", "orders"): ["id"], ("dbo", "lines"): ["order_id", "line"]}


def shop(start: int = 1) -> FakeServer:
    server = FakeServer()
    server.add("dbo", "orders", "dbo_orders", start, [("id", "int"), ("name", "nvarchar")])
    server.add("dbo", "lines", "dbo_lines", start, [("order_id", "int"), ("line", "int"), ("qty", "int")])
    return server


def stream_for(server: FakeServer, monkeypatch: pytest.MonkeyPatch, **kw: Any) -> tuple[MssqlCdcStream, Harness]:
    harness = Harness(monkeypatch, server)
    kw.setdefault("poll_interval_s", 0)
    return MssqlCdcStream(SPEC, TABLES, **kw), harness


def summary(items: list[Any]) -> list[tuple[Any, ...]]:
    out = []
    for item in items:
        if isinstance(item, TxnEnd):
            out.append(("END", item.commit_lsn))
        else:
            out.append((item.position, item.table, item.op, item.key))
    return out


def test_stream_from_now_groups_transactions(monkeypatch: pytest.MonkeyPatch) -> None:
    server = shop()
    server.commit(5, ("dbo_orders", 1, 2, (1, "old")))  # before the stream starts: not delivered
    stream, harness = stream_for(server, monkeypatch)
    stream.start()
    assert stream.read_lsn == 5 and stream.confirmed_lsn == 5
    assert stream.poll(0) == []
    assert harness.change_calls() == []  # an empty range asks for no changes

    server.commit(20, ("dbo_orders", 1, 2, (2, "b")), ("dbo_lines", 2, 2, (2, 1, 5)))
    server.commit(21, ("dbo_lines", 1, 3, (2, 1, 5)), ("dbo_lines", 1, 4, (2, 1, 6)), ("dbo_orders", 2, 1, (1, "old")))
    items = stream.poll(0)
    assert summary(items) == [
        (20, "orders", "insert", {"id": "2"}),
        (20, "lines", "insert", {"order_id": "2", "line": "1"}),
        ("END", 20),
        (21, "lines", "update", {"order_id": "2", "line": "1"}),
        (21, "orders", "delete", {"id": "1"}),
        ("END", 21),
    ]
    assert items[2] == TxnEnd(None, 20, 20, datetime(2024, 1, 1, 11, 0, 20, tzinfo=UTC))  # local 12:00:20 at +01:00
    assert items[0].commit_time == items[2].commit_time
    calls = harness.change_calls()
    assert {c[1][1:] for c in calls} == {(L(6), L(21))}  # (read, max] = [6, 21]
    assert stream.read_lsn == 21
    assert stream.poll(0) == []

    stream.confirm(20)
    stream.confirm(19)
    assert stream.confirmed_lsn == 20


def test_stream_from_a_stored_lsn_reads_strictly_after_it(monkeypatch: pytest.MonkeyPatch) -> None:
    server = shop()
    server.commit(30, ("dbo_orders", 1, 2, (1, "applied")))
    server.commit(31, ("dbo_orders", 1, 2, (2, "next")))
    stream, _ = stream_for(server, monkeypatch)
    stream.start(30)
    assert summary(stream.poll(0)) == [(31, "orders", "insert", {"id": "2"}), ("END", 31)]


def test_stream_refuses_to_start_when_changes_were_cleaned_up(monkeypatch: pytest.MonkeyPatch) -> None:
    server = shop(start=100)
    server.commit(150, ("dbo_orders", 1, 2, (1, "a")))
    stream, harness = stream_for(server, monkeypatch)
    with pytest.raises(ChangesLost, match=r"changes of dbo\.orders from LSN 0x0+29 .*full load"):
        stream.start(40)
    assert harness.connections[0].closed
    stream.start(99)  # 100 is the low endpoint: reading from it loses nothing
    assert summary(stream.poll(0)) == [(150, "orders", "insert", {"id": "1"}), ("END", 150)]


def test_cleanup_past_the_read_position_is_an_error_not_a_skip(monkeypatch: pytest.MonkeyPatch) -> None:
    server = shop()
    server.commit(10, ("dbo_orders", 1, 2, (1, "a")))
    stream, _ = stream_for(server, monkeypatch)
    stream.start(9)
    assert len(stream.poll(0)) == 2
    server.commit(20, ("dbo_orders", 1, 2, (2, "b")))
    for instance in server.instances:  # the cleanup job moved the low water mark past LSN 11
        instance["start"] = 15
    with pytest.raises(ChangesLost):
        stream.poll(0)


def test_a_table_enabled_after_the_start_point_is_no_loss_when_starting_from_now(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = FakeServer()
    server.add("dbo", "orders", "dbo_orders", 1, [("id", "int"), ("name", "nvarchar")])
    server.add("dbo", "lines", "dbo_lines", 500, [("order_id", "int"), ("line", "int"), ("qty", "int")])
    server.commit(100, ("dbo_orders", 1, 2, (1, "a")))
    stream, _ = stream_for(server, monkeypatch)
    stream.start()
    server.commit(600, ("dbo_lines", 1, 2, (1, 1, 1)))
    assert summary(stream.poll(0)) == [(600, "lines", "insert", {"order_id": "1", "line": "1"}), ("END", 600)]


def test_max_rows_never_splits_a_transaction(monkeypatch: pytest.MonkeyPatch) -> None:
    server = shop()
    server.commit(10, ("dbo_orders", 1, 2, (1, "a")), ("dbo_orders", 2, 2, (2, "b")))
    server.commit(11, ("dbo_orders", 1, 2, (3, "c")), ("dbo_lines", 2, 2, (3, 1, 1)), ("dbo_orders", 3, 2, (4, "d")))
    server.commit(12, ("dbo_orders", 1, 2, (5, "e")))
    stream, harness = stream_for(server, monkeypatch, max_rows=3)
    stream.start(9)
    first = stream.poll(0)
    assert summary(first) == [(10, "orders", "insert", {"id": "1"}), (10, "orders", "insert", {"id": "2"}), ("END", 10)]
    assert stream.read_lsn == 10
    assert [c[1][0] for c in harness.change_calls()] == [3, 3]  # TOP (3) per table
    second = stream.poll(0)  # orders hit the limit again (at LSN 12): 12 waits for the next poll
    assert [s[0] for s in summary(second)] == [11, 11, 11, "END"]
    assert [s[1] for s in summary(second)][:3] == ["orders", "lines", "orders"]
    assert summary(stream.poll(0)) == [(12, "orders", "insert", {"id": "5"}), ("END", 12)]
    assert stream.read_lsn == 12


def test_one_transaction_larger_than_max_rows_is_read_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    server = shop()
    server.commit(10, *[("dbo_orders", i, 2, (i, "x")) for i in range(1, 6)], ("dbo_lines", 9, 2, (1, 1, 1)))
    server.commit(11, ("dbo_orders", 1, 2, (99, "y")))
    stream, harness = stream_for(server, monkeypatch, max_rows=2)
    stream.start(9)
    harness.clear()
    items = stream.poll(0)
    assert [s[0] for s in summary(items)] == [10] * 6 + ["END"]
    assert stream.read_lsn == 10
    whole = [c for c in harness.change_calls() if not c[0].startswith("SELECT TOP")]
    assert {c[1] for c in whole} == {(L(10), L(10))}
    assert summary(stream.poll(0)) == [(11, "orders", "insert", {"id": "99"}), ("END", 11)]


def test_two_capture_instances_hand_over_without_duplicates(monkeypatch: pytest.MonkeyPatch) -> None:
    server = shop()
    server.commit(10, ("dbo_orders", 1, 2, (1, "a")))
    stream, _ = stream_for(server, monkeypatch)
    stream.start(9)
    assert len(stream.poll(0)) == 2
    # A column was added: a second capture instance from LSN 30 on; both capture while both exist.
    server.add(
        "dbo",
        "orders",
        "dbo_orders_v2",
        30,
        [("id", "int"), ("name", "nvarchar"), ("qty", "int")],
        created=T0 + timedelta(hours=1),
    )
    server.commit(20, ("dbo_orders", 1, 2, (2, "b")))
    server.commit(
        40,
        ("dbo_orders", 1, 3, (2, "b")),
        ("dbo_orders", 1, 4, (2, "c")),
        ("dbo_orders_v2", 1, 3, (2, "b", None)),
        ("dbo_orders_v2", 1, 4, (2, "c", 7)),
    )
    items = stream.poll(0)
    assert summary(items) == [
        (20, "orders", "insert", {"id": "2"}),
        ("END", 20),
        (40, "orders", "update", {"id": "2"}),
        ("END", 40),
    ]
    assert items[2].after == {"id": "2", "name": "c", "qty": "7"}  # from the newer instance


def test_idle_range_and_idle_txn_end(monkeypatch: pytest.MonkeyPatch) -> None:
    server = shop()
    server.add("dbo", "other", "dbo_other", 1, [("k", "int")])
    stream, _ = stream_for(server, monkeypatch, idle_txn_end=True)
    stream.start()
    assert stream.poll(0) == []  # max LSN did not move
    server.commit(50, ("dbo_other", 1, 2, (1,)))  # a table outside the pipeline changed
    (end,) = stream.poll(0)
    assert isinstance(end, TxnEnd) and (end.commit_lsn, end.end_lsn) == (50, 50)
    stream2, _ = stream_for(server, monkeypatch)
    stream2.start(49)
    assert stream2.poll(0) == []


def test_table_without_capture_instance_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    server = FakeServer()
    server.add("dbo", "orders", "dbo_orders", 1, [("id", "int"), ("name", "nvarchar")])
    stream, harness = stream_for(server, monkeypatch)
    with pytest.raises(ConnectorError, match=r"dbo\.lines has no CDC capture instance.*@source_name = N'lines'"):
        stream.start()
    assert harness.connections[0].closed


def test_uncaptured_key_column_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    server = shop()
    harness = Harness(monkeypatch, server)
    stream = MssqlCdcStream(SPEC, {("dbo", "orders"): ["id", "region"]}, poll_interval_s=0)
    with pytest.raises(ConnectorError, match="does not capture key column"):
        stream.start()
    assert harness.connections[0].closed


def test_driver_errors_while_polling_are_translated(monkeypatch: pytest.MonkeyPatch) -> None:
    server = shop()
    stream, _ = stream_for(server, monkeypatch)
    stream.start()
    server.fail = pyodbc.OperationalError("08S01", "[08S01] [ODBC Driver 18]Communication link failure (10054)")
    with pytest.raises(ConnectionRefused):
        stream.poll(0)


def test_stream_lifecycle(monkeypatch: pytest.MonkeyPatch) -> None:
    server = shop()
    stream, harness = stream_for(server, monkeypatch)
    with pytest.raises(RuntimeError):
        stream.poll(0)
    with stream:
        stream.start()
    assert harness.connections[0].closed
    with pytest.raises(ValidationFailed):
        MssqlCdcStream(SPEC, {})


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_poll_waits_up_to_the_timeout_when_nothing_is_new(monkeypatch: pytest.MonkeyPatch) -> None:
    server = shop()
    stream, harness = stream_for(server, monkeypatch, poll_interval_s=0.05)
    stream.start()
    clock = FakeClock()
    monkeypatch.setattr(ms, "time", clock)
    harness.clear()
    assert stream.poll(0.2) == []
    assert sum(clock.slept) == pytest.approx(0.2)
    reads = [c for c in harness.connections[0].calls if c[0] == ms.MAX_LSN_SQL]
    assert 4 <= len(reads) <= 5  # one read per interval until the timeout, no busy loop

    server.commit(10, ("dbo_orders", 1, 2, (1, "a")))
    clock.slept.clear()
    assert len(stream.poll(5.0)) == 2  # the read due now finds it
    assert sum(clock.slept) <= 0.05 + 1e-9


def test_real_driver_connect_to_a_closed_port_is_translated() -> None:
    """The stream's own `_connect`, through unixODBC and FreeTDS for real: nothing listens."""
    if "FreeTDS" not in pyodbc.drivers():
        pytest.skip("FreeTDS is not registered with unixODBC")
    spec = ConnectionSpec(
        kind="sqlserver",
        host="127.0.0.1",
        port=free_port(),
        database="Shop",
        username="sa",
        password="pw",
        options={"driver": "FreeTDS"},
        connect_timeout_s=2,
    )
    stream = MssqlCdcStream(spec, TABLES)
    with pytest.raises(ConnectorError) as caught:
        stream.start()
    assert isinstance(caught.value, ConnectionRefused | ConnectTimeout)
    assert stream._conn is None
