"""Getting a source ready for CDC: the pipeline's tables, checks, publication, slot, full load before CDC.

`TableSet` is what a running pipeline knows of its tables: which stream (source -> target), which
are set aside (their changes dropped), and from which commit a reloaded table's changes apply.
`SourcePrep` does the work before streaming, for either engine: the checks (wal_level, keys,
replica identity; SQL Server CDC), publication and slot (with the full load under the slot's
snapshot for FULL_LOAD_AND_CDC), and on a restart the reconciliation of the targets and the
reload of tables asked to be loaded again. One table's failure is that table's: with
on_table_error `continue` it is set aside and the others go on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from core.cdc import mssql_source, pg_source
from core.connectors import get_connector
from core.connectors.base import ConnectionSpec
from core.connectors.postgres import PostgresConnector
from core.errors import ObjectNotFound, StudioError, is_transient
from core.events import Event, bus
from core.fullload import FullLoadResult, LoadOptions, TablePlan, TableProgress, pgsql, plan_target_ddl, run_full_load
from core.fullload.reconcile import reconcile_table
from core.plans import CdcPlan

log = logging.getLogger(__name__)

SourceTable = tuple[str, str]
OnTable = Callable[[str, str, str | None, int | None], None]


class CdcFailed(StudioError):
    """The pipeline cannot go on without a person: the message says why and what to do."""


def raise_incomplete(result: FullLoadResult) -> None:
    """Refuse to stream after a full load that did not complete, saying which table and why."""
    failed = [t for t in result.tables if t.status == "FAILED"]
    reason = f"{failed[0].source}: {failed[0].error}" if failed else result.status.lower()
    raise CdcFailed(f"the full load before CDC did not complete ({reason})")


class TableSet:
    """The tables of a running pipeline: streamed pairs, those set aside, and reload points."""

    def __init__(self, plan: CdcPlan, on_table: OnTable | None = None) -> None:
        self.plan = plan
        # A table set aside or reloaded: on_table("schema.table", FAILED|COMPLETED, reason, apply-from LSN).
        self.on_table: OnTable = on_table or (lambda _source, _status, _error, _since: None)
        self.skip: set[SourceTable] = set(plan.refused)  # their changes are dropped, not applied
        self.since: dict[SourceTable, int] = dict(plan.since)  # changes of earlier commits are in the copy
        self.pairs: dict[SourceTable, tuple[str, str]] = {
            (t.source_schema, t.source_table): (t.target_schema, t.target_table)
            for t in plan.tables
            if (t.source_schema, t.source_table) not in plan.refused
        }

    def plans(self) -> list[TablePlan]:
        """The plan's tables that have not been set aside."""
        return [t for t in self.plan.tables if (t.source_schema, t.source_table) in self.pairs]

    def set_aside(self, source: SourceTable) -> None:
        """Stop streaming a table without telling anyone (it was set aside before this start)."""
        self.pairs.pop(source, None)
        self.skip.add(source)

    def fail(self, source: SourceTable, reason: str, announce: bool = True) -> None:
        """Set one table aside (its changes are dropped from now on) or, with on_table_error `stop`, stop."""
        label = f"{source[0]}.{source[1]}"
        if self.plan.on_table_error != "continue":
            raise CdcFailed(f"{label}: {reason}")
        if source not in self.pairs:
            return
        del self.pairs[source]
        self.skip.add(source)
        if not self.pairs:
            raise CdcFailed(f"every table failed; {label}: {reason}")
        log.warning("pipeline %s: table %s set aside: %s", self.plan.pipeline_id, label, reason)
        if announce:
            self.on_table(label, "FAILED", reason, None)
        bus.publish(
            Event("pipeline.table", {"table": label, "status": "FAILED", "error": reason}, self.plan.pipeline_id)
        )

    def set_aside_failed(self, result: FullLoadResult) -> bool:
        """After a full load with FAILED tables: with on_table_error `continue` (and something loaded), set
        them aside and go on streaming the others (True); otherwise False."""
        failed = [t for t in result.tables if t.status == "FAILED"]
        if self.plan.on_table_error != "continue" or result.status != "FAILED" or len(failed) == len(result.tables):
            return False
        for t in failed:
            schema, _, table = t.source.partition(".")
            self.fail((schema, table), t.error or "the full load failed", announce=False)
        return True

    def check_present(self) -> None:
        """Set aside the tables that no longer exist on the source."""
        src = get_connector(self.plan.source)
        for schema in {s for s, _ in self.pairs}:
            present = {t.name for t in tables_or_empty(src, schema)}
            for s, t in [k for k in self.pairs if k[0] == schema and k[1] not in present]:
                self.fail(
                    (s, t),
                    "the source table no longer exists; the target keeps its rows. Remove it "
                    "from the pipeline, or restore it and retry the table",
                )


