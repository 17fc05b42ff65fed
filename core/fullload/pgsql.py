"""PostgreSQL side of the full load: sessions, the source catalog, target DDL and table policies.

Identifiers are always composed with `psycopg2.sql.Identifier`; type names come from the type
map (format_type output of built-in types) or, for enums, are identifiers too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import connection as PgConnection
from psycopg2.extensions import cursor as PgCursor

from core.connectors.base import ConnectionSpec
from core.connectors.postgres import translate_error
from core.errors import ConnectorError, ObjectNotFound, ValidationFailed
from core.fullload.model import TableSpec
from core.typemap import EnumType, PgUserType, TargetType, normalize

APPLICATION_NAME = "cdc-studio-fullload"
FIRST_NORMAL_OID = 16384  # oids below are built into every PostgreSQL
EXACT_COUNT_BYTES = 32 << 20  # count(*) under the snapshot when the table is smaller than this
_RESERVED_KEYWORDS = {"host", "port", "dbname", "user", "password", "connect_timeout"}
_SESSION_SQL = "SET statement_timeout = 0; SET idle_in_transaction_session_timeout = 0; SET client_encoding = 'UTF8'"
_DEPENDENT_CODES = ("2BP01",)  # dependent_objects_still_exist


@contextmanager
def pg_errors(spec: ConnectionSpec) -> Iterator[None]:
    """psycopg2 errors leave as the project's ConnectorError, in the server's words."""
    try:
        yield
    except psycopg2.Error as exc:
        raise translate_error(exc, spec) from None


def connect(spec: ConnectionSpec) -> PgConnection:
    """An autocommit session on `spec.database` for loading: no statement timeout, UTF8."""
    kwargs: dict[str, Any] = {k: v for k, v in spec.options.items() if k not in _RESERVED_KEYWORDS}
    kwargs.setdefault("application_name", APPLICATION_NAME)
    kwargs.update(
        host=spec.host,
        port=spec.port or 5432,
        dbname=spec.database,
        user=spec.username,
        password=spec.password,
        connect_timeout=spec.connect_timeout_s,
    )
    with pg_errors(spec):
        conn = psycopg2.connect(**kwargs)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(_SESSION_SQL)
        except BaseException:
            conn.close()
            raise
    return conn


def open_source(spec: ConnectionSpec, snapshot_id: str | None) -> PgConnection:
    """A REPEATABLE READ READ ONLY transaction, on the exported snapshot when one is given."""
    conn = connect(spec)
    try:
        with pg_errors(spec):
            conn.autocommit = False
            conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
            if snapshot_id:
                with conn.cursor() as cur:
                    cur.execute("SET TRANSACTION SNAPSHOT %s", (snapshot_id,))
    except BaseException:
        conn.close()
        raise
    return conn


def open_target(spec: ConnectionSpec) -> PgConnection:
    """A read-write transaction for one table's policy action and COPY, committed as one."""
    conn = connect(spec)
    with pg_errors(spec), conn.cursor() as cur:
        cur.execute("SET synchronous_commit = off; SET maintenance_work_mem = '256MB'")
    conn.autocommit = False
    return conn


def server_encoding(conn: PgConnection) -> str:
    """The database's encoding: binary COPY carries text in it unconverted."""
    return conn.get_parameter_status("server_encoding") or ""


# ------------------------------------------------------------------ source catalog

