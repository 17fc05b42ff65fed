"""The SQL a data check runs on PostgreSQL: values normalized per type so that equal data reads and hashes
equal on both sides of the type map, key ranges in byte order, segment checksums, and rows by key.

Normalized text per type (`normalized`): timestamps as UTC `YYYY-MM-DDTHH:MI:SS.US`, numerics without
trailing zeros (the shared scale), json and jsonb as jsonb text, bytea as hex, floats as float8 text (they
are compared with a relative tolerance outside the hash, see core.datacheck.compare), everything else as its
text. NULL stays NULL (a row's text keeps it apart from an empty string). Text-like key columns are ordered
and compared with COLLATE "C": byte order, the same on both sides whatever their collations.

When the other side is SQL Server, a TableShape carries `norms` and renders the portable normal form of
core.datacheck.portable instead (`portable_value`, `portable_hash_text`): the same text and the same row
bytes as core.datacheck.mssql's T-SQL, hashed with sha256 over convert_to(row text, 'UTF8') (PostgreSQL 11+;
older servers compare rows instead of checksums, like an old SQL Server). PostgreSQL -> PostgreSQL keeps its
own expressions and hashtextextended: `norms` is None there.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from psycopg2 import sql

from core.datacheck.portable import NULL_TEXT, SEPARATOR, Norm, pg_precision
from core.typemap import parse_type

_MODIFIERS = re.compile(r"\(\s*\d+\s*(,\s*-?\d+\s*)?\)")  # (6), (12,2): a type's precision and scale
TEXT_TYPES = ("text", "character varying", "character", "citext", "name")
FLOAT_TYPES = ("real", "double precision")
SHA256_VERSION = 110000  # sha256() arrived in PostgreSQL 11
UNLIMITED_KEYS = 1_000_000  # keys per `rows_by_key` query: PostgreSQL binds a tuple list of any length

COLUMNS_SQL = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), t.typcategory
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""

PRIMARY_KEY_SQL = """
SELECT a.attname
FROM pg_index i JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = %s::regclass AND i.indisprimary
ORDER BY k.ord
"""


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # format_type(): "timestamp with time zone", "numeric(12,2)", "text", ...
    category: str = ""  # pg_type.typcategory: E enum, A array, ...

    @property
    def base(self) -> str:
        """The type without its modifiers: "timestamp(3) with time zone" is "timestamp with time zone"."""
        return " ".join(_MODIFIERS.sub("", self.type).lower().split())

    @property
    def is_float(self) -> bool:
        return self.base in FLOAT_TYPES

    @property
    def is_text(self) -> bool:
        return self.base in TEXT_TYPES


def normalized(column: Column, server_version: int) -> sql.Composable:
    """The column as comparable text (see the module's docstring)."""
    ident = sql.Identifier(column.name)
    base = column.base
    if base == "timestamp with time zone":
        return sql.SQL("to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US')").format(ident)
    if base == "timestamp without time zone":
        return sql.SQL("to_char({}, 'YYYY-MM-DD\"T\"HH24:MI:SS.US')").format(ident)
    if base == "time with time zone":
        return sql.SQL("({} AT TIME ZONE 'UTC')::time::text").format(ident)
    if base == "numeric":
        if server_version >= 130000:
            return sql.SQL("trim_scale({})::text").format(ident)
        return sql.SQL("({})::text").format(ident)
    if base in FLOAT_TYPES:
        return sql.SQL("({})::float8::text").format(ident)
    if base in ("json", "jsonb"):
        return sql.SQL("({})::jsonb::text").format(ident)
    if base == "bytea":
        return sql.SQL("encode({}, 'hex')").format(ident)
    return sql.SQL("({})::text").format(ident)


# ------------------------------------------------------------------ the portable normal form (other side SQL Server)


def _numeric_text(ident: sql.Composable, server_version: int) -> sql.Composable:
    """A numeric without trailing fractional zeros (and without a bare '.')."""
    if server_version >= 130000:
        return sql.SQL("trim_scale({})::text").format(ident)
    return sql.SQL("regexp_replace(regexp_replace(({})::text, {}, {}), {}, '')").format(
        ident, sql.Literal(r"(\.[0-9]*[1-9])0+$"), sql.Literal(r"\1"), sql.Literal(r"\.0+$")
    )


def _p_int(ident: sql.Composable, column: Column, norm: Norm, server_version: int) -> sql.Composable:
    if column.base == "numeric":
        return _numeric_text(ident, server_version)
    return sql.SQL("({})::text").format(ident)


def _p_decimal(ident: sql.Composable, column: Column, norm: Norm, server_version: int) -> sql.Composable:
    return _numeric_text(ident, server_version)


def _p_plain(ident: sql.Composable, column: Column, norm: Norm, server_version: int) -> sql.Composable:
    return sql.SQL("({})::text").format(ident)


def _p_float(ident: sql.Composable, column: Column, norm: Norm, server_version: int) -> sql.Composable:
    return sql.SQL("({})::float8::text").format(ident)


def _p_date(ident: sql.Composable, column: Column, norm: Norm, server_version: int) -> sql.Composable:
    return sql.SQL("to_char({}, 'YYYY-MM-DD')").format(ident)


def _p_time(ident: sql.Composable, column: Column, norm: Norm, server_version: int) -> sql.Composable:
    value: sql.Composable = sql.SQL("({})::time").format(ident)
    if norm.precision < pg_precision(column.type):
        value = sql.SQL("({})::time({})").format(ident, sql.Literal(norm.precision))
    return sql.SQL("to_char(date '2000-01-01' + {}, 'HH24:MI:SS.US')").format(value)


def _p_timestamp(ident: sql.Composable, column: Column, norm: Norm, server_version: int) -> sql.Composable:
    zoned = parse_type(column.type).base == "timestamp with time zone"  # base would read "timestamp" for (n)
    value: sql.Composable = ident
    if norm.precision < pg_precision(column.type):
        cast = sql.SQL("timestamptz" if zoned else "timestamp")
        value = sql.SQL("({})::{}({})").format(ident, cast, sql.Literal(norm.precision))
    if zoned:
        value = sql.SQL("({}) AT TIME ZONE 'UTC'").format(value)
    return sql.SQL("to_char({}, 'YYYY-MM-DD\"T\"HH24:MI:SS.US')").format(value)


def _p_bytes(ident: sql.Composable, column: Column, norm: Norm, server_version: int) -> sql.Composable:
    return sql.SQL("encode({}, 'hex')").format(ident)


def _p_text(ident: sql.Composable, column: Column, norm: Norm, server_version: int) -> sql.Composable:
    if norm.trim:
        return sql.SQL("rtrim(({})::text)").format(ident)
    return sql.SQL("({})::text").format(ident)


_PORTABLE: dict[str, Callable[[sql.Composable, Column, Norm, int], sql.Composable]] = {
    "int": _p_int,
    "bool": _p_plain,
    "decimal": _p_decimal,
    "float4": _p_float,
    "float8": _p_float,
    "date": _p_date,
    "time": _p_time,
    "timestamp": _p_timestamp,
    "timestamptz": _p_timestamp,
    "uuid": _p_plain,
    "bytes": _p_bytes,
    "text": _p_text,
}


def portable_value(column: Column, norm: Norm, server_version: int) -> sql.Composable:
    """The column in the portable normal form, as compared rows show it (core.datacheck.portable.value_text)."""
    return _PORTABLE[norm.kind](sql.Identifier(column.name), column, norm, server_version)


def portable_hash_text(column: Column, norm: Norm, server_version: int) -> sql.Composable:
    """The column as it enters the portable row text: floats as their IEEE 754 bits (hex), text escaped."""
    ident = sql.Identifier(column.name)
    if norm.kind == "float4":
        return sql.SQL("encode(float4send(({})::float4), 'hex')").format(ident)
    if norm.kind == "float8":
        return sql.SQL("encode(float8send(({})::float8), 'hex')").format(ident)
    value = portable_value(column, norm, server_version)
    if norm.kind != "text":
        return value  # digits, dates, hex and uuids hold neither '\\' nor '|'
    return sql.SQL("replace(replace({}, {}, {}), {}, {})").format(
        value, sql.Literal("\\"), sql.Literal("\\\\"), sql.Literal(SEPARATOR), sql.Literal("\\" + SEPARATOR)
    )


def portable_row_text(parts: list[sql.Composable]) -> sql.Composable:
    """The portable row text of the columns' hash texts: each field escaped or \\N, then '|'."""
    null, separator = sql.Literal(NULL_TEXT), sql.Literal(SEPARATOR)
    fields = [sql.SQL("coalesce({}, {}) || {}").format(p, null, separator) for p in parts]
    return sql.SQL(" || ").join(fields)


_INTEGER_MAX = {"smallint": 2**15 - 1, "integer": 2**31 - 1, "bigint": 2**63 - 1}
_ROW_ALIAS = sql.Identifier("cdc_studio_row")  # the table's alias in checksum queries (its row: alias::text)


def key_expr(column: Column) -> sql.Composable:
    """A key column as it is ordered and compared: text-like ones in byte order."""
    ident = sql.Identifier(column.name)
    return sql.SQL('{} COLLATE "C"').format(ident) if column.is_text else ident


@dataclass(frozen=True)
class TableShape:
    """What the queries of one side of a table need: its qualified name, key and compared columns."""

    schema: str
    table: str
    key: tuple[Column, ...]
    columns: tuple[Column, ...]  # the compared columns (key included), in the same order on both sides
    server_version: int
    norms: tuple[Norm, ...] | None = None  # per compared column: the portable normal form; None: PG <-> PG
    # PG <-> PG: per compared column, whether both sides have exactly its type (then its text output, under the
    # readers' fixed output settings, is already comparable: no normalizing expression); whole_row: every column
    # of both tables, in the same order and types, so a row's text is the table row's own output (`t::text`).
    plain: tuple[bool, ...] | None = None
    whole_row: bool = False

    @property
    def name(self) -> sql.Composable:
        return sql.Identifier(self.schema, self.table)

    @property
    def can_hash(self) -> bool:
        """Whether segment checksums can be computed (else segments are compared row by row)."""
        return self.norms is None or self.server_version >= SHA256_VERSION

    @property
    def max_keys(self) -> int:
        return UNLIMITED_KEYS

    def _norm(self, column: Column) -> Norm:
        assert self.norms is not None
        return self.norms[self.columns.index(column)]

    def _value(self, column: Column) -> sql.Composable:
        """A compared column as rows show it; in the portable form a float key shows its bits (keys match
        exactly, never within a tolerance)."""
        if self.norms is None:
            if self.plain is not None and self.plain[self.columns.index(column)]:
                return sql.SQL("({})::text").format(sql.Identifier(column.name))
            return normalized(column, self.server_version)
        norm = self._norm(column)
        if column in self.key and norm.kind in ("float4", "float8"):
            return portable_hash_text(column, norm, self.server_version)
        return portable_value(column, norm, self.server_version)

    def keys_tuple(self) -> sql.Composable:
        return sql.SQL("({})").format(sql.SQL(", ").join(key_expr(c) for c in self.key))

    def order_by(self) -> sql.Composable:
        return sql.SQL(", ").join(key_expr(c) for c in self.key)

    def row_text(self) -> sql.Composable:
        """The whole row as one comparable text (its hash is the row's checksum)."""
        if self.norms is not None:
            return portable_row_text(
                [portable_hash_text(c, n, self.server_version) for c, n in zip(self.columns, self.norms, strict=True)]
            )
        if self.whole_row:
            return sql.SQL("{}::text").format(_ROW_ALIAS)
        parts = sql.SQL(", ").join(self._value(c) for c in self.columns)
        return sql.SQL("ROW({})::text").format(parts)

    def where(self, low: tuple | None, high: tuple | None) -> tuple[sql.Composable, list]:
        """The segment `low < key <= high` (None: unbounded), as SQL and its parameters."""
        marks = sql.SQL("({})").format(sql.SQL(", ").join(sql.Placeholder() * len(self.key)))
        parts: list[sql.Composable] = []
        params: list = []
        if low is not None:
            parts.append(sql.SQL("{} > {}").format(self.keys_tuple(), marks))
            params += list(low)
        if high is not None:
            parts.append(sql.SQL("{} <= {}").format(self.keys_tuple(), marks))
            params += list(high)
        if not parts:
            return sql.SQL("true"), []
        return sql.SQL(" AND ").join(parts), params

    def checksum(self, low: tuple | None, high: tuple | None) -> tuple[sql.Composable, list]:
        """count(*) and an order-free checksum of the segment's rows (xor of their 64-bit hashes)."""
        if self.norms is not None:
            return self._portable_checksum(low, high)
        where, params = self.where(low, high)
        hashed = sql.SQL("hashtextextended({}, 0)").format(self.row_text())
        if self.server_version >= 140000:
            agg = sql.SQL("coalesce(bit_xor({}), 0)").format(hashed)
        else:  # bit_xor of bigint arrived in PostgreSQL 14
            agg = sql.SQL("coalesce(sum({}::numeric), 0)").format(hashed)
        query = sql.SQL("SELECT count(*), {} FROM {} AS {} WHERE {}").format(agg, self.name, _ROW_ALIAS, where)
        return query, params

    @property
    def can_bucket(self) -> bool:
        """Whether `bucket_checksums` applies: PG <-> PG on 14+ (bit_xor), a one-column key."""
        return self.norms is None and self.server_version >= 140000 and len(self.key) == 1

    def bucket_checksums(
        self, tops: list[tuple], low: tuple | None = None, high: tuple | None = None
    ) -> tuple[sql.Composable, list]:
        """The checksums of every segment of `low < key <= high` (default: the whole table) in one scan:
        (segment, count, xor of hashes) per segment `tops[i-1] < key <= tops[i]` (segment 0: up to tops[0];
        len(tops): past the last). One scan with a hash aggregate instead of one range query per segment."""
        (key,) = self.key
        ident = key_expr(key)
        array = sql.SQL("%s::{}[]").format(sql.SQL(key.type))
        values = [t[0] for t in tops]
        step = _INTEGER_MAX.get(key.base)
        if step is not None and all(v < step for v in values):
            # integers: the thresholds + 1 make width_bucket count the thresholds < key directly
            bucket: sql.Composable = sql.SQL("width_bucket({}, {})").format(ident, array)
            params: list = [[v + 1 for v in values]]
        else:  # width_bucket counts the thresholds <= key; a key equal to one belongs to the segment it ends
            bucket = sql.SQL("width_bucket({k}, {a}) - ({k} = ANY({a}))::int").format(k=ident, a=array)
            params = [values, values]
        where, range_params = self.where(low, high)
        hashed = sql.SQL("hashtextextended({}, 0)").format(self.row_text())
        # The planner takes every row for a group of its own (the key is unique): it would sort the rows, to
        # disk, by segment, and it sees no gain in a parallel scan. A hash aggregate holds the few segments in
        # memory, and partial aggregates in the server's parallel workers (as many as its own settings allow,
        # as for any query) each hash a part of the table. SET LOCAL: the check's snapshot transaction only.
        query = sql.SQL(
            "SET LOCAL enable_sort = off; SET LOCAL parallel_setup_cost = 0; SET LOCAL parallel_tuple_cost = 0; "
            "SELECT b, count(*), coalesce(bit_xor(h), 0) FROM (SELECT {bucket} AS b, {hashed} AS h "
            "FROM {table} AS {alias} WHERE {where}) s GROUP BY b"
        ).format(bucket=bucket, hashed=hashed, table=self.name, alias=_ROW_ALIAS, where=where)
        return query, params + range_params

    def _portable_checksum(self, low: tuple | None, high: tuple | None) -> tuple[sql.Composable, list]:
        """count(*) and the sums of the rows' sha256 halves (core.datacheck.portable.segment_checksum);
        count(*) alone when this server has no sha256."""
        where, params = self.where(low, high)
        if not self.can_hash:
            return sql.SQL("SELECT count(*) FROM {} WHERE {}").format(self.name, where), params
        half = "coalesce(sum(('x' || encode(substr(h, {}, 4), 'hex'))::bit(32)::int), 0)"
        query = sql.SQL(
            "SELECT count(*), " + half.format(1) + ", " + half.format(5) + " FROM "
            "(SELECT sha256(convert_to({row}, 'UTF8')) AS h FROM {table} WHERE {where}) s"
        ).format(row=self.row_text(), table=self.name, where=where)
        return query, params

    def boundaries(self, low: tuple | None, high: tuple | None, step: int) -> tuple[sql.Composable, list]:
        """Every `step`-th key of the segment in key order: the ends of its sub-segments."""
        where, params = self.where(low, high)
        cols = sql.SQL(", ").join(sql.Identifier(c.name) for c in self.key)
        query = sql.SQL(
            "SELECT {cols} FROM (SELECT {cols}, row_number() OVER (ORDER BY {order}) AS rn FROM {table} "
            "WHERE {where}) s WHERE rn %% {step} = 0 ORDER BY rn"
        ).format(cols=cols, order=self.order_by(), table=self.name, where=where, step=sql.Literal(step))
        return query, params

    def rows(self, low: tuple | None, high: tuple | None) -> tuple[sql.Composable, list]:
        """The segment's rows: the raw key, then every compared column normalized."""
        where, params = self.where(low, high)
        return self._select(where), params

    def rows_by_key(self, keys: list[tuple]) -> tuple[sql.Composable, list]:
        """The rows with these keys (raw key values as read by `rows`)."""
        cols = sql.SQL(", ").join(sql.Identifier(c.name) for c in self.key)
        where = sql.SQL("({}) IN %s").format(cols)
        return self._select(where), [tuple(keys)]

    def _select(self, where: sql.Composable) -> sql.Composable:
        raw = sql.SQL(", ").join(sql.Identifier(c.name) for c in self.key)
        values = sql.SQL(", ").join(self._value(c) for c in self.columns)
        return sql.SQL("SELECT {}, {} FROM {} WHERE {}").format(raw, values, self.name, where)

    def count(self) -> sql.Composable:
        return sql.SQL("SELECT count(*) FROM {}").format(self.name)
