"""The portable PostgreSQL expressions on a real PostgreSQL, held to the Python reference
(core.datacheck.portable): for each SQL Server type, the column of the type the type map creates holds the
values as the embedded engine writes them, and the queries the validator sends (rows, checksums, keys in
order) must give the reference's texts, row hashes and segment checksums. The database runs in a time zone
far from UTC, so that timestamps prove they are rendered in UTC."""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from psycopg2 import sql

from core.connectors.base import ConnectionSpec
from core.datacheck.engine import Reader
from core.datacheck.portable import (
    Norm,
    hash_text,
    pair,
    row_hash,
    segment_checksum,
    value_text,
)
from core.datacheck.sql import TableShape
from core.typemap import map_type
from tests.core.datacheck.test_portable import CASES
from tests.pgcluster import PgCluster

FLOATS = [
    ("float", [0.1, -0.0, 1.7976931348623157e308, 5e-324, -123456.789e-10]),
    ("real", [0.1, -1.5, 3.4028234663852886e38, 1.401298464324817e-45]),
]


@pytest.fixture(scope="module")
def db(pg: PgCluster) -> Iterator[str]:
    name = f"portable{os.getpid()}"
    pg.create_database(name)
    conn = pg.connect(name)
    with conn.cursor() as cur:
        cur.execute(sql.SQL("ALTER DATABASE {} SET timezone TO 'Pacific/Chatham'").format(sql.Identifier(name)))
    conn.close()
    yield name
    pg.drop_database(name)


def spec(pg: PgCluster, db: str) -> ConnectionSpec:
    return ConnectionSpec(
        kind="postgresql", host=pg.host, port=pg.port, database=db, username=pg.user, password=pg.password
    )


def replicated(mssql_type: str, value: Any) -> Any:
    """The value as the embedded engine writes it: pyodbc cuts 100 ns digits, a datetimeoffset is written
    as an aware datetime's ISO text (no space before the offset), floats as their repr text (psycopg2 would
    send -0.0 as a negated numeric literal, which is +0); the rest as is."""
    if isinstance(value, float):
        return repr(value)
    if not isinstance(value, str) or not re.match(r"^(\d{4}-\d{2}-\d{2} )?\d{2}:\d{2}:\d{2}", value):
        return value
    value = re.sub(r"(\.\d{6})\d", r"\1", value, count=1)
    return re.sub(r"\s+([+-]\d{2}:\d{2})$", r"\1", value)


def load(pg: PgCluster, db: str, table: str, mssql_types: list[str], rows: list[list[Any]]) -> None:
    """A table `id integer primary key, c0 .. cN` of the mapped types, holding the replicated rows."""
    columns = [sql.SQL("{} {}").format(sql.Identifier(f"c{i}"), sql.SQL(map_type(t, "sqlserver", "postgresql").sql))
               for i, t in enumerate(mssql_types)]  # fmt: skip
    conn = pg.connect(db)
    try:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))
            cur.execute(
                sql.SQL("CREATE TABLE {} (id integer PRIMARY KEY, {})").format(
                    sql.Identifier(table), sql.SQL(", ").join(columns)
                )
            )
            marks = sql.SQL(", ").join(sql.Placeholder() * (len(mssql_types) + 1))
            for i, row in enumerate(rows):
                values = [replicated(t, v) for t, v in zip(mssql_types, row, strict=True)]
                cur.execute(sql.SQL("INSERT INTO {} VALUES ({})").format(sql.Identifier(table), marks), [i, *values])
    finally:
        conn.close()


def shape_of(reader: Reader, table: str, mssql_types: list[str], server_version: int | None = None) -> TableShape:
    """The target side's portable shape, paired with the SQL Server types the columns came from."""
    columns, key = reader.shape("public", table)
    norms = tuple(pair(t, c.type) for t, c in zip(["int", *mssql_types], columns, strict=True))
    shape = reader.table_shape(("public", table), [columns[0]], columns, norms)
    if server_version is None:
        return shape
    return TableShape(shape.schema, shape.table, shape.key, shape.columns, server_version, shape.norms)


