"""The SQL a data check runs on SQL Server: the portable normal form (core.datacheck.portable) in T-SQL, key
ranges in byte order, segment checksums with HASHBYTES, and rows by key.

Values (`value_expr`): integers CAST to varchar; bit as 'true'/'false'; decimals (money and smallmoney CAST
to decimal first) CONVERTed and stripped of trailing fractional zeros with REPLACE/RTRIM (TRIM(TRAILING) is
SQL Server 2022 only); dates CONVERT style 23; times style 108 and datetimes style 126 (cut to the second by
the varchar length) plus six digits of DATEPART(microsecond), which truncates 100 ns digits as pyodbc does
when the embedded engine copies the rows; a precision below the source's is reached with CAST, which rounds
(after cutting to microseconds); datetimeoffset goes through SWITCHOFFSET(x, '+00:00') first; datetime is
CAST to datetime2(3), the milliseconds its 1/300 s ticks show as; uniqueidentifier LOWER(CONVERT(varchar));
binary types CONVERT style 2 (hex without 0x), lower-cased; text CAST to nvarchar(max) (RTRIM for fixed
length). Floats show CONVERT style 2 (16 digits, compared within a tolerance) and enter the hash as their
IEEE 754 bits, CAST to binary(8) (binary(4) for float4) and style 2.

Row hash: HASHBYTES('SHA2_256') over the row text CAST to varchar(max) under Latin1_General_100_BIN2_UTF8,
i.e. its UTF-8 bytes (SQL Server 2019+; Azure SQL too). Text fields are escaped with REPLACE under
Latin1_General_100_BIN2: a REPLACE under the column's own collation would also match look-alikes (a
width-insensitive collation takes U+FF3C for '\\'). The concatenation starts from an nvarchar(max) so that
long rows are never cut at 4000 characters. The segment checksum sums the first two 4-byte halves of the
hashes, each CAST to int and summed as bigint: what core.datacheck.portable.segment_checksum computes.

Keys are ordered and compared as PostgreSQL orders them: text keys as the varbinary of their UTF-8 bytes
(code point order = PostgreSQL's COLLATE "C" in a UTF8 database; varbinary comparisons keep trailing spaces,
which character comparisons under any collation would pad away, and pad only with 0x00 bytes, which UTF-8
text PostgreSQL can hold never contains), uniqueidentifier as its canonical text
under a binary collation (SQL Server sorts the raw GUID by its last group first), datetime2(7)-like keys cut
to microseconds (the target holds them so), everything else natively. T-SQL has no row-value comparison:
`(a, b) > (x, y)` is spelled `a > x OR (a = x AND b > y)`, and `<=` as its negation.

Servers without UTF-8 collations (before 2019) cannot produce the bytes PostgreSQL hashes: `can_hash` is
False, the checksum query is a count, and the validator compares such tables row by row, a segment of at
most ROW_FETCH rows at a time (every row crosses the network; memory stays bounded). Their text keys are ordered under
Latin1_General_100_BIN2 (UTF-16 code units, trailing spaces padded): keys with characters above U+FFFF (which
sort below U+E000..U+FFFF in UTF-16 but above them in UTF-8) or ending in characters below a space may fall
into different segments on the two sides; such a row reads as missing in one segment and extra in another,
and the recheck by key, which looks rows up by equality, clears it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from core.connectors.sqlserver import quote_ident
from core.datacheck.portable import NULL_TEXT, SEPARATOR, Norm, mssql_precision
from core.datacheck.sql import Column
from core.typemap import parse_type

BIN2 = "Latin1_General_100_BIN2"
UTF8_BIN2 = "Latin1_General_100_BIN2_UTF8"
MAX_PARAMS = 2000  # SQL Server takes at most 2100 parameters per statement
BY_KEY_LIMIT = 1000

FLOAT_TYPES = ("float", "real")
TEXT_TYPES = ("char", "nchar", "varchar", "nvarchar", "text", "ntext", "sysname", "xml")
_MONEY = {"money": "decimal(19,4)", "smallmoney": "decimal(10,4)"}
_PARAM_TYPES = {"time": "time(7)", "timestamp": "datetime2(7)", "timestamptz": "datetimeoffset(7)"}
_SECONDS_TO = {"time": ("time", 108, 8), "timestamp": ("datetime2", 126, 19), "timestamptz": ("datetime2", 126, 19)}


@dataclass(frozen=True)
class MssqlColumn(Column):
    """A SQL Server column; `type` as core.connectors.sqlserver.render_type writes it ('datetime2(7)')."""

    @property
    def is_float(self) -> bool:
        return self.base in FLOAT_TYPES

    @property
    def is_text(self) -> bool:
        return self.base in TEXT_TYPES

    @property
    def scale(self) -> int:
        """Digits after the decimal point of a decimal/numeric (money: 4)."""
        p = parse_type(self.type)
        if self.base in _MONEY:
            return 4
        return int(p.args[1]) if len(p.args) > 1 and p.args[1].isdigit() else 0


# ------------------------------------------------------------------ values


def _trimmed(text: str) -> str:
    """A decimal's text without trailing fractional zeros or a bare '.' (zeros -> spaces, RTRIM, back; '.' too)."""
    stripped = f"REPLACE(RTRIM(REPLACE({text}, '0', ' ')), ' ', '0')"
    return f"REPLACE(RTRIM(REPLACE({stripped}, '.', ' ')), ' ', '.')"