_RELATION_SQL = """
SELECT c.oid, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
"""
_COLUMNS_SQL = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, a.atttypid
FROM pg_attribute a WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
"""
_PRIMARY_KEY_SQL = """
SELECT a.attname FROM pg_constraint con
CROSS JOIN unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
WHERE con.conrelid = %s AND con.contype = 'p' ORDER BY k.ord
"""
_TYPES_SQL = """
SELECT t.oid, t.typtype, n.nspname, t.typname, t.typcategory = 'A' AND t.typelem <> 0, t.typelem,
       t.typbasetype, CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END,
       array(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder)
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.oid = ANY(%s)
"""
_KINDS = {"e": "enum", "d": "domain", "b": "base", "c": "composite", "r": "range", "m": "multirange", "p": "pseudo"}


def relation(cur: PgCursor, database: str, schema: str, table: str) -> tuple[int, str]:
    """The oid and relkind of a table, or ObjectNotFound in plain words."""
    cur.execute(_RELATION_SQL, (schema, table))
    row = cur.fetchone()
    if row is None:
        raise ObjectNotFound(f"source table {schema}.{table} does not exist in database {database}")
    return row[0], row[1]


def source_columns(cur: PgCursor, oid: int) -> list[tuple[str, str, bool, PgUserType | None]]:
    """(name, format_type, not null, resolved user type or None for built-ins) per column, in order."""
    cur.execute(_COLUMNS_SQL, (oid,))
    rows = cur.fetchall()
    user = resolve_user_types(cur, {r[3] for r in rows if r[3] >= FIRST_NORMAL_OID})
    return [(name, type_text, not_null, user.get(type_oid)) for name, type_text, not_null, type_oid in rows]


def primary_key(cur: PgCursor, oid: int) -> list[str]:
    """Primary-key columns in key order."""
    cur.execute(_PRIMARY_KEY_SQL, (oid,))
    return [r[0] for r in cur.fetchall()]


def resolve_user_types(cur: PgCursor, oids: set[int]) -> dict[int, PgUserType]:
    """User types by oid, following array element and domain base types down to built-ins."""
    rows: dict[int, tuple] = {}
    missing = set(oids)
    while missing:
        cur.execute(_TYPES_SQL, (sorted(missing),))
        for row in cur.fetchall():
            rows[row[0]] = row
        referenced = {r[5] if r[4] else r[6] for r in rows.values()}
        missing = {o for o in referenced if o >= FIRST_NORMAL_OID and o not in rows}

    def build(oid: int, depth: int = 0) -> PgUserType:
        _, typtype, schema, name, is_array, elem, base_oid, base_text, labels = rows[oid]
        if is_array and depth < 10:
            inner = build(elem, depth + 1)
            return dataclasses.replace(inner, array_dims=inner.array_dims + 1)
        base = build(base_oid, depth + 1) if typtype == "d" and base_oid >= FIRST_NORMAL_OID and depth < 10 else None
        return PgUserType(
            kind=_KINDS.get(typtype, typtype),
            schema=schema,
            name=name,
            labels=tuple(labels or ()),
            base_type=base_text,
            base=base,
        )

    return {oid: build(oid) for oid in oids if oid in rows}


_STATS_SQL = """
SELECT coalesce(sum(CASE WHEN c.reltuples < 0 THEN 0
                         WHEN c.relpages > 0 THEN c.reltuples / c.relpages
                              * (pg_relation_size(c.oid) / current_setting('block_size')::int)
                         ELSE c.reltuples END), 0)::bigint,
       coalesce(bool_or(c.reltuples < 0), true),
       coalesce(sum(pg_table_size(c.oid)), 0)::bigint
FROM pg_class c
WHERE c.oid IN (SELECT pt.relid FROM pg_partition_tree(%(oid)s::oid::regclass) pt WHERE pt.isleaf
                UNION SELECT %(oid)s::oid)  -- a plain table is not in its own partition tree
  AND c.relkind <> 'p'
"""


def source_stats(cur: PgCursor, spec: TableSpec, oid: int) -> tuple[int, bool, int]:
    """(rows expected, exact?, table bytes): count(*) under the snapshot when cheap, else the catalog estimate."""
    cur.execute(_STATS_SQL, {"oid": oid})
    estimate, unknown, size = cur.fetchone()
    if unknown or size < EXACT_COUNT_BYTES:
        cur.execute(sql.SQL("SELECT count(*) FROM {}").format(_table(spec.plan.source_schema, spec.plan.source_table)))
        return cur.fetchone()[0], True, size
    return estimate, False, size


# ------------------------------------------------------------------ statements


def _table(schema: str, name: str) -> sql.Identifier:
    return sql.Identifier(schema, name)


def _columns(names: list[str]) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(n) for n in names)


def type_sql(schema: str, target: TargetType) -> sql.Composable:
    """A column type for DDL: enums as identifiers in the target schema, built-ins as the type map wrote them."""
    if target.enum is not None:
        return sql.Composed([sql.Identifier(schema, target.enum.name), sql.SQL("[]" * target.array_dims)])
    return sql.SQL(target.sql)


def create_schema(schema: str) -> sql.Composed:
    """CREATE SCHEMA IF NOT EXISTS."""
    return sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema))


def create_enum(schema: str, enum: EnumType) -> sql.Composed:
    """CREATE TYPE ... AS ENUM with the labels in the source's order."""
    labels = sql.SQL(", ").join(sql.Literal(label) for label in enum.labels)
    return sql.SQL("CREATE TYPE {} AS ENUM ({})").format(sql.Identifier(schema, enum.name), labels)


def create_table(spec: TableSpec, with_key: bool = True) -> sql.Composed:
    """CREATE TABLE with the columns in order, mapped types, NOT NULL and the primary key in key order."""
    schema = spec.plan.target_schema
    parts: list[sql.Composable] = []
    for col in spec.columns:
        not_null = sql.SQL(" NOT NULL") if col.not_null else sql.SQL("")
        parts.append(sql.Composed([sql.Identifier(col.name), sql.SQL(" "), type_sql(schema, col.target), not_null]))
    if spec.primary_key and with_key:
        parts.append(sql.SQL("PRIMARY KEY ({})").format(_columns(spec.primary_key)))
    return sql.SQL("CREATE TABLE {} ({})").format(_table(schema, spec.plan.target_table), sql.SQL(", ").join(parts))


def copy_out(spec: TableSpec, fmt: str) -> sql.Composed:
    """COPY of the source columns to STDOUT: straight from a plain table, through SELECT otherwise."""
    src = _table(spec.plan.source_schema, spec.plan.source_table)
    cols = _columns(spec.column_names)
    if spec.relkind == "r":
        return sql.SQL("COPY {} ({}) TO STDOUT (FORMAT {})").format(src, cols, sql.SQL(fmt))
    return sql.SQL("COPY (SELECT {} FROM {}) TO STDOUT (FORMAT {})").format(cols, src, sql.SQL(fmt))