def row_hashes(reader: Reader, shape: TableShape) -> dict[int, str]:
    query = sql.SQL("SELECT id, encode(sha256(convert_to({}, 'UTF8')), 'hex') FROM {}").format(
        shape.row_text(), shape.name
    )
    return {int(i): h for i, h in reader.query(query)}


BY_TYPE: dict[str, list[tuple[Any, str]]] = defaultdict(list)
for _type, _value, _expected in CASES:
    BY_TYPE[_type].append((_value, _expected))


@pytest.mark.parametrize("version", [150000, 120000], ids=["pg13+", "before-trim_scale"])
@pytest.mark.parametrize("mssql_type", list(BY_TYPE))
def test_values_rows_and_hashes_match_the_reference(pg: PgCluster, db: str, mssql_type: str, version: int) -> None:
    cases = BY_TYPE[mssql_type] + [(None, None)]
    table = re.sub(r"\W", "_", mssql_type)
    load(pg, db, table, [mssql_type], [[v] for v, _ in cases])
    reader = Reader(spec(pg, db), is_source=False)
    try:
        shape = shape_of(reader, table, [mssql_type], version)
        norm = shape.norms[1] if shape.norms else Norm("text")
        query, params = shape.rows(None, None)
        shown = {int(raw): values for raw, *values in reader.query(query, params)}
        assert {i: shown[i][1] for i in shown} == {i: expected for i, (_, expected) in enumerate(cases)}
        assert all(shown[i][0] == str(i) for i in shown)  # the key, normalized
        reference = {i: [str(i), hash_text(norm, v)] for i, (v, _) in enumerate(cases)}
        assert row_hashes(reader, shape) == {i: row_hash(texts).hex() for i, texts in reference.items()}
        query, params = shape.checksum(None, None)
        assert tuple(reader.query(query, params)[0]) == segment_checksum(reference.values())
    finally:
        reader.close()


@pytest.mark.parametrize(("mssql_type", "values"), FLOATS)
def test_floats_hash_as_their_bits_and_show_as_numbers(pg: PgCluster, db: str, mssql_type: str, values: list) -> None:
    load(pg, db, f"f_{mssql_type}", [mssql_type], [[v] for v in values])
    reader = Reader(spec(pg, db), is_source=False)
    try:
        shape = shape_of(reader, f"f_{mssql_type}", [mssql_type])
        norm = pair(mssql_type, map_type(mssql_type, "sqlserver", "postgresql").sql)
        query, params = shape.rows(None, None)
        for raw, _key, text in reader.query(query, params):
            assert float(text) == pytest.approx(values[raw], rel=1e-6 if norm.kind == "float4" else 1e-15)
        expected = {i: row_hash([str(i), hash_text(norm, v)]).hex() for i, v in enumerate(values)}
        assert row_hashes(reader, shape) == expected
    finally:
        reader.close()


WIDE = ["int", "bit", "decimal(18,4)", "money", "float", "datetime2(7)", "datetimeoffset(7)", "uniqueidentifier",
        "varbinary(max)", "nvarchar(max)", "nchar(5)", "time(7)", "date", "datetime"]  # fmt: skip
WIDE_ROWS = [
    [7, True, Decimal("1.2300"), Decimal("-3.5000"), 0.1, "2024-01-02 03:04:05.1234567",
     "2024-01-02 03:04:05.1234567 +05:30", "DE305D54-75B4-431B-ADB2-EB6B9E546014", b"\x00|\\",
     "a|b\\N\\", "ab   ", "23:59:59.9999999", "2024-02-29", "2024-01-02 03:04:05.997"],
    [None] * len(WIDE),
    [0, False, Decimal("0"), Decimal("0"), -0.0, "0001-01-01 00:00:00", "0001-01-01 00:00:00 +00:00",
     "00000000-0000-0000-0000-000000000000", b"", "", "     ", "00:00:00", "0001-01-01", "1753-01-01 00:00:00"],
    [1, None, None, None, None, None, None, None, None, "\\N", None, None, None, None],  # text \N is not NULL
]  # fmt: skip


