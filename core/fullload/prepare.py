"""Before rows move: read the source tables' columns, map their types, create target schemas, enums, domains.

Source columns come with their defaults and generation expressions (read with an empty search_path,
so every type in them is qualified, then renamed to the target schema). What the target takes is
decided there by trying (`settle`): extension types it has, generated expressions and defaults
tried on a TEMP table in a savepoint. Also what the pipeline pages and validation use without
loading anything: `plan_target_ddl` (the statements auto-create would run), `compare_columns`
(source vs existing target), `diff_table` and `table_findings` (errors and warnings per table).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import cursor as PgCursor

from core.connectors.base import ColumnInfo, ConnectionSpec, TableDetail
from core.connectors.sqlserver import SqlServerConnector
from core.errors import StudioError, ValidationFailed
from core.fullload import mssql, pgsql
from core.fullload.model import ColumnPlan, Finding, TablePlan, TableSpec
from core.fullload.pgsql import ColumnExpressions
from core.typemap import (
    POSTGRESQL,
    SQLSERVER,
    DomainType,
    EnumType,
    PgUserType,
    guess_kind,
    map_type,
    normalize,
)

KINDS = (POSTGRESQL, SQLSERVER)
SourceColumn = tuple[str, str, bool, PgUserType | None]  # name, type, not null, resolved user type
_NO_EXPRESSIONS = ColumnExpressions()
_PROBE = sql.Identifier("pg_temp", "cdc_studio_probe")


def check_kinds(source: ConnectionSpec, target: ConnectionSpec) -> None:
    """ValidationFailed unless both kinds are ones the engine can copy between."""
    for field, spec in (("source", source), ("target", target)):
        if spec.kind not in KINDS:
            raise ValidationFailed(field, f"full loads support {', '.join(KINDS)}, not '{spec.kind}'")


def same_table(source: ConnectionSpec, target: ConnectionSpec, plan: TablePlan) -> bool:
    """True when the plan would copy a table onto itself (same server, database, schema and name)."""
    where = (source.kind, source.host, source.port, source.database, plan.source_schema, plan.source_table)
    return where == (target.kind, target.host, target.port, target.database, plan.target_schema, plan.target_table)


def map_columns(
    plan: TablePlan,
    columns: Iterable[SourceColumn],
    source_kind: str,
    target_kind: str,
    expressions: dict[str, ColumnExpressions] | None = None,
) -> list[ColumnPlan]:
    """Columns with their target types; ValidationFailed naming schema.table.column for an unmappable type.

    Defaults are kept as candidates (PostgreSQL targets only, never sequence defaults or identities);
    generated columns start as plain columns: `settle` decides on the target what can be carried.
    """
    out = []
    for name, type_text, not_null, user in columns:
        where = f"{plan.source}.{name}"
        target = map_type(type_text, source_kind, target_kind, where, user)
        expr = (expressions or {}).get(name, _NO_EXPRESSIONS)
        candidate = expr.default if target_kind == POSTGRESQL and _carriable_default(expr) else None
        out.append(
            ColumnPlan(
                name=name,
                source_type=type_text,
                target=target,
                not_null=not_null,
                user=user,
                source_default=expr.default,
                default=candidate,
                generated=expr.generated,
                identity=expr.identity,
            )
        )
    return out


def _carriable_default(expr: ColumnExpressions) -> bool:
    return expr.default is not None and not expr.identity and "nextval(" not in expr.default


def _spec(plan: TablePlan, columns: list[ColumnPlan], key: list[str], relkind: str, rows: int) -> TableSpec:
    spec = TableSpec(plan=plan, columns=columns, primary_key=key, relkind=relkind, rows_expected=rows)
    _refresh_types(spec)
    return spec


def _refresh_types(spec: TableSpec) -> None:
    types = spec.user_types
    spec.enums = [t for t in types if isinstance(t, EnumType)]
    spec.domains = [t for t in types if isinstance(t, DomainType)]


def source_specs(source: ConnectionSpec, target_kind: str, plans: list[TablePlan]) -> list[TableSpec | StudioError]:
    """A TableSpec per plan, or the error that stops that table (missing table, unknown type)."""
    if source.kind == POSTGRESQL:
        return _pg_specs(source, target_kind, plans)
    return _mssql_specs(source, target_kind, plans)


def _pg_specs(source: ConnectionSpec, target_kind: str, plans: list[TablePlan]) -> list[TableSpec | StudioError]:
    out: list[TableSpec | StudioError] = []
    conn = pgsql.connect(source)
    try:
        with conn.cursor() as cur:
            for plan in plans:
                try:
                    with pgsql.pg_errors(source):
                        out.append(_pg_spec(cur, source, plan, target_kind))
                except StudioError as exc:
                    out.append(exc)
    finally:
        conn.close()
    return out


def _pg_spec(cur: PgCursor, source: ConnectionSpec, plan: TablePlan, target_kind: str) -> TableSpec:
    """One PostgreSQL source table: columns, expressions (requalified for the target schema), key."""
    oid, relkind = pgsql.relation(cur, source.database, plan.source_schema, plan.source_table)
    raw = pgsql.source_columns(cur, oid)
    renames = _renames(cur, plan, [r[3] for r in raw])
    raw = [(name, text, not_null, _requalified(user, renames)) for name, text, not_null, user in raw]
    expressions = {
        name: dataclasses.replace(
            e, generated=pgsql.requalify(e.generated, renames), default=pgsql.requalify(e.default, renames)
        )
        for name, e in pgsql.column_expressions(cur, oid).items()
    }
    cols = map_columns(plan, raw, POSTGRESQL, target_kind, expressions)
    return _spec(plan, cols, pgsql.primary_key(cur, oid), relkind, 0)


def _walk(user: PgUserType | None) -> Iterable[PgUserType]:
    while user is not None:
        yield user
        user = user.base


def _renames(cur: PgCursor, plan: TablePlan, users: list[PgUserType | None]) -> dict[str, str]:
    """How the source writes each enum/domain qualified -> its name in the target schema."""
    names = sorted({(u.schema, u.name) for top in users for u in _walk(top) if u.kind in ("enum", "domain")})
    renames: dict[str, str] = {}
    for schema, name in names:
        cur.execute("SELECT quote_ident(%s) || '.' || quote_ident(%s)", (schema, name))
        renames[pgsql.one_row(cur)[0]] = sql.Identifier(plan.target_schema, name).as_string(cur)
    return dict(sorted(renames.items(), key=lambda kv: -len(kv[0])))  # longest first: no prefix wins early


def _requalified(user: PgUserType | None, renames: dict[str, str]) -> PgUserType | None:
    if user is None or not renames:
        return user
    return dataclasses.replace(
        user,
        default=pgsql.requalify(user.default, renames),
        checks=tuple((n, pgsql.requalify(d, renames) or d) for n, d in user.checks),
        base=_requalified(user.base, renames),
    )


def _mssql_specs(source: ConnectionSpec, target_kind: str, plans: list[TablePlan]) -> list[TableSpec | StudioError]:
    connector = SqlServerConnector(source)
    out: list[TableSpec | StudioError] = []
    for plan in plans:
        try:
            detail = connector.table_detail(source.database, plan.source_schema, plan.source_table)
            raw = [(c.name, c.type, not c.nullable, None) for c in detail.columns]
            cols = map_columns(plan, raw, SQLSERVER, target_kind)
            out.append(_spec(plan, cols, detail.primary_key, "r", detail.row_count))
        except StudioError as exc:
            out.append(exc)
    return out


# ------------------------------------------------------------------ deciding on the target (PostgreSQL)


def settle(cur: PgCursor, spec: TableSpec, only: set[str] | None = None) -> list[EnumType | DomainType]:
    """Decide on the target, inside the caller's transaction, what the spec's columns become there.

    Extension types the target has keep their type; the schema, enums and domains are created (the
    caller commits or rolls back; returns the ones created); each generated column and default is
    tried on a TEMP table in a savepoint: what fails there is not carried (a note on the spec says
    so). `only` limits the types and tries to those columns (columns added to an existing table).
    """
    _keep_target_types(cur, spec)
    wanted = [c for c in spec.columns if only is None or c.name in only]
    cur.execute(pgsql.create_schema(spec.plan.target_schema))
    created = ensure_types(cur, spec.plan.target_schema, _types_of(wanted))
    _try_expressions(cur, spec, wanted, ready={c.name for c in wanted})
    return created


def _types_of(columns: list[ColumnPlan]) -> list[EnumType | DomainType]:
    seen: dict[tuple[str, str], EnumType | DomainType] = {}
    for col in columns:
        for t in col.target.user_types():
            seen.setdefault((type(t).__name__, t.name), t)
    return list(seen.values())


def _keep_target_types(cur: PgCursor, spec: TableSpec) -> None:
    """Re-map extension-typed columns: kept when the target has the type (same schema and name)."""
    wanted = {(u.schema, u.name) for c in spec.columns for u in _walk(c.user) if u.kind == "base"}
    present = pgsql.user_types_present(cur, wanted)
    if not present:
        return
    for col in spec.columns:
        if any((u.schema, u.name) in present for u in _walk(col.user)):
            where = f"{spec.plan.source}.{col.name}"
            col.target = map_type(col.source_type, POSTGRESQL, POSTGRESQL, where, col.user, present)
    _refresh_types(spec)


def ensure_types(cur: PgCursor, schema: str, types: list[EnumType | DomainType]) -> list[EnumType | DomainType]:
    """Create missing enums and domains in the target schema (dependencies first); the ones created.

    An existing enum must have the same labels in order, an existing domain the same base type.
    """
    created: list[EnumType | DomainType] = []
    for user_type in types:
        if isinstance(user_type, EnumType):
            found = pgsql.existing_enum(cur, schema, user_type.name)
            if found is None:
                cur.execute(pgsql.create_enum(schema, user_type))
                created.append(user_type)
            else:
                _check_enum(schema, user_type, found)
        elif _ensure_domain(cur, schema, user_type):
            created.append(user_type)
    return created


def _check_enum(schema: str, enum: EnumType, found: tuple[str, tuple[str, ...]]) -> None:
    typtype, labels = found
    if typtype != "e" or labels != enum.labels:
        raise ValidationFailed(
            f"{schema}.{enum.name}",
            f"type {schema}.{enum.name} exists in the target with other values ({', '.join(labels) or 'not an enum'})"
            f" than the source enum ({', '.join(enum.labels)}); drop it or rename it",
        )


def _ensure_domain(cur: PgCursor, schema: str, domain: DomainType) -> bool:
    """Create the domain, or accept an existing domain of that name over the same base type; True if created."""
    found = pgsql.existing_domain(cur, schema, domain.name)
    if found is None:
        cur.execute(pgsql.create_domain(schema, domain))
        return True
    typtype, base = found
    if typtype != "d" or normalize(base) != normalize(domain.base.display):
        raise ValidationFailed(
            f"{schema}.{domain.name}",
            f"type {schema}.{domain.name} exists in the target but is not a domain over {domain.base.display}"
            f" ({'domain over ' + base if typtype == 'd' else 'not a domain'}); drop it or rename it",
        )
    return False


def _try_expressions(cur: PgCursor, spec: TableSpec, columns: list[ColumnPlan], ready: set[str]) -> None:
    """Generated expressions and defaults as the target will take them, decided by creating a TEMP table."""
    candidates = [c for c in columns if c.generated is not None or c.default is not None]
    for col in candidates:
        col.generated_on_target = col.generated is not None
    if not candidates or _probe(cur, spec, candidates, ready) is None:
        return
    for col in candidates:
        error = _probe(cur, spec, [col], ready)
        if error is None:
            continue
        if col.generated is not None:
            col.generated_on_target = False
        else:
            spec.notes.append(
                Finding(
                    "warning",
                    f"default of {col.name} ({col.default}) is not carried: the target refuses it ({error})",
                )
            )
            col.default = None


def _probe(cur: PgCursor, spec: TableSpec, trying: list[ColumnPlan], ready: set[str]) -> str | None:
    """Create a TEMP table with the spec's columns (only `trying` with their expressions) in a savepoint,
    rolled back; the server's error, or None when it took it."""
    schema = spec.plan.target_schema
    names = {c.name for c in trying}
    cols = [
        pgsql.column_sql(schema, c if c.name in names else _plain(c, c.name in ready), with_not_null=False)
        for c in spec.columns
    ]
    cur.execute("SAVEPOINT cdc_studio_probe")
    try:
        cur.execute(sql.SQL("CREATE TEMP TABLE {} ({})").format(_PROBE, sql.SQL(", ").join(cols)))
        return None
    except psycopg2.Error as exc:
        return " ".join(str(exc.diag.message_primary or exc).split())
    finally:
        cur.execute("ROLLBACK TO SAVEPOINT cdc_studio_probe; RELEASE SAVEPOINT cdc_studio_probe")


