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

from core.connectors import postgres
from core.connectors.base import ConnectionSpec
from core.connectors.postgres import translate_error
from core.errors import ConnectorError, ObjectNotFound, ValidationFailed
from core.fullload.model import ColumnPlan, TableSpec
from core.typemap import DomainType, EnumType, PgUserType, TargetType, normalize, parse_type

APPLICATION_NAME = "cdc-studio-fullload"
FIRST_NORMAL_OID = 16384  # oids below are built into every PostgreSQL
EXACT_COUNT_BYTES = 32 << 20  # count(*) under the snapshot when the table is smaller than this
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
    return postgres.connect(spec, application_name=APPLICATION_NAME, session_sql=_SESSION_SQL)


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
       array(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder),
       t.typnotnull, pg_get_expr(t.typdefaultbin, 0),
       array(SELECT ARRAY[c.conname::text, pg_get_constraintdef(c.oid)] FROM pg_constraint c
             WHERE c.contypid = t.oid AND c.contype = 'c' ORDER BY c.conname)
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.oid = ANY(%s)
"""
_EXPRESSIONS_SQL = """
SELECT a.attname, a.attgenerated, a.attidentity, pg_get_expr(d.adbin, d.adrelid)
FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
"""
_TARGET_COLUMNS_SQL = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attgenerated <> '', a.atthasdef,
       a.atttypid, a.atttypmod
FROM pg_attribute a WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
"""
_KINDS = {"e": "enum", "d": "domain", "b": "base", "c": "composite", "r": "range", "m": "multirange", "p": "pseudo"}


def one_row(cur: PgCursor) -> tuple[Any, ...]:
    """The row of a query that always returns exactly one (an aggregate, EXISTS, set_config)."""
    row = cur.fetchone()
    if row is None:
        raise ConnectorError("the server returned no row for a query that always returns one")
    return row


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


@contextmanager
def bare_search_path(cur: PgCursor) -> Iterator[None]:
    """An empty search_path while inside, so catalog expressions name every object's schema."""
    cur.execute("SELECT current_setting('search_path'), set_config('search_path', '', false)")
    saved = one_row(cur)[0]
    try:
        yield
    finally:
        cur.execute("SELECT set_config('search_path', %s, false)", (saved,))


@dataclass(frozen=True)
class ColumnExpressions:
    """A source column's generation expression, default and identity, as `pg_get_expr` renders them."""

    generated: str | None = None
    default: str | None = None
    identity: bool = False


def column_expressions(cur: PgCursor, oid: int) -> dict[str, ColumnExpressions]:
    """Per column name: generated expression (stored generated columns), default, identity."""
    with bare_search_path(cur):
        cur.execute(_EXPRESSIONS_SQL, (oid,))
        rows = cur.fetchall()
    out = {}
    for name, generated, identity, expr in rows:
        is_generated = bool(generated)
        out[name] = ColumnExpressions(
            generated=expr if is_generated else None,
            default=None if is_generated else expr,
            identity=bool(identity),
        )
    return out


def resolve_user_types(cur: PgCursor, oids: set[int]) -> dict[int, PgUserType]:
    """User types by oid, following array element and domain base types down to built-ins."""
    rows: dict[int, tuple] = {}
    missing = set(oids)
    with bare_search_path(cur):
        while missing:
            cur.execute(_TYPES_SQL, (sorted(missing),))
            for row in cur.fetchall():
                rows[row[0]] = row
            referenced = {r[5] if r[4] else r[6] for r in rows.values()}
            missing = {o for o in referenced if o >= FIRST_NORMAL_OID and o not in rows}

    def build(oid: int, depth: int = 0) -> PgUserType:
        _, typtype, schema, name, is_array, elem, base_oid, base_text, labels, not_null, default, checks = rows[oid]
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
            not_null=bool(not_null),
            default=default,
            checks=tuple((c[0], c[1]) for c in checks or ()),
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
    estimate, unknown, size = one_row(cur)
    if unknown or size < EXACT_COUNT_BYTES:
        cur.execute(sql.SQL("SELECT count(*) FROM {}").format(_table(spec.plan.source_schema, spec.plan.source_table)))
        return one_row(cur)[0], True, size
    return estimate, False, size


# ------------------------------------------------------------------ statements


def _table(schema: str, name: str) -> sql.Identifier:
    return sql.Identifier(schema, name)


def _columns(names: list[str]) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(n) for n in names)