def test_a_wide_row_hashes_like_the_reference_and_segments_sum_alike(pg: PgCluster, db: str) -> None:
    load(pg, db, "wide", WIDE, WIDE_ROWS)
    reader = Reader(spec(pg, db), is_source=False)
    try:
        shape = shape_of(reader, "wide", WIDE)
        assert shape.norms is not None
        norms = shape.norms[1:]
        reference = [
            [str(i)] + [hash_text(n, v) for n, v in zip(norms, row, strict=True)] for i, row in enumerate(WIDE_ROWS)
        ]
        assert row_hashes(reader, shape) == {i: row_hash(r).hex() for i, r in enumerate(reference)}
        assert len(set(row_hashes(reader, shape).values())) == len(WIDE_ROWS)
        query, params = shape.checksum((0,), (2,))  # the segment 0 < id <= 2
        assert params == [0, 2]
        assert tuple(reader.query(query, params)[0]) == segment_checksum(reference[1:3])
        query, params = shape.rows(None, None)
        shown = {int(raw): values[1:] for raw, *values in reader.query(query, params)}
        for row in (0, 2):
            for n, v, text in zip(norms, WIDE_ROWS[row], shown[row], strict=True):
                if n.kind == "float8":
                    assert float(text) == v
                else:
                    assert text == value_text(n, v)
        assert shown[1] == [None] * len(WIDE)
    finally:
        reader.close()


def test_text_keys_order_by_utf8_bytes_and_uuid_keys_by_their_text(pg: PgCluster, db: str) -> None:
    """The key order the T-SQL reproduces (text: varbinary of the UTF-8 bytes; uuid: its canonical text under
    a binary collation), against PostgreSQL's own on the portable shape."""
    words = ["a", "B", "é", "a ", "a\x01", "\uffef", "😀", "ab", "Z", "\u00ff"]
    uuids = ["DE305D54-75B4-431B-ADB2-EB6B9E546014", "0E305D54-75B4-431B-ADB2-EB6B9E546014",
             "de305d54-75b4-431b-adb2-eb6b9e546013", "FFFFFFFF-0000-0000-0000-000000000000"]  # fmt: skip
    conn = pg.connect(db)
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS keyed_text, keyed_uuid")
        cur.execute('CREATE TABLE keyed_text (k character varying(20) COLLATE "en-x-icu" PRIMARY KEY)')
        cur.execute("CREATE TABLE keyed_uuid (k uuid PRIMARY KEY)")
        cur.executemany("INSERT INTO keyed_text VALUES (%s)", [(w,) for w in words])
        cur.executemany("INSERT INTO keyed_uuid VALUES (%s)", [(u,) for u in uuids])
    conn.close()
    reader = Reader(spec(pg, db), is_source=False)
    try:
        for table, mssql_type, values, order in (
            ("keyed_text", "nvarchar(20)", words, lambda s: s.encode("utf-8")),
            ("keyed_uuid", "uniqueidentifier", uuids, lambda s: s.upper()),
        ):
            columns, _ = reader.shape("public", table)
            shape = reader.table_shape(("public", table), columns, columns, (pair(mssql_type, columns[0].type),))
            query, params = shape.boundaries(None, None, 1)
            found = [str(r[0]) for r in reader.query(query, params)]
            assert [v.upper() for v in found] == [v.upper() for v in sorted(values, key=order)]
    finally:
        reader.close()


