"""The portable normal form's Python reference (pure): what both sides must render for each SQL Server type,
the row text, the row hash and the segment checksum. The expected texts here are what the T-SQL of
core.datacheck.mssql must produce on a server, and what the PostgreSQL expressions produce
(tests/core/datacheck/test_portable_pg.py holds them to this reference on a real PostgreSQL)."""

from __future__ import annotations

import hashlib
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal

import pytest

from core.datacheck.portable import (
    Norm,
    hash_halves,
    hash_text,
    pair,
    pair_columns,
    row_hash,
    row_text,
    segment_checksum,
    value_text,
)
from core.errors import StudioError
from core.typemap import map_type

# (SQL Server type, value as SQL Server holds it, the normalized text both sides must show)
CASES: list[tuple[str, object, str]] = [
    ("bit", True, "true"),
    ("bit", False, "false"),
    ("tinyint", 255, "255"),
    ("smallint", -32768, "-32768"),
    ("int", 0, "0"),
    ("bigint", -9223372036854775808, "-9223372036854775808"),
    ("decimal(18,4)", Decimal("1.2300"), "1.23"),
    ("decimal(18,4)", Decimal("-0.5000"), "-0.5"),
    ("decimal(18,4)", Decimal("100.0000"), "100"),
    ("decimal(18,4)", Decimal("0.0000"), "0"),
    ("decimal(18,4)", Decimal("-0.0000"), "0"),
    ("decimal(10,0)", Decimal("1200"), "1200"),
    ("numeric(5,5)", Decimal("0.10000"), "0.1"),
    ("decimal(38,10)", Decimal("1234567890123456789012345678.0000000001"), "1234567890123456789012345678.0000000001"),
    ("money", Decimal("12.3400"), "12.34"),
    ("money", Decimal("-922337203685477.5808"), "-922337203685477.5808"),
    ("smallmoney", Decimal("1.5000"), "1.5"),
    ("date", date(1, 1, 1), "0001-01-01"),
    ("date", "2024-02-29", "2024-02-29"),
    ("time(7)", "23:59:59.9999999", "23:59:59.999999"),  # 100 ns cut, as pyodbc cuts it
    ("time(7)", "12:34:56.1234567", "12:34:56.123456"),
    ("time(0)", time(12, 0, 1), "12:00:01.000000"),
    ("time(3)", "01:02:03.456", "01:02:03.456000"),
    ("datetime", "2024-01-02 03:04:05.997", "2024-01-02T03:04:05.997000"),
    ("datetime", "1753-01-01 00:00:00.000", "1753-01-01T00:00:00.000000"),
    ("smalldatetime", "2024-01-02 03:04:00", "2024-01-02T03:04:00.000000"),
    ("datetime2(7)", "2024-01-02 03:04:05.1234567", "2024-01-02T03:04:05.123456"),
    ("datetime2(7)", "9999-12-31 23:59:59.9999999", "9999-12-31T23:59:59.999999"),
    ("datetime2(7)", datetime(1, 1, 1), "0001-01-01T00:00:00.000000"),
    ("datetime2(2)", "2024-01-02 03:04:05.12", "2024-01-02T03:04:05.120000"),
    ("datetimeoffset(7)", "2024-01-02 03:04:05.1234567 +05:30", "2024-01-01T21:34:05.123456"),
    ("datetimeoffset(7)", "2024-01-01 00:00:00 -08:00", "2024-01-01T08:00:00.000000"),
    (
        "datetimeoffset(0)",
        datetime(2024, 6, 30, 23, 59, 59, tzinfo=timezone(timedelta(hours=14))),
        "2024-06-30T09:59:59.000000",
    ),
    ("uniqueidentifier", "DE305D54-75B4-431B-ADB2-EB6B9E546014", "de305d54-75b4-431b-adb2-eb6b9e546014"),
    ("varbinary(max)", b"\x00\xff\x10", "00ff10"),
    ("varbinary(16)", b"", ""),
    ("binary(4)", b"\x01\x02\x00\x00", "01020000"),
    ("nvarchar(50)", "héllo wörld", "héllo wörld"),
    ("nvarchar(50)", "", ""),
    ("nvarchar(50)", "  two spaces  ", "  two spaces  "),  # varying length: trailing spaces count
    ("nchar(5)", "ab   ", "ab"),  # fixed length: the padding does not
    ("char(3)", "   ", ""),
    ("nvarchar(max)", "😀 outside the BMP", "😀 outside the BMP"),
    ("xml", '<a b="1"/>', '<a b="1"/>'),
]


def norm_of(mssql_type: str) -> Norm:
    return pair(mssql_type, map_type(mssql_type, "sqlserver", "postgresql").sql)