def _decimal(x: str, column: MssqlColumn, norm: Norm) -> str:
    source = f"CAST({x} AS {_MONEY[column.base]})" if column.base in _MONEY else x
    text = f"CONVERT(varchar(50), {source})"
    if column.scale == 0:
        return f"CASE WHEN {x} = 0 THEN '0' ELSE {text} END"
    return f"CASE WHEN {x} = 0 THEN '0' ELSE {_trimmed(text)} END"


def _micro_cut(x: str) -> str:
    """A 100 ns value cut to whole microseconds."""
    return f"DATEADD(nanosecond, -(DATEPART(nanosecond, {x}) % 1000), {x})"


def temporal_value(x: str, column: MssqlColumn, norm: Norm) -> str:
    """The temporal value at the compared precision (typed: datetime2, time or datetimeoffset), or `x` itself
    when it already is; formatting truncates to microseconds by itself, so no cut is needed unless rounding."""
    own = mssql_precision(column.type)
    if column.base == "datetime":
        x, own = f"CAST({x} AS datetime2(3))", 3
    elif column.base == "smalldatetime":
        x, own = f"CAST({x} AS datetime2(0))", 0
    if column.base == "datetimeoffset":
        x = f"SWITCHOFFSET({x}, '+00:00')"
    if norm.precision < min(own, 6):
        cut = _micro_cut(x) if own == 7 else x
        x = f"CAST({cut} AS {_SECONDS_TO[norm.kind][0]}({norm.precision}))"
    return x


def _temporal(x: str, column: MssqlColumn, norm: Norm) -> str:
    value = temporal_value(x, column, norm)
    _, style, width = _SECONDS_TO[norm.kind]
    fraction = f"RIGHT('00000' + CAST(DATEPART(microsecond, {value}) AS varchar(6)), 6)"
    return f"CONVERT(varchar({width}), {value}, {style}) + '.' + {fraction}"


def _text(x: str, column: MssqlColumn, norm: Norm) -> str:
    text = f"CAST({x} AS nvarchar(max))"
    return f"RTRIM({text})" if norm.trim else text


_VALUES: dict[str, Callable[[str, MssqlColumn, Norm], str]] = {
    "int": lambda x, c, n: f"CAST({x} AS varchar(20))",
    "bool": lambda x, c, n: f"CASE WHEN {x} = 1 THEN 'true' WHEN {x} = 0 THEN 'false' END",
    "decimal": _decimal,
    "float4": lambda x, c, n: f"CONVERT(varchar(30), {x}, 2)",
    "float8": lambda x, c, n: f"CONVERT(varchar(30), {x}, 2)",
    "date": lambda x, c, n: f"CONVERT(varchar(10), {x}, 23)",
    "time": _temporal,
    "timestamp": _temporal,
    "timestamptz": _temporal,
    "uuid": lambda x, c, n: f"LOWER(CONVERT(varchar(36), {x}))",
    "bytes": lambda x, c, n: f"LOWER(CONVERT(varchar(max), CAST({x} AS varbinary(max)), 2))",
    "text": _text,
}


def value_expr(column: MssqlColumn, norm: Norm) -> str:
    """The column in the portable normal form, as compared rows show it (portable.value_text)."""
    return _VALUES[norm.kind](quote_ident(column.name), column, norm)


def float_bits(x: str, norm: Norm) -> str:
    """A float's IEEE 754 bits as lower hex (binary conversions of float/real are big-endian)."""
    if norm.kind == "float4":
        return f"LOWER(CONVERT(varchar(8), CAST(CAST({x} AS real) AS binary(4)), 2))"
    return f"LOWER(CONVERT(varchar(16), CAST(CAST({x} AS float) AS binary(8)), 2))"