def test_servers_without_sha256_count_only(pg: PgCluster, db: str) -> None:
    load(pg, db, "old", ["int"], [[1], [2]])
    reader = Reader(spec(pg, db), is_source=False)
    try:
        shape = shape_of(reader, "old", ["int"], server_version=100000)
        assert not shape.can_hash
        query, params = shape.checksum(None, (0,))
        assert reader.query(query, params) == [(1,)]
        assert shape_of(reader, "old", ["int"]).can_hash
    finally:
        reader.close()


def test_postgres_to_postgres_keeps_its_fast_checksum(pg: PgCluster, db: str) -> None:
    """Without norms (both sides PostgreSQL) the checksum is the hashtextextended one, unchanged."""
    load(pg, db, "fast", ["int"], [[1]])
    reader = Reader(spec(pg, db), is_source=False)
    try:
        columns, _ = reader.shape("public", "fast")
        shape = reader.table_shape(("public", "fast"), [columns[0]], columns, None)
        query, _ = shape.checksum(None, None)
        assert query.as_string(reader.conn) == (
            'SELECT count(*), coalesce(bit_xor(hashtextextended(ROW(("id")::text, ("c0")::text)::text, 0)), 0) '
            'FROM "public"."fast" AS "cdc_studio_row" WHERE true'
        )
        assert "sha256" not in shape.row_text().as_string(reader.conn)
    finally:
        reader.close()


# (SQL Server type, a target type a user made instead of the type map's, value on SQL Server, as replicated)
USER_MADE = [
    ("nchar(5)", "character varying(5)", "ab   ", "ab   "),  # fixed length on one side: padding dropped
    ("nvarchar(5)", "character(5)", "ab", "ab"),
    ("datetime2(7)", "timestamp(3) without time zone", "2024-01-02 03:04:05.1235999", "2024-01-02 03:04:05.123599"),
    ("datetime2(3)", "timestamp(6) without time zone", "2024-01-02 03:04:05.123", "2024-01-02 03:04:05.123"),
    # digits the source cannot hold are not compared: the target's .1234 rounds to the source's .123
    ("datetime2(3)", "timestamp(6) without time zone", "2024-01-02 03:04:05.123", "2024-01-02 03:04:05.1234"),
    ("datetimeoffset(7)", "timestamp(0) with time zone", "2024-01-02 03:04:05.5 +01:00", "2024-01-02 03:04:05.5+01:00"),
    ("time(7)", "time(2) without time zone", "12:00:00.1250001", "12:00:00.125000"),
    ("float", "real", 0.1, "0.1"),
    ("decimal(10,4)", "numeric", Decimal("1.5000"), "1.5000"),
    ("int", "numeric(12,2)", 7, "7"),
]


@pytest.mark.parametrize(("mssql_type", "pg_type", "value", "written"), USER_MADE)
def test_user_made_target_types_compare_at_the_common_form(
    pg: PgCluster, db: str, mssql_type: str, pg_type: str, value: Any, written: Any
) -> None:
    conn = pg.connect(db)
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS user_made")
        cur.execute(sql.SQL("CREATE TABLE user_made (id integer PRIMARY KEY, c0 {})").format(sql.SQL(pg_type)))
        cur.execute("INSERT INTO user_made VALUES (1, %s)", [written])
    conn.close()
    reader = Reader(spec(pg, db), is_source=False)
    try:
        columns, _ = reader.shape("public", "user_made")
        norm = pair(mssql_type, columns[1].type)
        shape = reader.table_shape(("public", "user_made"), [columns[0]], columns, (pair("int", "integer"), norm))
        query, params = shape.rows(None, None)
        ((_, _, shown),) = reader.query(query, params)
        if norm.kind == "float4":
            assert float(shown) == pytest.approx(value, rel=1e-6)
        else:
            assert shown == value_text(norm, value)
        assert row_hashes(reader, shape) == {1: row_hash(["1", hash_text(norm, value)]).hex()}
    finally:
        reader.close()