@pytest.mark.parametrize(("mssql_type", "value", "expected"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_value_texts(mssql_type: str, value: object, expected: str) -> None:
    norm = norm_of(mssql_type)
    assert value_text(norm, value) == expected
    assert hash_text(norm, value) == expected  # only floats enter the hash differently
    assert value_text(norm, None) is None and hash_text(norm, None) is None


def test_floats_enter_the_hash_as_their_bits() -> None:
    f8, f4 = norm_of("float"), norm_of("real")
    assert (f8.kind, f4.kind) == ("float8", "float4")
    assert hash_text(f8, 0.1) == "3fb999999999999a"
    assert hash_text(f8, -0.0) == "8000000000000000"  # not 0.0: the bits differ, as replicated they stay
    assert hash_text(f8, 1.7976931348623157e308) == "7fefffffffffffff"
    assert hash_text(f8, 5e-324) == "0000000000000001"
    assert hash_text(f4, 0.1) == "3dcccccd"
    assert hash_text(f4, -1.5) == "bfc00000"
    assert value_text(f8, 0.1) == "0.1"  # compared rows: a number, within core.datacheck.compare's tolerance


def test_pairs_follow_the_lower_precision_and_fixed_length_of_either_side() -> None:
    assert pair("datetime2(7)", "timestamp(6) without time zone") == Norm("timestamp", 6)
    assert pair("datetime2(7)", "timestamp(3) without time zone") == Norm("timestamp", 3)
    assert pair("datetime2(2)", "timestamp without time zone") == Norm("timestamp", 2)
    assert pair("datetime", "timestamp(3) without time zone") == Norm("timestamp", 3)
    assert pair("smalldatetime", "timestamp(0) without time zone") == Norm("timestamp", 0)
    assert pair("datetimeoffset", "timestamp with time zone") == Norm("timestamptz", 6)
    assert pair("time(7)", "time(6) without time zone") == Norm("time", 6)
    assert pair("float", "real") == Norm("float4")  # a user-made real target: compared as float4
    assert pair("nvarchar(10)", "character(10)") == Norm("text", trim=True)
    assert pair("nchar(10)", "character varying(10)") == Norm("text", trim=True)
    assert pair("nvarchar(10)", "character varying(10)") == Norm("text", trim=False)
    assert pair("sql_variant", "text") == Norm("text")  # unknown types compare as their text


def test_pair_columns_by_direction() -> None:
    assert pair_columns(["integer"], ["integer"], "postgresql", "postgresql") is None
    assert pair_columns(["bit"], ["boolean"], "sqlserver", "postgresql") == (Norm("bool"),)
    assert pair_columns(["boolean"], ["bit"], "postgresql", "sqlserver") == (Norm("bool"),)
    with pytest.raises(StudioError, match="do not compare sqlserver with sqlserver"):
        pair_columns(["int"], ["int"], "sqlserver", "sqlserver")


def test_precision_below_six_rounds_half_up_after_the_microsecond_cut() -> None:
    n3 = Norm("timestamp", 3)
    assert value_text(n3, "2024-01-02 03:04:05.1234999") == "2024-01-02T03:04:05.123000"
    assert value_text(n3, "2024-01-02 03:04:05.1235") == "2024-01-02T03:04:05.124000"
    assert value_text(n3, "2024-12-31 23:59:59.9995") == "2025-01-01T00:00:00.000000"  # carries into the year
    # the 100 ns digit is cut before rounding: .1234995 -> .123499 -> .123, not .1235 -> .124
    assert value_text(n3, "2024-01-02 03:04:05.1234995") == "2024-01-02T03:04:05.123000"
    assert value_text(Norm("timestamp", 0), "2024-01-02 03:04:05.5") == "2024-01-02T03:04:06.000000"


def test_row_text_escapes_fields_and_keeps_null_apart_from_empty() -> None:
    assert row_text(["1", None]) == "1|\\N|"
    assert row_text(["1", ""]) == "1||"
    assert row_text(["\\N"]) == "\\\\N|"  # a text that reads \N is not NULL
    assert row_text(["a|b", "c"]) == "a\\|b|c|"
    assert row_text(["a", "b|c"]) == "a|b\\|c|"  # the two differ although their raw concatenations match
    assert row_hash(["1", None]) != row_hash(["1", ""])
    assert row_hash(["a|b", "c"]) != row_hash(["a", "b|c"])
    assert row_hash(["", None]) != row_hash([None, ""])


def test_row_hash_is_sha256_of_the_utf8_row_text() -> None:
    """The vectors a SQL Server must reproduce: SELECT HASHBYTES('SHA2_256', CAST(N'1|\\N|' COLLATE
    Latin1_General_100_BIN2_UTF8 AS varchar(max))) is 0xB572D148..."""
    digest = row_hash(["1", None])
    assert digest.hex() == "b572d1483b9c71367a4af7d3370a9686e3b4d798bdf76cc5f1fd60c04d1ef682"
    assert hash_halves(digest) == (-1250766520, 1000108342)  # 0xB572D148 as int, 0x3B9C7136
    assert row_hash(["é"]) == hashlib.sha256("é|".encode()).digest()  # UTF-8, not UTF-16 or Latin-1
    assert row_hash(["😀"]) == hashlib.sha256(b"\xf0\x9f\x98\x80|").digest()


def test_segment_checksum_is_order_free_and_counts_rows() -> None:
    rows = [["1", None], ["1", ""], ["2", "x"]]
    assert segment_checksum(rows) == segment_checksum(list(reversed(rows)))
    count, first, second = segment_checksum(rows)
    assert count == 3
    assert (first, second) == tuple(map(sum, zip(*(hash_halves(row_hash(r)) for r in rows), strict=True)))
    assert segment_checksum([]) == (0, 0, 0)
    assert segment_checksum(rows[:2]) == (2, -692940711, -977874991)
    assert segment_checksum(rows[:2]) != segment_checksum([["1", None], ["1", "x"]])


def _tsql_trim(text: str) -> str:
    """A model of the T-SQL core.datacheck.mssql uses to drop trailing zeros (REPLACE, RTRIM of spaces)."""
    stripped = text.replace("0", " ").rstrip(" ").replace(" ", "0")
    return stripped.replace(".", " ").rstrip(" ").replace(" ", ".")


@pytest.mark.parametrize(
    "text", ["1.2300", "-0.5000", "100.0000", "0.0010", "10.01", "1234567890123456789012345678.0000000001", "-7.5"]
)
def test_the_trailing_zero_trick_matches_the_reference(text: str) -> None:
    assert _tsql_trim(text) == value_text(Norm("decimal"), Decimal(text))
