"""Debezium SQL Server JSON values (no schemas) -> PostgreSQL text, per SQL Server column type.

The JSON values are built from Debezium's SQL Server connector documentation ("Data type
mappings", time.precision.mode=adaptive, decimal.handling.mode=string, binary.handling.mode=hex):
date = days since the epoch; time(0-3) ms, time(4-6) µs, time(7) ns past midnight;
datetime/smalldatetime/datetime2(0-3) ms, datetime2(4-6) µs, datetime2(7) ns since the epoch;
datetimeoffset an ISO string in UTC (ZonedTimestamp); the documented example: datetime2
'2018-06-20 15:13:16.945104' is MicroTimestamp 1529507596945104. No SQL Server was measured here.

Each converter's text is checked as exact text, and on a real PostgreSQL: cast to the type
core/typemap.py maps the SQL Server type to, it must equal the expected value.
"""

from __future__ import annotations

import pytest

from core.kafka.mssql_values import converter_for
from core.kafka.values import TableConverter
from core.typemap import map_type
from tests.pgcluster import PgCluster

# (SQL Server type as the catalog renders it, Debezium's JSON value, the converter's text, the value as
# PostgreSQL prints it in the mapped type)
CASES: list[tuple[str, object, str, str]] = [
    ("bit", True, "t", "true"),
    ("bit", False, "f", "false"),
    ("tinyint", 255, "255", "255"),
    ("smallint", -32768, "-32768", "-32768"),
    ("int", 2147483647, "2147483647", "2147483647"),
    ("bigint", -9223372036854775808, "-9223372036854775808", "-9223372036854775808"),
    ("real", 3.25, "3.25", "3.25"),
    ("float", -1.7976931348623157e308, "-1.7976931348623157e+308", "-1.7976931348623157e+308"),
    ("decimal(18,4)", "12345678901234.5678", "12345678901234.5678", "12345678901234.5678"),
    ("numeric(5,2)", "-0.10", "-0.10", "-0.10"),
    ("money", "-922337203685477.5808", "-922337203685477.5808", "-922337203685477.5808"),
    ("smallmoney", "214748.3647", "214748.3647", "214748.3647"),
    ("nvarchar(50)", "ünï \t\n'\"€😀", "ünï \t\n'\"€😀", "ünï \t\n'\"€😀"),
    ("varchar(max)", "plain", "plain", "plain"),
    ("ntext", "long", "long", "long"),
    ("xml", "<a>b</a>", "<a>b</a>", "<a>b</a>"),
    (
        "uniqueidentifier",
        "6F9619FF-8B86-D011-B42D-00C04FC964FF",
        "6f9619ff-8b86-d011-b42d-00c04fc964ff",
        "6f9619ff-8b86-d011-b42d-00c04fc964ff",
    ),
    ("varbinary(max)", "00ff105c61620a", "\\x00ff105c61620a", "\\x00ff105c61620a"),
    ("binary(4)", "DEADBEEF", "\\xDEADBEEF", "\\xdeadbeef"),
    ("varbinary(16)", "", "\\x", "\\x"),
    ("rowversion", "00000000000007d1", "\\x00000000000007d1", "\\x00000000000007d1"),
    ("image", "ff", "\\xff", "\\xff"),
    # date: days since 1970-01-01 (SQL Server dates run from 0001-01-01 to 9999-12-31)
    ("date", 19782, "2024-02-29", "2024-02-29"),
    ("date", -719162, "0001-01-01", "0001-01-01"),
    ("date", 2932896, "9999-12-31", "9999-12-31"),
    # time(0-3): milliseconds past midnight; (4-6): microseconds; (7): nanoseconds
    ("time(0)", 49556000, "13:45:56", "13:45:56"),
    ("time(3)", 49556123, "13:45:56.123", "13:45:56.123"),
    ("time(6)", 49556123456, "13:45:56.123456", "13:45:56.123456"),
    ("time(7)", 49556123456700, "13:45:56.1234567", "13:45:56.123457"),  # PostgreSQL rounds to µs
    ("time(7)", 86399999999900, "23:59:59.9999999", "24:00:00"),
    ("time(7)", 0, "00:00:00", "00:00:00"),
    # datetime / smalldatetime / datetime2(0-3): milliseconds since the epoch (UTC wall clock)
    ("datetime", 1709211956123, "2024-02-29 13:05:56.123", "2024-02-29 13:05:56.123"),
    ("datetime", -2208988800000, "1900-01-01 00:00:00", "1900-01-01 00:00:00"),
    ("smalldatetime", 1709211900000, "2024-02-29 13:05:00", "2024-02-29 13:05:00"),
    ("datetime2(0)", -62135596800000, "0001-01-01 00:00:00", "0001-01-01 00:00:00"),
    ("datetime2(3)", 253402300799999, "9999-12-31 23:59:59.999", "9999-12-31 23:59:59.999"),
    # datetime2(4-6): microseconds; the documented example
    ("datetime2(6)", 1529507596945104, "2018-06-20 15:13:16.945104", "2018-06-20 15:13:16.945104"),
    ("datetime2(4)", -1000, "1969-12-31 23:59:59.999", "1969-12-31 23:59:59.999"),
    # datetime2(7): nanoseconds; PostgreSQL keeps microseconds (rounded)
    ("datetime2(7)", 1529507596945104700, "2018-06-20 15:13:16.9451047", "2018-06-20 15:13:16.945105"),
    ("datetime2(7)", 1529507596000000000, "2018-06-20 15:13:16", "2018-06-20 15:13:16"),
    ("datetime2", 1, "1970-01-01 00:00:00.000000001", "1970-01-01 00:00:00"),
    # datetimeoffset: ZonedTimestamp, ISO text in UTC
    (
        "datetimeoffset(7)",
        "2024-01-01T21:34:05.1234567Z",
        "2024-01-01 21:34:05.1234567+00",
        "2024-01-01 21:34:05.123457+00",
    ),
    ("datetimeoffset(0)", "0001-01-01T00:00:00Z", "0001-01-01 00:00:00+00", "0001-01-01 00:00:00+00"),
    ("datetimeoffset(3)", "2024-06-30T22:00:00.500Z", "2024-06-30 22:00:00.5+00", "2024-06-30 22:00:00.5+00"),
]