def _plain(col: ColumnPlan, types_ready: bool) -> ColumnPlan:
    """A column as the probe needs it beside the one tried: no expression; text when its types may not exist."""
    target = col.target
    if (target.enum or target.domain) and not types_ready:
        target = dataclasses.replace(target, enum=None, domain=None, sql="text", array_dims=0)
    return dataclasses.replace(col, target=target, default=None, generated=None, generated_on_target=False)


# ------------------------------------------------------------------ target objects


def may_create(spec: TableSpec, exists: bool, auto_create: bool, policy: str) -> bool:
    """Whether the load may create this table (so its schema and enums must exist first)."""
    return policy == "drop_recreate" if exists else auto_create


def target_objects(target: ConnectionSpec, specs: list[TableSpec], auto_create: bool, policy: str) -> dict[int, str]:
    """Create the schemas and enum types tables will need; errors by index into `specs`."""
    if target.kind == POSTGRESQL:
        return _pg_target_objects(target, specs, auto_create, policy)
    return _mssql_target_objects(target, specs, auto_create, policy)


def _pg_target_objects(
    target: ConnectionSpec, specs: list[TableSpec], auto_create: bool, policy: str
) -> dict[int, str]:
    """Per table that may be created: settle it on the target and commit its schema, enums and domains."""
    errors: dict[int, str] = {}
    conn = pgsql.connect(target)
    try:
        conn.autocommit = False
        with conn.cursor() as cur:
            for i, spec in enumerate(specs):
                try:
                    with pgsql.pg_errors(target):
                        if may_create(spec, _pg_exists(cur, target, spec), auto_create, policy):
                            settle(cur, spec)
                        conn.commit()
                except StudioError as exc:
                    conn.rollback()
                    errors[i] = str(exc)
    finally:
        conn.close()
    return errors


