"""Schema evolution of an existing PostgreSQL target table: make it fit the source's current columns.

Under drift `propagate_columns`, in one target transaction: missing enums and domains first, then
`ADD COLUMN` with the mapped type and the source's default (PostgreSQL fills the rows already there
with a non-volatile default, as the source did; a volatile one is set for new rows only), generated
columns as auto-create makes them, `ALTER COLUMN ... TYPE` for a type the target cannot hold, and
`DROP NOT NULL` on target columns the source no longer has. `ignore` changes nothing; `stop_table`
raises ValidationFailed describing the difference. Calling it again changes nothing.
"""

from __future__ import annotations

import dataclasses

from psycopg2 import sql
from psycopg2.extensions import cursor as PgCursor

from core.connectors.base import ConnectionSpec
from core.errors import ObjectNotFound, StudioError, ValidationFailed
from core.fullload import pgsql, prepare
from core.fullload.model import DRIFTS, ColumnPlan, TablePlan, TableSpec

_VOLATILE_PROBE = sql.Identifier("pg_temp", "cdc_studio_volatile")


def reconcile_table(
    source: ConnectionSpec, target: ConnectionSpec, plan: TablePlan, *, drift: str = "propagate_columns"
) -> list[str]:
    """Make the existing target table of `plan` fit the source table's current columns; notes of what changed."""
    _check_drift(drift)
    if target.kind != "postgresql":
        raise ValidationFailed("target", "schema reconcile supports PostgreSQL targets")
    spec = prepare.source_specs(source, target.kind, [plan])[0]
    if isinstance(spec, StudioError):
        raise spec
    conn = pgsql.connect(target)
    try:
        conn.autocommit = False
        with pgsql.pg_errors(target), conn.cursor() as cur:
            notes = reconcile_on(cur, spec, drift)
            conn.commit()
            return notes
    finally:
        conn.close()


def _check_drift(drift: str) -> None:
    if drift not in DRIFTS:
        raise ValidationFailed("schema_drift", f"unknown schema drift '{drift}' (expected one of {', '.join(DRIFTS)})")


def reconcile_on(cur: PgCursor, spec: TableSpec, drift: str = "propagate_columns") -> list[str]:
    """`reconcile_table` inside the caller's target transaction, for a prepared spec (the full load uses it)."""
    _check_drift(drift)
    plan = spec.plan
    found = pgsql.target_relation(cur, plan.target_schema, plan.target_table)
    if found is None:
        raise ObjectNotFound(f"target table {plan.target} does not exist")
    diff = prepare.diff_table(cur, spec, pgsql.target_columns(cur, found[0]))
    if not diff or drift == "ignore":
        return []
    if drift == "stop_table":
        raise ValidationFailed(plan.target, f"target table {plan.target} differs from the source: {diff.describe()}")
    # propagate_columns, propagate_fully, pause (after a person's Start): the target's columns follow
    prepare.settle(cur, spec, only={c.name for c in diff.added} | {c.name for c, _ in diff.changed})
    empty = _is_empty(cur, spec)
    notes = [_change_type(cur, spec, col, tcol) for col, tcol in diff.changed]  # before generated columns use them
    notes += [_add_column(cur, spec, col, empty) for col in diff.added]
    notes += [_drop_not_null(cur, spec, tcol) for tcol in diff.loose]
    return notes


def fit_to_target(cur: PgCursor, spec: TableSpec) -> TableSpec:
    """The spec loading into the existing target table: only the columns it has, never its generated ones."""
    oid = pgsql.target_oid(cur, spec.plan.target_schema, spec.plan.target_table)
    if oid is None:
        return spec
    existing = pgsql.target_columns(cur, oid)
    names = [c.name for c in spec.columns if c.name in existing and not existing[c.name].generated]
    return dataclasses.replace(spec, load_columns=names)


def _table(spec: TableSpec) -> sql.Identifier:
    return sql.Identifier(spec.plan.target_schema, spec.plan.target_table)