@pytest.mark.parametrize(("mssql_type", "value", "text", "_pg"), CASES, ids=[f"{c[0]}={c[1]!r}" for c in CASES])
def test_converter_text(mssql_type: str, value: object, text: str, _pg: str) -> None:
    assert converter_for(mssql_type)(value) == text


def test_postgresql_reads_the_text_into_the_mapped_type(pg: PgCluster, pg_db: str) -> None:
    conn = pg.connect(pg_db)
    try:
        with conn.cursor() as cur:
            cur.execute("SET TIME ZONE 'UTC'")
            cur.execute("SET extra_float_digits = 1")
            for mssql_type, value, _text, printed in CASES:
                pg_type = map_type(mssql_type, "sqlserver", "postgresql", "t.c").sql
                cur.execute(f"SELECT %s::{pg_type}::text", (converter_for(mssql_type)(value),))
                assert cur.fetchone()[0] == printed, (mssql_type, value, pg_type)
    finally:
        conn.close()


def test_unknown_types_pass_text_through() -> None:
    assert converter_for("hierarchyid")("/1/") == "/1/"
    assert converter_for("sql_variant")(5) == "5"
    assert converter_for("NVARCHAR(10)")("x") == "x"
    assert converter_for("DateTime2(3)")(0) == "1970-01-01 00:00:00"


def envelope(op: str, before: dict | None, after: dict | None, serial: int = 1) -> dict:
    """A Debezium SQL Server change event value without schema, as documented."""
    return {
        "before": before,
        "after": after,
        "op": op,
        "ts_ms": 1559729471739,
        "source": {
            "version": "3.2.0.Final",
            "connector": "sqlserver",
            "name": "server1",
            "ts_ms": 1559729468470,
            "snapshot": "false",
            "db": "testDB",
            "schema": "dbo",
            "table": "customers",
            "change_lsn": "00000027:00000758:0003",
            "commit_lsn": "00000027:00000758:0005",
            "event_serial_no": serial,
        },
    }


def test_table_converter_with_sqlserver_types() -> None:
    conv = TableConverter(
        "dbo",
        "customers",
        {"id": "int", "at": "datetime2(7)", "ok": "bit", "g": "uniqueidentifier"},
        ["id"],
        converter_for,
    )
    ev = conv.event(
        envelope(
            "c", None, {"id": 1, "at": 1529507596945104700, "ok": True, "g": "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"}
        ),
        7,
    )
    assert (ev.op, ev.key, ev.position) == ("insert", {"id": "1"}, 7)
    assert ev.after == {
        "id": "1",
        "at": "2018-06-20 15:13:16.9451047",
        "ok": "t",
        "g": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
    }
    assert ev.commit_time is not None and ev.commit_time.timestamp() == 1559729468.47
    ev = conv.event(
        envelope("u", {"id": 1, "at": 0, "ok": True, "g": None}, {"id": 1, "at": 0, "ok": False, "g": None}, 2), 8
    )
    assert (ev.op, ev.key, ev.after["ok"]) == ("update", {"id": "1"}, "f")
    # A primary-key change: a delete of the old key and a create of the new one (same LSNs, serial 1 and 2);
    # no `lsn` field in a SQL Server source, so each is applied as it is (the delete, then the insert).
    old = {"id": 1, "at": 0, "ok": False, "g": None}
    delete = conv.event(envelope("d", old, None, 1), 9)
    create = conv.event(envelope("c", None, {**old, "id": 2}, 2), 11)
    assert (delete.op, delete.key, create.op, create.key) == ("delete", {"id": "1"}, "insert", {"id": "2"})


def test_postgresql_converters_are_unchanged_by_default() -> None:
    conv = TableConverter("s", "t", {"id": "integer", "at": "timestamp(3) without time zone"}, ["id"])
    ev = conv.event({"op": "c", "before": None, "after": {"id": 1, "at": 1000}, "source": {"lsn": 5}}, 1)
    assert ev.after == {"id": "1", "at": "1970-01-01 00:00:01"}
