"""The SQL a data check runs on PostgreSQL: values normalized per type so that equal data reads and hashes
equal on both sides of the type map, key ranges in byte order, segment checksums, and rows by key.

Normalized text per type (`normalized`): timestamps as UTC `YYYY-MM-DDTHH:MI:SS.US`, numerics without
trailing zeros (the shared scale), json and jsonb as jsonb text, bytea as hex, floats as float8 text (they
are compared with a relative tolerance outside the hash, see core.datacheck.compare), everything else as its
text. NULL stays NULL (a row's text keeps it apart from an empty string). Text-like key columns are ordered
and compared with COLLATE "C": byte order, the same on both sides whatever their collations.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg2 import sql

TEXT_TYPES = ("text", "character varying", "character", "citext", "name")
FLOAT_TYPES = ("real", "double precision")

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
        return self.type.split("(")[0].strip().lower()

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

    @property
    def name(self) -> sql.Composable:
        return sql.Identifier(self.schema, self.table)

    def keys_tuple(self) -> sql.Composable:
        return sql.SQL("({})").format(sql.SQL(", ").join(key_expr(c) for c in self.key))

    def order_by(self) -> sql.Composable:
        return sql.SQL(", ").join(key_expr(c) for c in self.key)

    def row_text(self) -> sql.Composable:
        """The whole row as one comparable text (its hash is the row's checksum)."""
        parts = sql.SQL(", ").join(normalized(c, self.server_version) for c in self.columns)
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
        where, params = self.where(low, high)
        hashed = sql.SQL("hashtextextended({}, 0)").format(self.row_text())
        if self.server_version >= 140000:
            agg = sql.SQL("coalesce(bit_xor({}), 0)").format(hashed)
        else:  # bit_xor of bigint arrived in PostgreSQL 14
            agg = sql.SQL("coalesce(sum({}::numeric), 0)").format(hashed)
        query = sql.SQL("SELECT count(*), {} FROM {} WHERE {}").format(agg, self.name, where)
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
        values = sql.SQL(", ").join(normalized(c, self.server_version) for c in self.columns)
        return sql.SQL("SELECT {}, {} FROM {} WHERE {}").format(raw, values, self.name, where)

    def count(self) -> sql.Composable:
        return sql.SQL("SELECT count(*) FROM {}").format(self.name)