def type_sql(schema: str, target: TargetType) -> sql.Composable:
    """A column type for DDL: enums and domains as identifiers in the target schema, kept extension types as
    identifiers in their schema, built-ins as the type map wrote them."""
    dims = sql.SQL("[]" * target.array_dims)
    if target.enum is not None:
        return sql.Composed([sql.Identifier(schema, target.enum.name), dims])
    if target.domain is not None:
        return sql.Composed([sql.Identifier(schema, target.domain.name), dims])
    if target.ident is not None:
        args = parse_type(target.sql).args
        modifier = sql.SQL("(" + ",".join(args) + ")" if args and all(a.isdigit() for a in args) else "")
        return sql.Composed([sql.Identifier(*target.ident), modifier, dims])
    return sql.SQL(target.sql)


def create_schema(schema: str) -> sql.Composed:
    """CREATE SCHEMA IF NOT EXISTS."""
    return sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema))


def create_enum(schema: str, enum: EnumType) -> sql.Composed:
    """CREATE TYPE ... AS ENUM with the labels in the source's order."""
    labels = sql.SQL(", ").join(sql.Literal(label) for label in enum.labels)
    return sql.SQL("CREATE TYPE {} AS ENUM ({})").format(sql.Identifier(schema, enum.name), labels)


def create_domain(schema: str, domain: DomainType) -> sql.Composed:
    """CREATE DOMAIN in the target schema with the source's base type, DEFAULT, NOT NULL and CHECKs."""
    parts: list[sql.Composable] = [
        sql.SQL("CREATE DOMAIN {} AS ").format(sql.Identifier(schema, domain.name)),
        type_sql(schema, domain.base),
    ]
    if domain.default is not None:
        parts.append(sql.SQL(" DEFAULT " + domain.default))
    if domain.not_null:
        parts.append(sql.SQL(" NOT NULL"))
    for name, definition in domain.checks:
        parts.append(sql.SQL(" CONSTRAINT {} ").format(sql.Identifier(name)) + sql.SQL(definition))
    return sql.Composed(parts)


def create_user_type(schema: str, user_type: EnumType | DomainType) -> sql.Composed:
    """CREATE TYPE ... AS ENUM or CREATE DOMAIN."""
    if isinstance(user_type, EnumType):
        return create_enum(schema, user_type)
    return create_domain(schema, user_type)


def column_sql(schema: str, col: ColumnPlan, with_not_null: bool = True) -> sql.Composed:
    """One column definition: name, type, DEFAULT or GENERATED ALWAYS AS (...) STORED, NOT NULL."""
    parts: list[sql.Composable] = [sql.Identifier(col.name), sql.SQL(" "), type_sql(schema, col.target)]
    if col.generated_on_target and col.generated is not None:
        parts.append(sql.SQL(" GENERATED ALWAYS AS (" + col.generated + ") STORED"))
    elif col.default is not None:
        parts.append(sql.SQL(" DEFAULT " + col.default))
    if col.not_null and with_not_null:
        parts.append(sql.SQL(" NOT NULL"))
    return sql.Composed(parts)


def create_table(spec: TableSpec, with_key: bool = True) -> sql.Composed:
    """CREATE TABLE with the columns in order, mapped types, defaults, generated columns, NOT NULL and the
    primary key in key order."""
    schema = spec.plan.target_schema
    parts: list[sql.Composable] = [column_sql(schema, col) for col in spec.columns]
    if spec.primary_key and with_key:
        parts.append(sql.SQL("PRIMARY KEY ({})").format(_columns(spec.primary_key)))
    return sql.SQL("CREATE TABLE {} ({})").format(_table(schema, spec.plan.target_table), sql.SQL(", ").join(parts))


def copy_out(spec: TableSpec, fmt: str) -> sql.Composed:
    """COPY of the loaded columns to STDOUT: straight from a plain table, through SELECT otherwise (other
    relation kinds, and source generated columns, which COPY refuses in a column list)."""
    src = _table(spec.plan.source_schema, spec.plan.source_table)
    columns = spec.copy_columns
    cols = _columns([c.name for c in columns])
    if spec.relkind == "r" and not any(c.generated is not None for c in columns):
        return sql.SQL("COPY {} ({}) TO STDOUT (FORMAT {})").format(src, cols, sql.SQL(fmt))
    return sql.SQL("COPY (SELECT {} FROM {}) TO STDOUT (FORMAT {})").format(cols, src, sql.SQL(fmt))