def copy_in(spec: TableSpec, fmt: str, freeze: bool = False) -> sql.Composed:
    """COPY FROM STDIN into the source's column names; FREEZE when the table is new in this transaction."""
    target = _table(spec.plan.target_schema, spec.plan.target_table)
    options = sql.SQL(fmt + (", FREEZE" if freeze else ""))
    return sql.SQL("COPY {} ({}) FROM STDIN (FORMAT {})").format(target, _columns(spec.column_names), options)


def add_primary_key(spec: TableSpec) -> sql.Composed:
    """The primary key of a table created by the load, built once after the rows are in (a sorted build)."""
    target = _table(spec.plan.target_schema, spec.plan.target_table)
    return sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})").format(target, _columns(spec.primary_key))


def select_rows(spec: TableSpec) -> sql.Composed:
    """SELECT of the source columns for row-by-row readers; columns without a target type are read as text."""
    exprs = [
        sql.SQL("{}::text").format(sql.Identifier(c.name)) if c.target.cast_text else sql.Identifier(c.name)
        for c in spec.columns
    ]
    src = _table(spec.plan.source_schema, spec.plan.source_table)
    return sql.SQL("SELECT {} FROM {}").format(sql.SQL(", ").join(exprs), src)


# ------------------------------------------------------------------ target


def target_oid(cur: PgCursor, schema: str, table: str) -> int | None:
    """The target table's oid, or None when it does not exist."""
    found = target_relation(cur, schema, table)
    return found[0] if found else None


def target_relation(cur: PgCursor, schema: str, table: str) -> tuple[int, str] | None:
    """(oid, relkind) of the target table, or None when it does not exist."""
    cur.execute(
        "SELECT c.oid, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p', 'f')",
        (schema, table),
    )
    row = cur.fetchone()
    return (row[0], row[1]) if row else None


def target_types(cur: PgCursor, oid: int) -> dict[str, str]:
    """Column name -> format_type of an existing target table."""
    cur.execute(_COLUMNS_SQL, (oid,))
    return {name: type_text for name, type_text, _, _ in cur.fetchall()}


def same_types(spec: TableSpec, existing: dict[str, str]) -> bool:
    """True when every source column exists in the target with exactly the mapped type."""
    return all(c.name in existing and normalize(existing[c.name]) == normalize(c.target.display) for c in spec.columns)


@dataclass
class TargetState:
    """What the policy did: `created` (no primary key yet, add it after the COPY), `fresh` (COPY FREEZE allowed)."""

    created: bool = False
    fresh: bool = False


def apply_policy(cur: PgCursor, spec: TableSpec, policy: str, auto_create: bool) -> TargetState:
    """Make the target table ready inside the load's transaction.

    A table created here gets its primary key after the COPY (`add_primary_key`): one sorted
    index build is cheaper than maintaining the index row by row.
    """
    plan = spec.plan
    found = target_relation(cur, plan.target_schema, plan.target_table)
    target = _table(plan.target_schema, plan.target_table)
    if found is None:
        if not auto_create:
            raise ValidationFailed(
                plan.target,
                f"target table {plan.target} does not exist and auto-create is off; create it or turn auto-create on",
            )
        cur.execute(create_table(spec, with_key=False))
        return TargetState(created=True, fresh=True)
    if policy == "fail":
        cur.execute(sql.SQL("SELECT count(*) FROM {}").format(target))
        rows = cur.fetchone()[0]
        if rows:
            raise ValidationFailed(
                plan.target,
                f"target table {plan.target} is not empty ({rows} rows); choose truncate, append or drop_recreate",
            )
    elif policy == "truncate":
        cur.execute(sql.SQL("TRUNCATE {}").format(target))
        return TargetState(fresh=found[1] == "r")
    elif policy == "drop_recreate":
        _drop(cur, spec)
        cur.execute(create_table(spec, with_key=False))
        return TargetState(created=True, fresh=True)
    return TargetState()


def _drop(cur: PgCursor, spec: TableSpec) -> None:
    """Plain DROP TABLE (never CASCADE): dependents are reported, not silently dropped."""
    target = spec.plan.target
    try:
        cur.execute(sql.SQL("DROP TABLE {}").format(_table(spec.plan.target_schema, spec.plan.target_table)))
    except psycopg2.Error as exc:
        if exc.pgcode not in _DEPENDENT_CODES:
            raise
        detail = " ".join(str(getattr(exc.diag, "message_detail", "") or "").split())
        raise ConnectorError(
            f"cannot drop target table {target}: other objects depend on it ({detail}); "
            "drop or change those objects, or choose truncate or append"
        ) from None


def existing_enum(cur: PgCursor, schema: str, name: str) -> tuple[str, tuple[str, ...]] | None:
    """(typtype, labels) of a type of that name in the target schema, or None."""
    cur.execute(
        "SELECT t.typtype, array(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid "
        "ORDER BY e.enumsortorder) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
        "WHERE n.nspname = %s AND t.typname = %s",
        (schema, name),
    )
    row = cur.fetchone()
    return (row[0], tuple(row[1])) if row else None
