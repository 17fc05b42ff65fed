"""What validation learns of each table before a load: errors that would fail it, warnings worth a look.

Decided on the target by trying (in transactions rolled back afterwards), not by guessing.
"""

from __future__ import annotations

from psycopg2 import sql
from psycopg2.extensions import connection as PgConnection
from psycopg2.extensions import cursor as PgCursor

from core.connectors.base import ConnectionSpec
from core.errors import StudioError, ValidationFailed
from core.fullload import pgsql
from core.fullload.model import ColumnPlan, Finding, LoadOptions, TablePlan, TableSpec
from core.fullload.prepare import TableDiff, check_kinds, diff_table, settle, source_specs
from core.typemap import SQLSERVER


def table_findings(
    source: ConnectionSpec, target: ConnectionSpec, plans: list[TablePlan], options: LoadOptions, *, cdc: bool
) -> dict[str, list[Finding]]:
    """Per table (`plan.source`): errors that would fail the run and warnings worth a look.

    Decided on the target by trying in transactions that are rolled back; raises (a StudioError)
    only when the source or target cannot be reached at all.
    """
    check_kinds(source, target)
    specs = source_specs(source, target.kind, plans)
    out: dict[str, list[Finding]] = {}
    if target.kind == SQLSERVER:
        for plan, spec in zip(plans, specs, strict=True):
            out[plan.source] = (
                _spec_error(spec) if isinstance(spec, StudioError) else _column_findings(spec, cdc, target_pg=False)
            )
        return out
    conn = pgsql.connect(target)
    try:
        conn.autocommit = False
        with conn.cursor() as cur:
            for plan, spec in zip(plans, specs, strict=True):
                out[plan.source] = (
                    _spec_error(spec)
                    if isinstance(spec, StudioError)
                    else _pg_findings(conn, cur, target, spec, options, cdc)
                )
    finally:
        conn.close()
    return out


def _spec_error(error: StudioError) -> list[Finding]:
    return [Finding("error", error.message if isinstance(error, ValidationFailed) else str(error))]


def _pg_findings(
    conn: PgConnection, cur: PgCursor, target: ConnectionSpec, spec: TableSpec, options: LoadOptions, cdc: bool
) -> list[Finding]:
    """One table's findings on a PostgreSQL target; whatever it tried is rolled back."""
    try:
        with pgsql.pg_errors(target):
            return _pg_table_findings(cur, spec, options, cdc)
    except StudioError as exc:
        return [Finding("error", exc.message if isinstance(exc, ValidationFailed) else str(exc))]
    finally:
        conn.rollback()


def _pg_table_findings(cur: PgCursor, spec: TableSpec, options: LoadOptions, cdc: bool) -> list[Finding]:
    plan = spec.plan
    found = pgsql.target_relation(cur, plan.target_schema, plan.target_table)
    if found is None and not options.auto_create:
        return [Finding("error", f"target table {plan.target} does not exist and auto-create is off")]
    if found is None or options.target_table_policy == "drop_recreate":
        settle(cur, spec)
        return _column_findings(spec, cdc, target_pg=True)
    existing = pgsql.target_columns(cur, found[0])
    findings = _policy_findings(cur, spec, options.target_table_policy)
    diff = diff_table(cur, spec, existing)
    settle(cur, spec, only={c.name for c in diff.added})
    findings += _drift_findings(cur, spec, diff, options.schema_drift)
    return findings + _existing_column_findings(spec, existing, cdc)


def _policy_findings(cur: PgCursor, spec: TableSpec, policy: str) -> list[Finding]:
    if policy != "fail":
        return []
    target = spec.plan.target
    cur.execute(
        sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(
            sql.Identifier(spec.plan.target_schema, spec.plan.target_table)
        )
    )
    if pgsql.one_row(cur)[0]:
        return [Finding("error", f"target table {target} is not empty; choose truncate, append or drop_recreate")]
    return []


