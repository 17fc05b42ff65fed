"""The T-SQL a data check sends to SQL Server, without a server: per type the value expressions (CONVERT
styles, DATEPART(microsecond), SWITCHOFFSET, LOWER, RTRIM), the hash parts (float bits, text escaped under a
binary collation), HASHBYTES over UTF-8, the segment sums, keys in byte order with their parameters, and the
fallback of servers without UTF-8 collations. What the expressions must evaluate to is the reference of
core.datacheck.portable (tests/core/datacheck/test_portable.py)."""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime, time, timedelta, timezone

import pytest

from core.datacheck.mssql import (
    BIN2,
    UTF8_BIN2,
    MssqlColumn,
    MssqlShape,
    hash_text_expr,
    key_expr,
    param,
    raw_key_expr,
    value_expr,
)
from core.datacheck.portable import NULL_TEXT, Norm, pair
from core.typemap import map_type


def col(name: str, mssql_type: str) -> tuple[MssqlColumn, Norm]:
    return MssqlColumn(name, mssql_type), pair(mssql_type, map_type(mssql_type, "sqlserver", "postgresql").sql)


def shape(*columns: tuple[str, str], key: int = 1, utf8: bool = True, table: str = "Orders") -> MssqlShape:
    pairs = [col(n, t) for n, t in columns]
    cols = tuple(c for c, _ in pairs)
    return MssqlShape("sales", table, cols[:key], cols, tuple(n for _, n in pairs), utf8=utf8)


def balanced(statement: str) -> bool:
    """Parentheses balance outside string literals, and no Python format braces leaked into the T-SQL."""
    depth = 0
    for chunk in re.split(r"N?'(?:[^']|'')*'", statement):
        if "{" in chunk or "}" in chunk:
            return False
        for ch in chunk:
            depth += {"(": 1, ")": -1}.get(ch, 0)
            if depth < 0:
                return False
    return depth == 0


# (SQL Server type, the value expression of column [c])
VALUES = [
    ("int", "CAST([c] AS varchar(20))"),
    ("bigint", "CAST([c] AS varchar(20))"),
    ("bit", "CASE WHEN [c] = 1 THEN 'true' WHEN [c] = 0 THEN 'false' END"),
    ("date", "CONVERT(varchar(10), [c], 23)"),
    ("uniqueidentifier", "LOWER(CONVERT(varchar(36), [c]))"),
    ("varbinary(max)", "LOWER(CONVERT(varchar(max), CAST([c] AS varbinary(max)), 2))"),
    ("image", "LOWER(CONVERT(varchar(max), CAST([c] AS varbinary(max)), 2))"),
    ("nvarchar(50)", "CAST([c] AS nvarchar(max))"),
    ("ntext", "CAST([c] AS nvarchar(max))"),
    ("nchar(5)", "RTRIM(CAST([c] AS nvarchar(max)))"),
    ("xml", "CAST([c] AS nvarchar(max))"),
    ("float", "CONVERT(varchar(30), [c], 2)"),
    (
        "datetime2(7)",
        "CONVERT(varchar(19), [c], 126) + '.' + RIGHT('00000' + CAST(DATEPART(microsecond, [c]) AS varchar(6)), 6)",
    ),
    (
        "time(7)",
        "CONVERT(varchar(8), [c], 108) + '.' + RIGHT('00000' + CAST(DATEPART(microsecond, [c]) AS varchar(6)), 6)",
    ),
]


@pytest.mark.parametrize(("mssql_type", "expected"), VALUES)
def test_value_expressions(mssql_type: str, expected: str) -> None:
    column, norm = col("c", mssql_type)
    assert value_expr(column, norm) == expected


def test_decimals_drop_trailing_zeros_and_money_goes_through_decimal() -> None:
    dec = value_expr(*col("c", "decimal(18,4)"))
    assert dec.startswith("CASE WHEN [c] = 0 THEN '0' ELSE ")
    assert "CONVERT(varchar(50), [c])" in dec and "RTRIM(REPLACE(" in dec and "'.', ' '" in dec
    assert value_expr(*col("c", "decimal(10,0)")) == "CASE WHEN [c] = 0 THEN '0' ELSE CONVERT(varchar(50), [c]) END"
    assert "CONVERT(varchar(50), CAST([c] AS decimal(19,4)))" in value_expr(*col("c", "money"))
    assert "CAST([c] AS decimal(10,4))" in value_expr(*col("c", "smallmoney"))
    assert "RTRIM(REPLACE(" in value_expr(*col("c", "money"))  # money keeps 4 digits: trimmed too