def hash_text_expr(column: MssqlColumn, norm: Norm) -> str:
    """The column as it enters the row text: floats as their bits, text escaped under a binary collation."""
    if norm.kind in ("float4", "float8"):
        return float_bits(quote_ident(column.name), norm)
    value = value_expr(column, norm)
    if norm.kind != "text":
        return value
    return f"REPLACE(REPLACE({value} COLLATE {BIN2}, N'\\', N'\\\\'), N'{SEPARATOR}', N'\\{SEPARATOR}')"


def row_text_expr(parts: list[str]) -> str:
    """The row text: from an nvarchar(max) (no cut at 4000 characters), each field or \\N, then '|'."""
    fields = [f"ISNULL({p}, N'{NULL_TEXT}') + N'{SEPARATOR}'" for p in parts]
    return "CAST(N'' AS nvarchar(max)) + " + " + ".join(fields)


def row_hash_expr(parts: list[str]) -> str:
    """SHA-256 of the row text's UTF-8 bytes."""
    return f"HASHBYTES('SHA2_256', CAST(({row_text_expr(parts)}) COLLATE {UTF8_BIN2} AS varchar(max)))"


# ------------------------------------------------------------------ keys


def _text_key(x: str, norm: Norm, utf8: bool) -> str:
    text = f"CAST({x} AS nvarchar(max))"
    if norm.trim:
        text = f"RTRIM({text})"
    if not utf8:
        return f"{text} COLLATE {BIN2}"
    return f"CAST(CAST({text} COLLATE {UTF8_BIN2} AS varchar(max)) AS varbinary(max))"


def _temporal_key(x: str, column: MssqlColumn, norm: Norm) -> str:
    """A temporal key at what the target holds: cut to microseconds (7 digits), rounded (a lower precision),
    else the column itself (an index can serve the range). Parameters arrive as ISO text: CAST to a 7-digit
    type, or, against a datetime/smalldatetime column, on to its ticks (a datetime compared with a datetime2
    would be widened to its 1/300 s value, .997 -> .9966667, and differ)."""
    own = mssql_precision(column.type)
    reduced = norm.precision < min(own, 6)
    if x == "?":
        if not reduced and column.base in ("datetime", "smalldatetime"):
            return f"CAST(CAST(? AS datetime2(7)) AS {column.base})"
        return f"CAST(? AS {_PARAM_TYPES[norm.kind]})"
    if reduced:
        return temporal_value(x, column, norm)
    if own == 7:
        return _micro_cut(temporal_value(x, column, norm))
    return x


def key_expr(x: str, column: MssqlColumn, norm: Norm, utf8: bool) -> str:
    """A key column (or, with x='?', a parameter compared with it) as it is ordered and compared."""
    if norm.kind == "text":
        return _text_key(x, norm, utf8)
    if norm.kind == "uuid":
        value = x if x != "?" else "CAST(? AS uniqueidentifier)"
        return f"CONVERT(char(36), {value}) COLLATE {BIN2}"
    if norm.kind in _PARAM_TYPES:
        return _temporal_key(x, column, norm)
    if norm.kind == "date" and x == "?":
        return "CAST(? AS date)"
    return x


def raw_key_expr(column: MssqlColumn, norm: Norm, utf8: bool) -> str:
    """A key column as boundaries and rows read it: a value both sides take as a parameter."""
    x = quote_ident(column.name)
    if norm.kind == "uuid":
        return f"LOWER(CONVERT(varchar(36), {x}))"
    if norm.kind in _PARAM_TYPES:
        return _temporal_key(x, column, norm)
    return x


def param(value: Any) -> Any:
    """A key value read from either side in a form pyodbc binds and T-SQL CASTs exactly: temporal values as
    ISO 8601 text (pyodbc may bind datetimes at millisecond precision, and drops time zones)."""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, memoryview):
        return value.tobytes()
    return value


# ------------------------------------------------------------------ the table


