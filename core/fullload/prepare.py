"""Before rows move: read the source tables' columns, map their types, create target schemas and enums.

Also the two helpers the pipeline pages use without loading anything: `plan_target_ddl`
(the statements auto-create would run) and `compare_columns` (source vs existing target).
"""

from __future__ import annotations

from collections.abc import Iterable

from core.connectors.base import ColumnInfo, ConnectionSpec, TableDetail
from core.errors import StudioError, ValidationFailed
from core.fullload import mssql, pgsql
from core.fullload.model import ColumnPlan, TablePlan, TableSpec
from core.typemap import POSTGRESQL, SQLSERVER, EnumType, PgUserType, guess_kind, map_type, normalize

KINDS = (POSTGRESQL, SQLSERVER)
SourceColumn = tuple[str, str, bool, PgUserType | None]  # name, type, not null, resolved user type


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
    plan: TablePlan, columns: Iterable[SourceColumn], source_kind: str, target_kind: str
) -> list[ColumnPlan]:
    """Columns with their target types; ValidationFailed naming schema.table.column for an unmappable type."""
    out = []
    for name, type_text, not_null, user in columns:
        where = f"{plan.source}.{name}"
        target = map_type(type_text, source_kind, target_kind, where, user)
        out.append(ColumnPlan(name=name, source_type=type_text, target=target, not_null=not_null))
    return out


def _spec(plan: TablePlan, columns: list[ColumnPlan], key: list[str], relkind: str, rows: int) -> TableSpec:
    enums = list({c.target.enum.name: c.target.enum for c in columns if c.target.enum}.values())
    return TableSpec(plan=plan, columns=columns, primary_key=key, relkind=relkind, rows_expected=rows, enums=enums)


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
                        oid, relkind = pgsql.relation(cur, source.database, plan.source_schema, plan.source_table)
                        cols = map_columns(plan, pgsql.source_columns(cur, oid), POSTGRESQL, target_kind)
                        out.append(_spec(plan, cols, pgsql.primary_key(cur, oid), relkind, 0))
                except StudioError as exc:
                    out.append(exc)
    finally:
        conn.close()
    return out


def _mssql_specs(source: ConnectionSpec, target_kind: str, plans: list[TablePlan]) -> list[TableSpec | StudioError]:
    from core.connectors.sqlserver import SqlServerConnector

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
    errors: dict[int, str] = {}
    conn = pgsql.connect(target)
    try:
        with conn.cursor() as cur:
            for i, spec in enumerate(specs):
                schema = spec.plan.target_schema
                exists = _pg_exists(cur, target, spec)
                if not may_create(spec, exists, auto_create, policy):
                    continue
                try:
                    with pgsql.pg_errors(target):
                        cur.execute(pgsql.create_schema(schema))
                        for enum in spec.enums:
                            _ensure_enum(cur, schema, enum)
                except StudioError as exc:
                    errors[i] = str(exc)
    finally:
        conn.close()
    return errors


def _pg_exists(cur: object, target: ConnectionSpec, spec: TableSpec) -> bool:
    with pgsql.pg_errors(target):
        return pgsql.target_oid(cur, spec.plan.target_schema, spec.plan.target_table) is not None


def _ensure_enum(cur: object, schema: str, enum: EnumType) -> None:
    """Create the enum in the target schema, or accept an existing one with the same labels in order."""
    found = pgsql.existing_enum(cur, schema, enum.name)
    if found is None:
        cur.execute(pgsql.create_enum(schema, enum))
        return
    typtype, labels = found
    if typtype != "e" or labels != enum.labels:
        raise ValidationFailed(
            f"{schema}.{enum.name}",
            f"type {schema}.{enum.name} exists in the target with other values ({', '.join(labels) or 'not an enum'})"
            f" than the source enum ({', '.join(enum.labels)}); drop it or rename it",
        )


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
    """The statements auto-create would run for one table: schema, missing enum types, table."""
    check_kinds(source, target)
    spec = source_specs(source, target.kind, [plan])[0]
    if isinstance(spec, StudioError):
        raise spec
    if target.kind == SQLSERVER:
        return [mssql.create_schema_statement(plan.target_schema), mssql.create_table_statement(spec)]
    conn = pgsql.connect(target)
    try:
        with pgsql.pg_errors(target), conn.cursor() as cur:
            statements = [pgsql.create_schema(plan.target_schema)]
            statements += [
                pgsql.create_enum(plan.target_schema, e)
                for e in spec.enums
                if pgsql.existing_enum(cur, plan.target_schema, e.name) is None
            ]
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