def _pg_exists(cur: PgCursor, target: ConnectionSpec, spec: TableSpec) -> bool:
    with pgsql.pg_errors(target):
        return pgsql.target_oid(cur, spec.plan.target_schema, spec.plan.target_table) is not None


def _mssql_target_objects(
    target: ConnectionSpec, specs: list[TableSpec], auto_create: bool, policy: str
) -> dict[int, str]:
    errors: dict[int, str] = {}
    conn = mssql.connect(target, autocommit=True)
    try:
        cur = conn.cursor()
        for i, spec in enumerate(specs):
            if not (auto_create or policy == "drop_recreate"):
                continue
            try:
                cur.execute(mssql.create_schema_statement(spec.plan.target_schema))
            except Exception as exc:  # noqa: BLE001 - pyodbc.Error, translated
                errors[i] = str(mssql.odbc_error(exc, target))
    finally:
        conn.close()
    return errors


# ------------------------------------------------------------------ previews


def plan_target_ddl(source: ConnectionSpec, target: ConnectionSpec, plan: TablePlan) -> list[str]:
    """The statements auto-create would run for one table: schema, missing enums and domains, table."""
    check_kinds(source, target)
    spec = source_specs(source, target.kind, [plan])[0]
    if isinstance(spec, StudioError):
        raise spec
    if target.kind == SQLSERVER:
        return [mssql.create_schema_statement(plan.target_schema), mssql.create_table_statement(spec)]
    conn = pgsql.connect(target)
    try:
        conn.autocommit = False
        with pgsql.pg_errors(target), conn.cursor() as cur:
            created = settle(cur, spec)  # decided by trying, then rolled back
            statements = [pgsql.create_schema(plan.target_schema)]
            statements += [pgsql.create_user_type(plan.target_schema, t) for t in created]
            statements.append(pgsql.create_table(spec))
            return [s.as_string(conn) for s in statements]
    finally:
        conn.close()