def _is_empty(cur: PgCursor, spec: TableSpec) -> bool:
    cur.execute(sql.SQL("SELECT NOT EXISTS (SELECT 1 FROM {})").format(_table(spec)))
    return bool(pgsql.one_row(cur)[0])


def _add_column(cur: PgCursor, spec: TableSpec, col: ColumnPlan, empty: bool) -> str:
    """ADD COLUMN as auto-create would create it; NOT NULL only where the rows already there get a value."""
    schema, target = spec.plan.target_schema, spec.plan.target
    volatile = col.default is not None and not col.generated_on_target and _volatile_default(cur, schema, col)
    first = dataclasses.replace(col, default=None) if volatile else col
    filled = empty or col.generated_on_target or (col.default is not None and not volatile)
    not_null = col.not_null and filled
    definition = pgsql.column_sql(schema, dataclasses.replace(first, not_null=not_null))
    cur.execute(sql.SQL("ALTER TABLE {} ADD COLUMN {}").format(_table(spec), definition))
    note = f"added column {col.name} {col.target.display} to {target}"
    if col.generated is not None:
        how = "GENERATED with the source's expression" if col.generated_on_target else "a plain column"
        note += f" ({how})"
    elif volatile and col.default is not None:  # volatile implies a default; this narrows it
        cur.execute(
            sql.SQL("ALTER TABLE {} ALTER COLUMN {} SET DEFAULT " + col.default).format(
                _table(spec), sql.Identifier(col.name)
            )
        )
        note += f"; its default {col.default} is volatile: rows already there stay NULL, new rows get it"
    elif col.default is not None:
        note += f" with default {col.default} (rows already there get it)"
    if col.not_null and not not_null:
        note += "; NOT NULL left off: rows already there have no value"
    return note


def _volatile_default(cur: PgCursor, schema: str, col: ColumnPlan) -> bool:
    """Whether PostgreSQL evaluates the default per row (volatile), tried on a one-row TEMP table:
    a non-volatile default added to existing rows is stored once (`atthasmissing`)."""
    probe = dataclasses.replace(col, generated=None, generated_on_target=False, not_null=False)
    cur.execute("SAVEPOINT cdc_studio_volatile")
    try:
        cur.execute(sql.SQL("CREATE TEMP TABLE {} (cdc_studio_x int)").format(_VOLATILE_PROBE))
        cur.execute(sql.SQL("INSERT INTO {} VALUES (1)").format(_VOLATILE_PROBE))
        cur.execute(sql.SQL("ALTER TABLE {} ADD COLUMN {}").format(_VOLATILE_PROBE, pgsql.column_sql(schema, probe)))
        cur.execute(
            "SELECT atthasmissing FROM pg_attribute WHERE attrelid = 'pg_temp.cdc_studio_volatile'::regclass "
            "AND attname = %s",
            (col.name,),
        )
        return not pgsql.one_row(cur)[0]
    finally:
        cur.execute("ROLLBACK TO SAVEPOINT cdc_studio_volatile; RELEASE SAVEPOINT cdc_studio_volatile")


def _change_type(cur: PgCursor, spec: TableSpec, col: ColumnPlan, tcol: pgsql.TargetColumn) -> str:
    """ALTER COLUMN ... TYPE new USING col::new."""
    new_type = pgsql.type_sql(spec.plan.target_schema, col.target)
    name = sql.Identifier(col.name)
    cur.execute(
        sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE {} USING {}::{}").format(
            _table(spec), name, new_type, name, new_type
        )
    )
    return f"changed column {col.name} of {spec.plan.target} from {tcol.type} to {col.target.display}"


def _drop_not_null(cur: PgCursor, spec: TableSpec, tcol: pgsql.TargetColumn) -> str:
    cur.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN {} DROP NOT NULL").format(_table(spec), sql.Identifier(tcol.name)))
    return f"column {tcol.name} of {spec.plan.target} is no longer in the source: dropped its NOT NULL"