@dataclass(frozen=True)
class MssqlShape:
    """What the queries of a SQL Server side need (the counterpart of core.datacheck.sql.TableShape)."""

    schema: str
    table: str
    key: tuple[MssqlColumn, ...]
    columns: tuple[MssqlColumn, ...]  # the compared columns, in the same order as on the other side
    norms: tuple[Norm, ...]
    utf8: bool = True  # the server has UTF-8 collations (2019+): HASHBYTES can hash what PostgreSQL hashes

    @property
    def name(self) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(self.table)}"

    @property
    def can_hash(self) -> bool:
        return self.utf8

    @property
    def max_keys(self) -> int:
        """Keys per `rows_by_key` query, under SQL Server's parameter limit."""
        return max(1, min(BY_KEY_LIMIT, MAX_PARAMS // len(self.key)))

    def norm(self, column: MssqlColumn) -> Norm:
        return self.norms[self.columns.index(column)]

    def _keys(self, x: str | None = None) -> list[str]:
        """The key columns as ordered and compared (x='?': the matching parameter expressions)."""
        return [key_expr(x or quote_ident(c.name), c, self.norm(c), self.utf8) for c in self.key]

    def order_by(self) -> str:
        return ", ".join(self._keys())

    def _after(self, values: tuple) -> tuple[str, list]:
        """`key > values` spelled without row values: a > x OR (a = x AND b > y) ..."""
        keys, marks = self._keys(), self._keys("?")
        ors, params = [], []
        for i in range(len(keys)):
            terms = [f"{keys[j]} = {marks[j]}" for j in range(i)] + [f"{keys[i]} > {marks[i]}"]
            ors.append(terms[0] if len(terms) == 1 else "(" + " AND ".join(terms) + ")")
            params += [param(v) for v in values[: i + 1]]
        return (ors[0] if len(ors) == 1 else "(" + " OR ".join(ors) + ")"), params

    def where(self, low: tuple | None, high: tuple | None) -> tuple[str, list]:
        """The segment `low < key <= high` (None: unbounded), as T-SQL and its parameters."""
        parts, params = [], []
        if low is not None:
            text, more = self._after(low)
            parts.append(text)
            params += more
        if high is not None:
            text, more = self._after(high)
            parts.append(f"NOT ({text})")
            params += more
        return (" AND ".join(parts) or "1 = 1"), params

    def hash_parts(self) -> list[str]:
        return [hash_text_expr(c, n) for c, n in zip(self.columns, self.norms, strict=True)]

    def count(self) -> str:
        return f"SELECT COUNT_BIG(*) FROM {self.name}"

    def checksum(self, low: tuple | None, high: tuple | None) -> tuple[str, list]:
        """COUNT_BIG(*) and the sums of the rows' SHA-256 halves; COUNT_BIG(*) alone without UTF-8."""
        where, params = self.where(low, high)
        if not self.can_hash:
            return f"SELECT COUNT_BIG(*) FROM {self.name} WHERE {where}", params
        half = "ISNULL(SUM(CAST(CAST(SUBSTRING([r].[h], {}, 4) AS int) AS bigint)), 0)"
        query = (
            f"SELECT COUNT_BIG(*), {half.format(1)}, {half.format(5)} FROM "
            f"(SELECT {row_hash_expr(self.hash_parts())} AS [h] FROM {self.name} WHERE {where}) AS [r]"
        )
        return query, params

    def _raw(self) -> list[str]:
        return [raw_key_expr(c, self.norm(c), self.utf8) for c in self.key]

    def boundaries(self, low: tuple | None, high: tuple | None, step: int) -> tuple[str, list]:
        """Every `step`-th key of the segment in key order: the ends of its sub-segments."""
        where, params = self.where(low, high)
        inner = ", ".join(f"{e} AS [k{i}]" for i, e in enumerate(self._raw()))
        outer = ", ".join(f"[s].[k{i}]" for i in range(len(self.key)))
        query = (
            f"SELECT {outer} FROM (SELECT {inner}, ROW_NUMBER() OVER (ORDER BY {self.order_by()}) AS [rn] "
            f"FROM {self.name} WHERE {where}) AS [s] WHERE [s].[rn] % {int(step)} = 0 ORDER BY [s].[rn]"
        )
        return query, params

    def _select(self, where: str) -> str:
        values = [self._value(c) for c in self.columns]
        return f"SELECT {', '.join(self._raw() + values)} FROM {self.name} WHERE {where}"

    def _value(self, column: MssqlColumn) -> str:
        norm = self.norm(column)
        if column in self.key and norm.kind in ("float4", "float8"):
            return float_bits(quote_ident(column.name), norm)  # keys match exactly, never within a tolerance
        return value_expr(column, norm)

    def rows(self, low: tuple | None, high: tuple | None) -> tuple[str, list]:
        """The segment's rows: the raw key, then every compared column normalized."""
        where, params = self.where(low, high)
        return self._select(where), params

    def rows_by_key(self, keys: list[tuple]) -> tuple[str, list]:
        """The rows with these keys (at most `max_keys` of them: raw key values as `rows` reads them)."""
        exprs, marks = self._keys(), self._keys("?")
        if len(exprs) == 1:
            where = f"{exprs[0]} IN ({', '.join(marks[0] for _ in keys)})"
        else:
            one = "(" + " AND ".join(f"{e} = {m}" for e, m in zip(exprs, marks, strict=True)) + ")"
            where = " OR ".join(one for _ in keys)
        return self._select(where), [param(v) for k in keys for v in k]