def compare_columns(
    source_detail: TableDetail, target_detail: TableDetail | None, target_kind: str, source_kind: str | None = None
) -> dict:
    """Source columns (through the type map) against an existing target table's columns.

    `added`: source columns the target lacks; `removed`: target columns the source lacks;
    `changed`: columns whose mapped type differs (or cannot be mapped). The source kind is
    recognized from its type names unless given.
    """
    if target_detail is None:
        return {"status": "missing", "added": [c.name for c in source_detail.columns], "removed": [], "changed": []}
    kind = source_kind or guess_kind([c.type for c in source_detail.columns])
    target_cols = {c.name: c for c in target_detail.columns}
    source_names = {c.name for c in source_detail.columns}
    added = [c.name for c in source_detail.columns if c.name not in target_cols]
    removed = [c.name for c in target_detail.columns if c.name not in source_names]
    changed = [
        {"name": c.name, "source_type": c.type, "target_type": target_cols[c.name].type}
        for c in source_detail.columns
        if c.name in target_cols and not _same_type(c, target_cols[c.name], kind, target_kind, source_detail)
    ]
    status = "different" if added or removed or changed else "same"
    return {"status": status, "added": added, "removed": removed, "changed": changed}


def _same_type(
    col: ColumnInfo, target_col: ColumnInfo, source_kind: str, target_kind: str, detail: TableDetail
) -> bool:
    try:
        mapped = map_type(col.type, source_kind, target_kind, f"{detail.schema}.{detail.name}.{col.name}")
    except StudioError:
        return False
    return normalize(mapped.display) == normalize(target_col.type)


