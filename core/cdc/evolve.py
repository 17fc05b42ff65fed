"""The schema-evolution step: a source table's columns changed, fit its target as the drift policy says."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from psycopg2 import sql

from core.cdc.applier import PgApplier
from core.cdc.prepare import CdcFailed, SourceTable, TableSet
from core.cdc.schema_watch import Change, SchemaWatch
from core.connectors.base import ConnectionSpec
from core.errors import ValidationFailed
from core.events import Event, bus
from core.fullload import TablePlan, pgsql
from core.fullload.reconcile import reconcile_table

log = logging.getLogger(__name__)


class SchemaEvolution:
    """Fits targets to changed source tables (core.fullload.reconcile), for any engine.

    `propagate_columns` adds new columns (with their defaults, domains and enums), follows type
    changes and lets dropped columns go NULL; `ignore` leaves the target as it is (values of columns
    it lacks are dropped); `stop_table` sets the table aside with the difference as its reason.
    """

    def __init__(
        self,
        tables: TableSet,
        on_schema: Callable[[list[Change], str, str], None] = lambda _changes, _action, _by: None,
    ) -> None:
        self.tables = tables
        self.plan = tables.plan
        self.watch: SchemaWatch | None = None  # PostgreSQL: the catalog as last read (set once streaming)
        self.on_schema = on_schema  # record the changes in the schema history: (changes, action, detected_by)

    def evolve(
        self,
        applier: PgApplier,
        key: SourceTable,
        added: Sequence[str] = (),
        removed: Sequence[str] = (),
        retyped: Sequence[str] = (),
    ) -> None:
        """Table `key` gained `added`, lost `removed` and changed the type of `retyped` columns."""
        pairs = self.tables.pairs
        if key not in pairs or not (added or removed or retyped):
            return
        where = f"{key[0]}.{key[1]}"
        changes = self.watch.observe([key]) if self.watch is not None else []
        if not changes:  # no catalog read (SQL Server), or the scheduled scan saw it first
            changes = [Change(where, "column_added", c) for c in added]
            changes += [Change(where, "column_dropped", c) for c in removed]
            changes += [Change(where, "type_changed", c) for c in retyped]
        if self.plan.schema_drift == "pause":
            self.pause(changes, "stream")
        renamed = {c.after for c in changes if c.kind == "column_renamed"}
        new_columns = [c for c in added if c not in renamed]  # a renamed column is renamed on the target
        if not self.plan.auto_create and new_columns and self.plan.schema_drift != "ignore":
            reason = (
                f"new column(s) {', '.join(new_columns)}; add them to the target or turn auto-create on, "
                "then retry the table"
            )
            self.tables.fail(key, reason)
            self._published(where, added, removed, retyped, [f"table set aside: {reason}"])
            self.on_schema(changes, f"table set aside: {reason}", "stream")
            return
        try:
            notes = self.fit(key, changes)
        except ValidationFailed as exc:
            self.tables.fail(key, exc.message)
            self._published(where, added, removed, retyped, [f"table set aside: {exc.message}"])
            self.on_schema(changes, f"table set aside: {exc.message}", "stream")
            return
        applier.refresh(key)
        if notes:
            log.info("pipeline %s: %s: %s", self.plan.pipeline_id, where, "; ".join(notes))
        self._published(where, added, removed, retyped, notes)
        self.on_schema(changes, _action(self.plan.schema_drift, notes), "stream")

    def fit(self, key: SourceTable, changes: Sequence[Change]) -> list[str]:
        """Fit the target table of `key` to the source's columns now, as the policy says (the applier must be
        idle; refresh it after): under the propagating policies a renamed column is renamed on the target (its
        data kept), then core.fullload.reconcile adds and retypes columns, then a column the source now allows
        NULL in allows it on the target too. Notes of what was done; ValidationFailed under stop_table."""
        target_schema, target_table = self.tables.pairs[key]
        plan = TablePlan(key[0], key[1], target_schema, target_table)
        follow = self.plan.schema_drift not in ("ignore", "stop_table")
        notes = rename_on_target(self.plan.target, target_schema, target_table, changes) if follow else []
        notes += reconcile_table(self.plan.source, self.plan.target, plan, drift=self.plan.schema_drift)
        if follow:
            loosened = [c.column for c in changes if c.kind == "nullability_changed" and c.after == "NULL"]
            notes += allow_nulls_on_target(self.plan.target, target_schema, target_table, loosened)
        return notes

    def pause(self, changes: list[Change], detected_by: str) -> None:
        """Policy `pause`: record the changes and stop the pipeline in ERROR (terminal) saying what changed."""
        what = "; ".join(f"{c.table}: {c.describe()}" for c in changes) or "the source schema changed"
        self.on_schema(changes, "pipeline paused (schema_change_policy pause)", detected_by)
        for table in sorted({c.table for c in changes}):
            self._published(table, [], [], [], ["pipeline paused"])
        raise CdcFailed(
            f"the source schema changed ({what}) and the schema change policy is pause: review the change, then "
            "Start (the target's columns follow it), or set the policy to ignore to leave the target as it is"
        )

    def published(self, where: str, changes: list[Change], notes: list[str]) -> None:
        """Tell the bus of changes a scheduled scan found (the schema_drift alert, live pages)."""
        self._published(
            where,
            [c.column or "" for c in changes if c.kind == "column_added"],
            [c.column or "" for c in changes if c.kind == "column_dropped"],
            [c.column or "" for c in changes if c.kind == "type_changed"],
            notes or [c.describe() for c in changes],
        )

    def _published(
        self, where: str, added: Sequence[str], removed: Sequence[str], retyped: Sequence[str], changes: list[str]
    ) -> None:
        """Tell the bus (the schema_drift alert, live pages) what changed and what was done about it."""
        data = {
            "table": where,
            "added": list(added),
            "removed": list(removed),
            "retyped": list(retyped),
            "changes": changes,
        }
        bus.publish(Event("pipeline.schema", data, self.plan.pipeline_id))


def _action(policy: str, notes: list[str]) -> str:
    """What a change led to, in words, for the schema history."""
    if policy == "ignore":
        return "ignored: the target stays as it is"
    return "; ".join(notes) if notes else "the target already fits"


def rename_on_target(spec: ConnectionSpec, schema: str, table: str, changes: Sequence[Change]) -> list[str]:
    """RENAME the target columns whose source column was renamed (when the target still has the old name and
    not the new one): the rows keep their values under the new name."""
    renames = [(c.before, c.after) for c in changes if c.kind == "column_renamed" and c.before and c.after]
    if not renames:
        return []
    notes: list[str] = []
    with _target_cursor(spec) as cur:
        for old, new in renames:
            present = _target_columns(cur, schema, table, [old, new])
            if old in present and new not in present:
                cur.execute(
                    sql.SQL("ALTER TABLE {} RENAME COLUMN {} TO {}").format(
                        sql.Identifier(schema, table), sql.Identifier(old), sql.Identifier(new)
                    )
                )
                notes.append(f"renamed column {old} to {new} on {schema}.{table}")
    return notes


def allow_nulls_on_target(spec: ConnectionSpec, schema: str, table: str, columns: Sequence[str | None]) -> list[str]:
    """DROP NOT NULL on the target columns whose source column now allows NULL (a NULL would fail there)."""
    wanted = [c for c in columns if c]
    if not wanted:
        return []
    notes: list[str] = []
    with _target_cursor(spec) as cur:
        for column, not_null in _target_columns(cur, schema, table, wanted).items():
            if not_null:
                cur.execute(
                    sql.SQL("ALTER TABLE {} ALTER COLUMN {} DROP NOT NULL").format(
                        sql.Identifier(schema, table), sql.Identifier(column)
                    )
                )
                notes.append(f"column {column} of {schema}.{table} allows NULL now, as on the source")
    return notes


@contextmanager
def _target_cursor(spec: ConnectionSpec) -> Iterator[Any]:
    """A cursor in one target transaction, committed at the end (errors in the project's words)."""
    conn = pgsql.connect(spec)
    try:
        conn.autocommit = False
        with pgsql.pg_errors(spec), conn.cursor() as cur:
            yield cur
        conn.commit()
    finally:
        conn.close()


def _target_columns(cur: Any, schema: str, table: str, names: Sequence[str]) -> dict[str, bool]:
    """Which of `names` the target table has, with whether each is NOT NULL."""
    cur.execute(
        "SELECT attname, attnotnull FROM pg_attribute WHERE attrelid = to_regclass(format('%%I.%%I', %s, %s)) "
        "AND attname = ANY(%s) AND attnum > 0 AND NOT attisdropped",
        (schema, table, list(names)),
    )
    return {name: bool(not_null) for name, not_null in cur.fetchall()}