def test_datetimes_are_read_as_their_milliseconds_and_offsets_in_utc() -> None:
    dt = value_expr(*col("c", "datetime"))
    assert "CONVERT(varchar(19), CAST([c] AS datetime2(3)), 126)" in dt
    assert "DATEPART(microsecond, CAST([c] AS datetime2(3)))" in dt
    assert "CAST([c] AS datetime2(0))" in value_expr(*col("c", "smalldatetime"))
    dto = value_expr(*col("c", "datetimeoffset(7)"))
    assert "CONVERT(varchar(19), SWITCHOFFSET([c], '+00:00'), 126)" in dto
    assert "DATEPART(microsecond, SWITCHOFFSET([c], '+00:00'))" in dto
    assert "DATEADD" not in dto  # formatting cuts to microseconds by itself


def test_a_lower_target_precision_cuts_to_microseconds_then_rounds() -> None:
    column = MssqlColumn("c", "datetime2(7)")
    expr = value_expr(column, pair("datetime2(7)", "timestamp(3) without time zone"))
    cut = "DATEADD(nanosecond, -(DATEPART(nanosecond, [c]) % 1000), [c])"
    assert f"CONVERT(varchar(19), CAST({cut} AS datetime2(3)), 126)" in expr
    expr = value_expr(MssqlColumn("c", "datetime2(4)"), pair("datetime2(4)", "timestamp(2) without time zone"))
    assert "CAST([c] AS datetime2(2))" in expr and "DATEADD" not in expr
    expr = value_expr(MssqlColumn("c", "time(7)"), pair("time(7)", "time(0) without time zone"))
    assert f"CAST({cut} AS time(0))" in expr


def test_hash_parts_floats_as_bits_text_escaped_under_a_binary_collation() -> None:
    assert hash_text_expr(*col("c", "float")) == "LOWER(CONVERT(varchar(16), CAST(CAST([c] AS float) AS binary(8)), 2))"
    assert hash_text_expr(*col("c", "real")) == "LOWER(CONVERT(varchar(8), CAST(CAST([c] AS real) AS binary(4)), 2))"
    assert hash_text_expr(*col("c", "nvarchar(9)")) == (
        f"REPLACE(REPLACE(CAST([c] AS nvarchar(max)) COLLATE {BIN2}, N'\\', N'\\\\'), N'|', N'\\|')"
    )
    assert hash_text_expr(*col("c", "int")) == value_expr(*col("c", "int"))  # digits need no escaping


def test_checksum_hashes_the_utf8_row_text_and_sums_two_halves() -> None:
    s = shape(("id", "int"), ("name", "nvarchar(40)"), ("at", "datetime2(7)"), ("ratio", "float"))
    query, params = s.checksum(None, None)
    assert params == []
    assert query.startswith(
        "SELECT COUNT_BIG(*), ISNULL(SUM(CAST(CAST(SUBSTRING([r].[h], 1, 4) AS int) AS bigint)), 0), "
        "ISNULL(SUM(CAST(CAST(SUBSTRING([r].[h], 5, 4) AS int) AS bigint)), 0) FROM (SELECT HASHBYTES('SHA2_256', "
        "CAST((CAST(N'' AS nvarchar(max)) + ISNULL(CAST([id] AS varchar(20)), N'\\N') + N'|' + "
    )
    assert query.endswith(f") COLLATE {UTF8_BIN2} AS varchar(max))) AS [h] FROM [sales].[Orders] WHERE 1 = 1) AS [r]")
    assert query.count("ISNULL(") == 4 + 2 and query.count("+ N'|'") == 4  # a field and a separator per column
    assert "CAST(CAST([ratio] AS float) AS binary(8))" in query and "CONVERT(varchar(30), [ratio], 2)" not in query
    assert f"N'{NULL_TEXT}'" in query and balanced(query)