def copy_in(spec: TableSpec, fmt: str, freeze: bool = False) -> sql.Composed:
    """COPY FROM STDIN into the loaded columns; FREEZE when the table is new in this transaction."""
    target = _table(spec.plan.target_schema, spec.plan.target_table)
    options = sql.SQL(fmt + (", FREEZE" if freeze else ""))
    names = [c.name for c in spec.copy_columns]
    return sql.SQL("COPY {} ({}) FROM STDIN (FORMAT {})").format(target, _columns(names), options)


def add_primary_key(spec: TableSpec) -> sql.Composed:
    """The primary key of a table created by the load, built once after the rows are in (a sorted build)."""
    target = _table(spec.plan.target_schema, spec.plan.target_table)
    return sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})").format(target, _columns(spec.primary_key))


def select_rows(spec: TableSpec) -> sql.Composed:
    """SELECT of the source columns for row-by-row readers; columns without a target type are read as text."""
    exprs = [
        sql.SQL("{}::text").format(sql.Identifier(c.name)) if c.target.cast_text else sql.Identifier(c.name)
        for c in spec.copy_columns
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


@dataclass(frozen=True)
class TargetColumn:
    """A column of an existing target table."""

    name: str
    type: str  # format_type
    not_null: bool
    generated: bool
    has_default: bool
    type_oid: int
    typmod: int


def target_columns(cur: PgCursor, oid: int) -> dict[str, TargetColumn]:
    """The columns of an existing target table by name, in table order."""
    cur.execute(_TARGET_COLUMNS_SQL, (oid,))
    return {r[0]: TargetColumn(*r) for r in cur.fetchall()}


def same_types(spec: TableSpec, existing: dict[str, str]) -> bool:
    """True when every loaded column exists in the target with exactly the mapped type."""
    return all(
        c.name in existing and normalize(existing[c.name]) == normalize(c.target.display) for c in spec.copy_columns
    )


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
        rows = one_row(cur)[0]
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


def existing_domain(cur: PgCursor, schema: str, name: str) -> tuple[str, str] | None:
    """(typtype, format_type of the base type) of a type of that name in the target schema, or None."""
    cur.execute(
        "SELECT t.typtype, format_type(t.typbasetype, t.typtypmod) FROM pg_type t "
        "JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = %s AND t.typname = %s",
        (schema, name),
    )
    row = cur.fetchone()
    return (row[0], row[1] or "") if row else None


def user_types_present(cur: PgCursor, names: set[tuple[str, str]]) -> frozenset[tuple[str, str]]:
    """Which (schema, name) types exist in the target database."""
    if not names:
        return frozenset()
    schemas, types = zip(*sorted(names), strict=True)
    cur.execute(
        "SELECT n.nspname, t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
        "JOIN unnest(%s::text[], %s::text[]) AS w(s, t) ON w.s = n.nspname AND w.t = t.typname",
        (list(schemas), list(types)),
    )
    return frozenset((r[0], r[1]) for r in cur.fetchall())


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


_IDENT_CHARS = frozenset('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_$"')


def requalify(expr: str | None, renames: dict[str, str]) -> str | None:
    """An expression with qualified type names (`"Shop".mood`) replaced by their target names, outside literals.

    Catalog expressions are read with an empty search_path, so every user type in them is schema-qualified;
    the types are created in the target schema, so their references must follow.
    """
    if not expr or not renames:
        return expr
    out: list[str] = []
    i, n = 0, len(expr)
    while i < n:
        ch = expr[i]
        if ch == "'":
            end = _literal_end(expr, i)
            out.append(expr[i:end])
            i = end
            continue
        match = _rename_at(expr, i, renames)
        if match:
            out.append(renames[match])
            i += len(match)
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _literal_end(expr: str, start: int) -> int:
    """The index after the string literal starting at `start` ('' doubles a quote, E'' strings escape with \\)."""
    escapes = start > 0 and expr[start - 1] in "eE"
    i = start + 1
    while i < len(expr):
        if escapes and expr[i] == "\\":
            i += 2
            continue
        if expr[i] == "'":
            if i + 1 < len(expr) and expr[i + 1] == "'":
                i += 2
                continue
            return i + 1
        i += 1
    return len(expr)


def _rename_at(expr: str, i: int, renames: dict[str, str]) -> str | None:
    if i > 0 and expr[i - 1] in _IDENT_CHARS:
        return None
    for key in renames:
        end = i + len(key)
        if expr.startswith(key, i) and (end >= len(expr) or expr[end] not in _IDENT_CHARS):
            return key
    return None