def _drift_findings(cur: PgCursor, spec: TableSpec, diff: TableDiff, drift: str) -> list[Finding]:
    """What an existing table's differences mean under the drift policy."""
    target = spec.plan.target
    if not diff:
        return []
    if drift == "stop_table":
        return [
            Finding(
                "error",
                f"target table {target} differs from the source ({diff.describe()}) and schema_drift is stop_table",
            )
        ]
    if drift == "ignore":
        return _ignored_findings(cur, spec, diff)
    out = [Finding("warning", f"column {c.name} ({c.target.display}) will be added to {target}") for c in diff.added]
    out += [
        Finding("warning", f"column {c.name} of {target} will be changed from {t.type} to {c.target.display}")
        for c, t in diff.changed
    ]
    out += [
        Finding("warning", f"column {t.name} of {target} is not in the source: NOT NULL will be dropped")
        for t in diff.loose
    ]
    return out


def _ignored_findings(cur: PgCursor, spec: TableSpec, diff: TableDiff) -> list[Finding]:
    target = spec.plan.target
    out = [
        Finding("warning", f"column {c.name} is not in {target} and will not be copied (schema_drift is ignore)")
        for c in diff.added
    ]
    for col, tcol in diff.changed:
        castable = _castable(cur, col, tcol)
        outcome = "values that do not fit fail the load" if castable else "the copy fails"
        out.append(
            Finding(
                "warning" if castable else "error",
                f"column {col.name} is {col.target.display} in the source but {tcol.type} in {target}: {outcome}",
            )
        )
    out += [
        Finding(
            "error", f"column {t.name} of {target} is NOT NULL without default and not in the source: every row fails"
        )
        for t in diff.loose
    ]
    return out


def _castable(cur: PgCursor, col: ColumnPlan, tcol: pgsql.TargetColumn) -> bool:
    """Whether the source's text form can parse as the target type at all (COPY uses the types' text I/O):
    a string target, or a type of the same category (numbers into numbers, times into times)."""
    cur.execute(
        "SELECT t.typcategory = 'S' OR s.oid IS NULL OR t.typcategory = s.typcategory FROM pg_type t "
        "LEFT JOIN pg_type s ON s.oid = to_regtype(%s) WHERE t.oid = %s",
        (col.target.sql, tcol.type_oid),
    )
    row = cur.fetchone()
    return bool(row and row[0])


def _column_findings(spec: TableSpec, cdc: bool, target_pg: bool) -> list[Finding]:
    """Fallback types, generated columns and defaults of a table the load creates."""
    out = _fallback_findings(spec)
    for col in spec.columns:
        if col.generated is not None:
            out.append(_generated_finding(col, col.generated_on_target, cdc))
        elif col.source_default is not None and col.default is None and not col.identity:
            finding = _default_finding(col, target_pg)
            out += [finding] if finding else []
    return out + list(spec.notes)


def _existing_column_findings(spec: TableSpec, existing: dict[str, pgsql.TargetColumn], cdc: bool) -> list[Finding]:
    out = _fallback_findings(spec)
    for col in spec.columns:
        if col.generated is None:
            continue
        on_target = existing[col.name].generated if col.name in existing else col.generated_on_target
        out.append(_generated_finding(col, on_target, cdc))
    return out + list(spec.notes)


def _fallback_findings(spec: TableSpec) -> list[Finding]:
    return [
        Finding("warning", f"{spec.plan.source}.{c.name} ({c.source_type}) will be copied as text")
        for c in spec.columns
        if c.target.cast_text
    ]


def _generated_finding(col: ColumnPlan, on_target: bool, cdc: bool) -> Finding:
    if on_target:
        return Finding(
            "warning", f"generated column {col.name}: created GENERATED on the target with the same expression"
        )
    message = f"generated column {col.name}: a plain column filled from the source values"
    if cdc:
        return Finding("error", message + "; CDC cannot keep it up to date (generated columns are not replicated)")
    return Finding("warning", message)


def _default_finding(col: ColumnPlan, target_pg: bool) -> Finding | None:
    """A default not carried for a reason known before trying (a refused one is among the spec's notes)."""
    if col.source_default and "nextval(" in col.source_default:
        why = "it uses a sequence (values come from the source)"
    elif not target_pg:
        why = "defaults are not carried to SQL Server"
    else:
        return None
    return Finding("warning", f"default of {col.name} ({col.source_default}) is not carried: {why}")