class SourcePrep:
    """Everything before the stream: checks, publication, slot, full load, restart fixes."""

    def __init__(
        self,
        plan: CdcPlan,
        stop: threading.Event,
        tables: TableSet,
        on_progress: Callable[[TableProgress], None] | None = None,
    ) -> None:
        self.plan = plan
        self.stop = stop
        self.tables = tables
        self.on_progress = on_progress or (lambda _tp: None)
        self.slot = plan.slot or pg_source.slot_name(plan.pipeline_id)
        self.publication = plan.slot or pg_source.publication_name(plan.pipeline_id)
        self.full_load_status: str | None = None

    # ------------------------------------------------------------------ checks

    def check(self) -> None:
        """Refuse a source that cannot do CDC, with the fix in words."""
        if self.plan.source.kind == "sqlserver":
            problems = mssql_source.check_cdc(self.plan.source, list(self.tables.pairs))
            if problems:
                raise CdcFailed("; ".join(problems))
            warning = mssql_source.agent_warning(self.plan.source)
            if warning:
                log.warning("pipeline %s: %s", self.plan.pipeline_id, warning)
            return
        problems = pg_source.check_wal_level(self.plan.source, self.slot)
        if problems:
            raise CdcFailed("; ".join(problems))
        for table, key in pg_source.primary_keys(self.plan.source, list(self.tables.pairs)).items():
            if not key:
                self.tables.fail(
                    table,
                    f"{table[0]}.{table[1]} has no primary key: CDC needs one to apply updates "
                    "and deletes on the target (ALTER TABLE ... ADD PRIMARY KEY), then retry the table",
                )
                continue
            for problem in pg_source.check_replica_identity(self.plan.source, [table]):
                self.tables.fail(table, problem)

    # ------------------------------------------------------------------ PostgreSQL

    def prepare(self) -> None:
        """Publication, slot and (FULL_LOAD_AND_CDC, first start) the full load under the slot's snapshot."""
        src = self.plan.source
        restart = pg_source.slot_status(src, self.slot) is not None
        if restart:  # tables set aside before stay aside (a retry reloads them); a new start loads them all
            for table in set(self.plan.failed_tables) - set(self.plan.reload):
                self.tables.set_aside(table)
        else:
            self.tables.since.clear()
        pg_source.ensure_publication(src, self.publication, list(self.tables.pairs))
        if restart:
            # A restart: continue from the slot and the target's stored position.
            self.reconcile_targets()
            self.reload_tables()
            return
        if self.plan.mode == "FULL_LOAD_AND_CDC" or self.plan.resync:
            self._load_under_snapshot()
        else:
            self.create_missing_targets()
            pg_source.create_slot(src, self.slot)

    def _load_under_snapshot(self) -> None:
        # A resync empties the targets it loads into: what they hold is from the lost slot's time.
        policy = "truncate" if self.plan.resync else self.plan.target_table_policy
        options = LoadOptions(auto_create=self.plan.auto_create, target_table_policy=policy)
        with pg_source.create_slot_with_snapshot(self.plan.source, self.slot) as handle:
            options = replace(options, snapshot_id=handle.snapshot_name)
            self.full_load_status = "RUNNING"
            result = run_full_load(
                self.plan.source, self.plan.target, self.tables.plans(), options, self.on_progress, self.stop
            )
        self._loaded(result, drop_slot=True)

    def _loaded(self, result: FullLoadResult, drop_slot: bool = False) -> None:
        """After the full load before CDC: go on (failed tables set aside, if allowed) or refuse."""
        self.full_load_status = result.status
        if result.status == "COMPLETED":
            return
        if self.tables.set_aside_failed(result):
            self.full_load_status = "COMPLETED"  # of the tables that go on; the failed ones say FAILED
            return
        if drop_slot:
            # Without a complete copy the slot's position is meaningless: drop it so a new start reloads.
            pg_source.drop_slot(self.plan.source, self.slot)
        raise_incomplete(result)

    def create_missing_targets(self) -> None:
        """CDC_ONLY applies changes to existing tables; with auto-create, empty ones are created first."""
        target = PostgresConnector(self.plan.target)
        for plan in self.tables.plans():
            existing = {t.name for t in tables_or_empty(target, plan.target_schema)}
            try:
                if plan.target_table in existing:
                    continue
                if not self.plan.auto_create:
                    raise CdcFailed(
                        f"target table {plan.target_schema}.{plan.target_table} does not exist and auto-create is off"
                    )
                _execute(self.plan.target, plan_target_ddl(self.plan.source, self.plan.target, plan))
            except StudioError as exc:
                if is_transient(exc):  # a database went away: the pipeline's trouble (retried), not the table's
                    raise
                self.tables.fail((plan.source_schema, plan.source_table), str(exc))

    def reload_tables(self) -> None:
        """Tables asked to be loaded again alone (a retry): each under the snapshot of a temporary slot; its
        changes then apply from that slot's consistent point, the others' stream goes on from the stored one."""
        for source in self.plan.reload:
            if self.stop.is_set() or source not in self.tables.pairs:
                continue
            plan = next(t for t in self.plan.tables if (t.source_schema, t.source_table) == source)
            options = LoadOptions(
                auto_create=self.plan.auto_create, target_table_policy="truncate", schema_drift=self.plan.schema_drift
            )
            with pg_source.create_slot_with_snapshot(self.plan.source, f"{self.slot}_reload", temporary=True) as handle:
                result = run_full_load(
                    self.plan.source,
                    self.plan.target,
                    [plan],
                    replace(options, snapshot_id=handle.snapshot_name),
                    self.on_progress,
                    self.stop,
                )
            if result.status == "COMPLETED":
                self.tables.since[source] = handle.consistent_point
                self.tables.on_table(plan.source, "COMPLETED", None, handle.consistent_point)
            elif result.status == "FAILED":
                self.tables.fail(source, result.tables[0].error or "the reload failed")

    def reconcile_targets(self) -> None:
        """A restart: the source may have changed while the pipeline was down; fit the existing targets."""
        for plan in self.tables.plans():
            source = (plan.source_schema, plan.source_table)
            if source in self.tables.skip:
                continue
            try:
                notes = reconcile_table(self.plan.source, self.plan.target, plan, drift=self.plan.schema_drift)
            except ObjectNotFound:
                continue  # not created yet (a failed first start): the load or CDC_ONLY creates it
            except StudioError as exc:
                if is_transient(exc):  # a database went away: the pipeline's trouble (retried), not the table's
                    raise
                self.tables.fail(source, str(exc))
                continue
            for note in notes:
                log.info("pipeline %s: %s: %s", self.plan.pipeline_id, plan.source, note)

    # ------------------------------------------------------------------ SQL Server

    def prepare_sqlserver(self, stored: int | None) -> int | None:
        """SQL Server: the LSN to stream after. A first start reads the max LSN before the full load (nothing
        committed after it is missed) and loads (FULL_LOAD_AND_CDC) or creates missing targets (CDC_ONLY).

        The full load is not a snapshot at that LSN: changes committed while it copies are read
        again afterwards. Applying them again converges (inserts and updates are upserts of the
        whole row, deletes by key), so the target ends equal to the source.
        """
        if stored is not None:
            return stored
        start = self.first_max_lsn()
        if self.plan.mode == "FULL_LOAD_AND_CDC":
            options = LoadOptions(auto_create=self.plan.auto_create, target_table_policy=self.plan.target_table_policy)
            self.full_load_status = "RUNNING"
            result = run_full_load(
                self.plan.source, self.plan.target, self.tables.plans(), options, self.on_progress, self.stop
            )
            self._loaded(result)
        else:
            self.create_missing_targets()
        return start

    def first_max_lsn(self, timeout_s: float = 120.0) -> int:
        """The change tables' max LSN; right after CDC is enabled it is NULL until the capture job's first scan."""
        deadline = time.monotonic() + timeout_s
        while True:
            lsn = mssql_source.max_lsn(self.plan.source)
            if lsn or self.stop.is_set():
                return lsn
            if time.monotonic() > deadline:
                raise CdcFailed(
                    "SQL Server's CDC capture job has not captured anything yet (sys.fn_cdc_get_max_lsn() "
                    "is NULL): make sure SQL Server Agent runs, then start again"
                )
            time.sleep(1.0)

    def source_keys(self) -> dict[SourceTable, list[str]]:
        """The primary key of every streamed table, from the source's catalog."""
        src = get_connector(self.plan.source)
        return {(s, t): src.table_detail(self.plan.source.database, s, t).primary_key for s, t in self.tables.pairs}


def tables_or_empty(connector, schema: str) -> list:  # noqa: ANN001 - any Connector
    """The schema's tables, or none when the schema does not exist."""
    try:
        return connector.list_tables(connector.spec.database, schema)
    except StudioError as exc:
        if getattr(exc, "kind", "") == "object_not_found":
            return []
        raise


def _execute(spec: ConnectionSpec, statements: list) -> None:
    """Run DDL statements in one transaction on a database."""
    conn = pgsql.connect(spec)
    try:
        with pgsql.pg_errors(spec), conn.cursor() as cur:
            cur.execute("BEGIN")
            for statement in statements:
                cur.execute(statement)
            cur.execute("COMMIT")
    finally:
        conn.close()