def test_without_utf8_collations_the_checksum_is_a_count_and_text_keys_use_bin2() -> None:
    s = shape(("name", "nvarchar(40)"), ("n", "int"), utf8=False)
    assert not s.can_hash
    query, params = s.checksum(("m",), None)
    assert query == (
        "SELECT COUNT_BIG(*) FROM [sales].[Orders] WHERE "
        f"CAST([name] AS nvarchar(max)) COLLATE {BIN2} > CAST(? AS nvarchar(max)) COLLATE {BIN2}"
    )
    assert params == ["m"]
    assert "HASHBYTES" not in query and "UTF8" not in s.boundaries(None, None, 5)[0]
    assert shape(("name", "nvarchar(40)")).can_hash


def test_text_keys_compare_as_utf8_bytes_and_uuid_keys_as_canonical_text() -> None:
    text_col, text_norm = col("k", "nvarchar(40)")
    as_bytes = f"CAST(CAST(CAST([k] AS nvarchar(max)) COLLATE {UTF8_BIN2} AS varchar(max)) AS varbinary(max))"
    assert key_expr("[k]", text_col, text_norm, True) == as_bytes
    assert key_expr("?", text_col, text_norm, True) == as_bytes.replace("[k]", "?")
    fixed_col, fixed_norm = col("k", "nchar(10)")
    assert key_expr("[k]", fixed_col, fixed_norm, True).startswith("CAST(CAST(RTRIM(CAST([k] AS nvarchar(max)))")
    uid_col, uid_norm = col("k", "uniqueidentifier")
    assert key_expr("[k]", uid_col, uid_norm, True) == f"CONVERT(char(36), [k]) COLLATE {BIN2}"
    assert key_expr("?", uid_col, uid_norm, True) == f"CONVERT(char(36), CAST(? AS uniqueidentifier)) COLLATE {BIN2}"
    assert raw_key_expr(uid_col, uid_norm, True) == "LOWER(CONVERT(varchar(36), [k]))"
    int_col, int_norm = col("k", "bigint")
    assert key_expr("[k]", int_col, int_norm, True) == "[k]" and key_expr("?", int_col, int_norm, True) == "?"


def test_temporal_keys_match_what_the_target_holds() -> None:
    c7, n7 = col("k", "datetime2(7)")
    cut = "DATEADD(nanosecond, -(DATEPART(nanosecond, [k]) % 1000), [k])"
    assert key_expr("[k]", c7, n7, True) == cut == raw_key_expr(c7, n7, True)
    assert key_expr("?", c7, n7, True) == "CAST(? AS datetime2(7))"
    c3, n3 = col("k", "datetime2(3)")
    assert key_expr("[k]", c3, n3, True) == "[k]"  # an index can serve the range
    cdt, ndt = col("k", "datetime")
    assert key_expr("[k]", cdt, ndt, True) == "[k]"
    assert key_expr("?", cdt, ndt, True) == "CAST(CAST(? AS datetime2(7)) AS datetime)"  # to its 1/300 s ticks
    cdo, ndo = col("k", "datetimeoffset(7)")
    assert key_expr("?", cdo, ndo, True) == "CAST(? AS datetimeoffset(7))"
    assert "SWITCHOFFSET([k], '+00:00')" in key_expr("[k]", cdo, ndo, True)
    cd, nd = col("k", "date")
    assert key_expr("?", cd, nd, True) == "CAST(? AS date)"


def test_segments_without_row_values() -> None:
    one = shape(("id", "int"), ("v", "nvarchar(5)"))
    assert one.where(None, None) == ("1 = 1", [])
    assert one.where((10,), (20,)) == ("[id] > ? AND NOT ([id] > ?)", [10, 20])
    two = shape(("a", "int"), ("b", "int"), ("c", "int"), key=3)
    where, params = two.where((1, 2, 3), None)
    assert where == "([a] > ? OR ([a] = ? AND [b] > ?) OR ([a] = ? AND [b] = ? AND [c] > ?))"
    assert params == [1, 1, 2, 1, 2, 3]
    where, params = two.where(None, (7, 8, 9))
    assert where.startswith("NOT (([a] > ? OR") and params == [7, 7, 8, 7, 8, 9]


