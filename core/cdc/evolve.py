"""The schema-evolution step: a source table's columns changed, fit its target as the drift policy says."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from core.cdc.applier import PgApplier
from core.cdc.prepare import SourceTable, TableSet
from core.errors import ValidationFailed
from core.events import Event, bus
from core.fullload import TablePlan
from core.fullload.reconcile import reconcile_table

log = logging.getLogger(__name__)


class SchemaEvolution:
    """Fits targets to changed source tables (core.fullload.reconcile), for any engine.

    `propagate_columns` adds new columns (with their defaults, domains and enums), follows type
    changes and lets dropped columns go NULL; `ignore` leaves the target as it is (values of columns
    it lacks are dropped); `stop_table` sets the table aside with the difference as its reason.
    """

    def __init__(self, tables: TableSet) -> None:
        self.tables = tables
        self.plan = tables.plan

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
        if not self.plan.auto_create and added and self.plan.schema_drift == "propagate_columns":
            reason = (
                f"new column(s) {', '.join(added)}; add them to the target or turn auto-create on, then retry the table"
            )
            self.tables.fail(key, reason)
            self._published(where, added, removed, retyped, [f"table set aside: {reason}"])
            return
        target_schema, target_table = pairs[key]
        plan = TablePlan(key[0], key[1], target_schema, target_table)
        try:
            notes = reconcile_table(self.plan.source, self.plan.target, plan, drift=self.plan.schema_drift)
        except ValidationFailed as exc:
            self.tables.fail(key, exc.message)
            self._published(where, added, removed, retyped, [f"table set aside: {exc.message}"])
            return
        applier.refresh(key)
        if notes:
            log.info("pipeline %s: %s: %s", self.plan.pipeline_id, where, "; ".join(notes))
        self._published(where, added, removed, retyped, notes)

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