# ------------------------------------------------------------------ existing target tables


@dataclasses.dataclass
class TableDiff:
    """How an existing target table differs from the source columns (as mapped)."""

    added: list[ColumnPlan]  # source columns the target lacks
    changed: list[tuple[ColumnPlan, pgsql.TargetColumn]]  # target columns whose type cannot take the source's
    loose: list[pgsql.TargetColumn]  # target-only NOT NULL columns without default: rows without them fail

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.loose)

    def describe(self) -> str:
        """The differences in words."""
        parts = []
        if self.added:
            parts.append("new source column(s) " + ", ".join(c.name for c in self.added))
        for col, tcol in self.changed:
            parts.append(f"column {col.name} is {col.target.display} in the source but {tcol.type} in the target")
        if self.loose:
            parts.append("target-only NOT NULL column(s) " + ", ".join(t.name for t in self.loose))
        return "; ".join(parts)


def diff_table(cur: PgCursor, spec: TableSpec, existing: dict[str, pgsql.TargetColumn]) -> TableDiff:
    """Compare the spec's columns with an existing target table's columns."""
    names = set(spec.column_names)
    added = [c for c in spec.columns if c.name not in existing]
    changed = [
        (c, existing[c.name])
        for c in spec.columns
        if c.name in existing and not existing[c.name].generated and not _fits(cur, spec, c, existing[c.name])
    ]
    loose = [
        t for t in existing.values() if t.name not in names and t.not_null and not t.has_default and not t.generated
    ]
    return TableDiff(added, changed, loose)


_IMPLICIT_CAST_SQL = (
    "SELECT EXISTS (SELECT 1 FROM pg_cast WHERE castsource = to_regtype(%s) AND casttarget = %s AND castcontext = 'i')"
)


def _fits(cur: PgCursor, spec: TableSpec, col: ColumnPlan, tcol: pgsql.TargetColumn) -> bool:
    """True when the target column takes every value of the source's type: the same type, or a type the
    source's casts to implicitly without a length/precision limit (int -> bigint, varchar -> text)."""
    if normalize(col.target.display) == normalize(tcol.type):
        return True
    if col.target.enum or col.target.domain or col.target.ident or tcol.typmod != -1:
        return False
    cur.execute(_IMPLICIT_CAST_SQL, (col.target.sql, tcol.type_oid))
    return bool(pgsql.one_row(cur)[0])