def test_boundaries_number_the_rows_in_key_order() -> None:
    s = shape(("id", "uniqueidentifier"), ("v", "int"))
    query, params = s.boundaries((uuid.UUID(int=5),), None, 250)
    assert query == (
        "SELECT [s].[k0] FROM (SELECT LOWER(CONVERT(varchar(36), [id])) AS [k0], ROW_NUMBER() OVER (ORDER BY "
        f"CONVERT(char(36), [id]) COLLATE {BIN2}) AS [rn] FROM [sales].[Orders] WHERE CONVERT(char(36), [id]) "
        f"COLLATE {BIN2} > CONVERT(char(36), CAST(? AS uniqueidentifier)) COLLATE {BIN2}) AS [s] "
        "WHERE [s].[rn] % 250 = 0 ORDER BY [s].[rn]"
    )
    assert params == ["00000000-0000-0000-0000-000000000005"]


def test_rows_read_raw_keys_then_values_and_float_keys_as_bits() -> None:
    s = shape(("id", "float"), ("amount", "money"), ("ratio", "float"))
    query, params = s.rows(None, (1.5,))
    assert query.startswith("SELECT [id], LOWER(CONVERT(varchar(16), CAST(CAST([id] AS float) AS binary(8)), 2)), ")
    assert query.endswith("CONVERT(varchar(30), [ratio], 2) FROM [sales].[Orders] WHERE NOT ([id] > ?)")
    assert params == [1.5] and balanced(query)


def test_rows_by_key_stay_under_the_parameter_limit() -> None:
    one = shape(("id", "int"), ("v", "int"))
    query, params = one.rows_by_key([(1,), (2,), (3,)])
    assert query.endswith("WHERE [id] IN (?, ?, ?)") and params == [1, 2, 3]
    three = shape(("a", "int"), ("b", "nvarchar(9)"), ("c", "date"), key=3)
    assert three.max_keys == 666 and one.max_keys == 1000
    keys = [(i, f"k{i}", date(2024, 1, 1)) for i in range(three.max_keys)]
    query, params = three.rows_by_key(keys)
    assert len(params) == query.count("?") == 3 * 666 <= 2100
    assert params[:3] == [0, "k0", "2024-01-01"] and query.count(" OR ") == 665 and balanced(query)


def test_identifiers_are_bracketed_with_closing_brackets_doubled() -> None:
    s = shape(("we]ird", "int"), ("x y", "nvarchar(3)"), table="Or]ders")
    query, _ = s.checksum((1,), (2,))
    assert "FROM [sales].[Or]]ders]" in query and "[we]]ird]" in query and "[x y]" in query and balanced(query)


def test_every_statement_of_every_type_is_well_formed() -> None:
    types = ["bit", "tinyint", "int", "decimal(9,2)", "money", "float", "real", "date", "time(7)", "datetime",
             "smalldatetime", "datetime2(7)", "datetimeoffset(3)", "uniqueidentifier", "binary(8)", "varbinary(max)",
             "char(4)", "nvarchar(max)", "text", "xml"]  # fmt: skip
    for utf8 in (True, False):
        s = shape(*[(f"c{i}", t) for i, t in enumerate(types)], key=1, utf8=utf8)
        for query, params in (s.checksum((1,), (9,)), s.rows(None, (3,)), s.boundaries((1,), None, 7),
                              s.rows_by_key([(1,), (2,)])):  # fmt: skip
            assert balanced(query), query
            assert query.count("?") == len(params)
        assert balanced(s.count())


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime(2024, 1, 2, 3, 4, 5, 123456), "2024-01-02T03:04:05.123456"),
        (datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=-8))), "2024-01-02T03:04:05-08:00"),
        (date(2024, 2, 29), "2024-02-29"),
        (time(23, 59, 59, 999999), "23:59:59.999999"),
        (uuid.UUID("de305d54-75b4-431b-adb2-eb6b9e546014"), "de305d54-75b4-431b-adb2-eb6b9e546014"),
        (memoryview(b"\x00\x01"), b"\x00\x01"),
        (42, 42),
        ("text", "text"),
    ],
)
def test_parameters_travel_in_forms_tsql_casts_exactly(value: object, expected: object) -> None:
    assert param(value) == expected
