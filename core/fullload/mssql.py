"""SQL Server side of the full load: pyodbc sessions, statements in [brackets], row encodings.

The pure parts (COPY text encoding of rows read from SQL Server, INSERT/SELECT/DDL statements,
parameter conversion for fast_executemany, the datetimeoffset converter) are plain functions so
they are tested without a server.
"""

from __future__ import annotations

import math
import struct
import uuid
from collections.abc import Iterable, Sequence
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

from core.connectors import sqlserver
from core.connectors.base import ConnectionSpec
from core.connectors.sqlserver import quote_ident, translate_error
from core.errors import ConnectorError, DriverMissing, ValidationFailed
from core.fullload.model import TableSpec

SQL_SS_TIMESTAMPOFFSET = -155  # ODBC type code of datetimeoffset
FETCH_ROWS = 10_000  # rows per fetchmany / executemany batch
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


# ------------------------------------------------------------------ COPY text encoding (SQL Server -> PostgreSQL)


def copy_text_value(value: Any) -> str:
    """One value in PostgreSQL's COPY text format: \\N for NULL, escaped text, bytea as \\\\x hex."""
    if value is None:
        return "\\N"
    if isinstance(value, str):
        return value.translate(_ESCAPES)
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float_text(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "\\\\x" + bytes(value).hex()
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return f"{value.days} days {value.seconds} seconds {value.microseconds} microseconds"
    if isinstance(value, uuid.UUID):
        return str(value)
    return str(value).translate(_ESCAPES)


def _float_text(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(value)


def encode_copy_rows(rows: Iterable[Sequence[Any]]) -> bytes:
    """Rows as COPY text lines (tab-separated, newline-terminated), UTF-8."""
    return "".join("\t".join(map(copy_text_value, row)) + "\n" for row in rows).encode("utf-8")


def datetimeoffset_from_bytes(raw: bytes | None) -> datetime | None:
    """pyodbc output converter for datetimeoffset (SQL_SS_TIMESTAMPOFFSET_STRUCT) to an aware datetime."""
    if raw is None:
        return None
    year, month, day, hour, minute, second, nanos, tz_hour, tz_minute = struct.unpack("<6hI2h", raw)
    tz = timezone(timedelta(hours=tz_hour, minutes=tz_minute))
    return datetime(year, month, day, hour, minute, second, nanos // 1000, tzinfo=tz)


# ------------------------------------------------------------------ parameters (PostgreSQL -> SQL Server)


def to_param(value: Any) -> Any:
    """A value psycopg2 returned, in a form pyodbc binds: bytes for bytea, ISO text for aware datetimes."""
    if isinstance(value, memoryview):
        return value.tobytes()
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.isoformat()
    return value


def to_params(rows: Iterable[Sequence[Any]]) -> list[tuple]:
    """A batch of rows ready for executemany."""
    return [tuple(map(to_param, row)) for row in rows]


# ------------------------------------------------------------------ statements


def table_name(schema: str, table: str) -> str:
    """[schema].[table]."""
    return f"{quote_ident(schema)}.{quote_ident(table)}"


def _literal(text: str) -> str:
    return "N'" + text.replace("'", "''") + "'"


def select_statement(schema: str, table: str, columns: Sequence[str]) -> str:
    """SELECT of the columns in order."""
    return f"SELECT {', '.join(map(quote_ident, columns))} FROM {table_name(schema, table)}"


def insert_statement(schema: str, table: str, columns: Sequence[str]) -> str:
    """The parameterized INSERT fast_executemany runs per batch."""
    marks = ", ".join("?" for _ in columns)
    return f"INSERT INTO {table_name(schema, table)} ({', '.join(map(quote_ident, columns))}) VALUES ({marks})"


def create_schema_statement(schema: str) -> str:
    """CREATE SCHEMA when missing (CREATE SCHEMA must be alone in its batch, hence EXEC)."""
    return f"IF SCHEMA_ID({_literal(schema)}) IS NULL EXEC({_literal('CREATE SCHEMA ' + quote_ident(schema))})"


def create_table_statement(spec: TableSpec) -> str:
    """CREATE TABLE with columns in order, mapped types, NULL/NOT NULL and the primary key in key order.

    PostgreSQL generated columns become plain columns filled from the source's values, domains their
    base type (the type map's `sql`); defaults are not carried.
    """
    parts = [f"{quote_ident(c.name)} {c.target.sql} {'NOT NULL' if c.not_null else 'NULL'}" for c in spec.columns]
    if spec.primary_key:
        parts.append(f"PRIMARY KEY ({', '.join(map(quote_ident, spec.primary_key))})")
    return f"CREATE TABLE {table_name(spec.plan.target_schema, spec.plan.target_table)} ({', '.join(parts)})"


def table_exists_query(schema: str, table: str) -> tuple[str, tuple[str]]:
    """OBJECT_ID of a user table: NULL when it does not exist."""
    return "SELECT OBJECT_ID(?, N'U')", (table_name(schema, table),)


# ------------------------------------------------------------------ sessions


def driver() -> Any:
    """The pyodbc module, or DriverMissing."""
    try:
        import pyodbc
    except ImportError as exc:
        raise DriverMissing(f"pyodbc cannot be loaded ({exc})") from None
    return pyodbc


def connect(spec: ConnectionSpec, autocommit: bool) -> Any:
    """A pyodbc session on `spec.database`; datetimeoffset values come back as aware datetimes."""
    return sqlserver.odbc_connect(spec, autocommit=autocommit)


def odbc_error(exc: BaseException, spec: ConnectionSpec) -> ConnectorError:
    """A pyodbc error in the project's words."""
    return translate_error(exc, spec)


def apply_policy(cur: Any, spec: TableSpec, policy: str, auto_create: bool) -> bool:
    """Make the target table ready inside the load's transaction; True when it was (re)created here."""
    plan = spec.plan
    query, params = table_exists_query(plan.target_schema, plan.target_table)
    exists = cur.execute(query, *params).fetchone()[0] is not None
    name = table_name(plan.target_schema, plan.target_table)
    if not exists:
        if not auto_create:
            raise ValidationFailed(
                plan.target,
                f"target table {plan.target} does not exist and auto-create is off; create it or turn auto-create on",
            )
        cur.execute(create_table_statement(spec))
        return True
    if policy == "fail":
        rows = cur.execute(f"SELECT COUNT_BIG(*) FROM {name}").fetchone()[0]
        if rows:
            raise ValidationFailed(
                plan.target,
                f"target table {plan.target} is not empty ({rows} rows); choose truncate, append or drop_recreate",
            )
    elif policy == "truncate":
        cur.execute(f"TRUNCATE TABLE {name}")
    elif policy == "drop_recreate":
        cur.execute(f"DROP TABLE {name}")
        cur.execute(create_table_statement(spec))
        return True
    return False


def insert_batches(cur: Any, statement: str, batches: Iterable[list[tuple]], on_rows: Any) -> int:
    """fast_executemany of every batch; `on_rows(total)` after each; the number of rows inserted."""
    cur.fast_executemany = True
    total = 0
    for batch in batches:
        cur.executemany(statement, to_params(batch))
        total += len(batch)
        on_rows(total)
    return total
