"""What changed in a pipeline's source schemas: columns (by attnum, so a rename is told from a drop and an add),
types, nullability, dropped tables and new tables that match the pipeline's patterns.

The watch keeps the last catalog it read of the streamed tables and compares the source's catalog with it when a
relation message says a table changed (`observe`) and on a schedule (`scan`), which also sees the tables that
receive no changes. Each difference is reported once, as a `Change`; what the pipeline does about it is its
schema_change_policy's business (core.cdc.engine).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from core.cdc import pg_source
from core.connectors.base import ConnectionSpec
from core.table_select import is_pattern, select_tables

SourceTable = tuple[str, str]

COLUMNS_SQL = """
SELECT n.nspname, c.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE n.nspname = ANY(%s) AND c.relkind IN ('r', 'p') AND NOT c.relispartition
ORDER BY n.nspname, c.relname, a.attnum
"""


@dataclass(frozen=True)
class ColumnShape:
    attnum: int
    name: str
    type: str
    not_null: bool


@dataclass(frozen=True)
class Change:
    """One detected change of a source table (`kind` as core.schema_history stores it)."""

    table: str  # schema.table
    # column_added | column_dropped | column_renamed | type_changed | nullability_changed | table_dropped | table_added
    kind: str
    column: str | None = None
    before: str | None = None
    after: str | None = None

    def describe(self) -> str:
        if self.kind == "column_added":
            return f"column {self.column} {self.after} added"
        if self.kind == "column_dropped":
            return f"column {self.column} dropped"
        if self.kind == "column_renamed":
            return f"column {self.before} renamed to {self.after}"
        if self.kind == "type_changed":
            return f"column {self.column} changed type from {self.before} to {self.after}"
        if self.kind == "nullability_changed":
            return f"column {self.column} changed from {self.before} to {self.after}"
        if self.kind == "table_dropped":
            return "table dropped"
        return "new table matching the pipeline's tables"


def _null(not_null: bool) -> str:
    return "NOT NULL" if not_null else "NULL"


def column_changes(table: str, before: Sequence[ColumnShape], after: Sequence[ColumnShape]) -> list[Change]:
    """The differences between two catalogs of one table (matched by attnum: a column keeps it when renamed)."""
    old = {c.attnum: c for c in before}
    new = {c.attnum: c for c in after}
    changes: list[Change] = []
    for attnum, col in new.items():
        was = old.get(attnum)
        if was is None:
            changes.append(Change(table, "column_added", col.name, None, col.type))
            continue
        if was.name != col.name:
            changes.append(Change(table, "column_renamed", col.name, was.name, col.name))
        if was.type != col.type:
            changes.append(Change(table, "type_changed", col.name, was.type, col.type))
        if was.not_null != col.not_null:
            changes.append(Change(table, "nullability_changed", col.name, _null(was.not_null), _null(col.not_null)))
    changes += [Change(table, "column_dropped", c.name, c.type, None) for n, c in old.items() if n not in new]
    return changes


class SchemaWatch:
    """The streamed tables' last known catalog, and what differs from it now (PostgreSQL sources)."""

    def __init__(
        self,
        source: ConnectionSpec,
        tables: Iterable[SourceTable],
        patterns: Sequence[str] = (),
        exclude: Sequence[str] = (),
        mappings: Sequence[dict] = (),
    ) -> None:
        self.source = source
        self.known: dict[SourceTable, tuple[ColumnShape, ...]] = {}
        self.watched: set[SourceTable] = set(tables)
        self.wildcards = [p for p in patterns if is_pattern(p)]
        self.exclude = list(exclude)
        self.mappings = list(mappings)
        self.announced: set[SourceTable] = set()  # new tables reported already (not streamed)

    def read(self) -> dict[SourceTable, tuple[ColumnShape, ...]]:
        """Every table of the watched schemas with its columns."""
        schemas = sorted({s for s, _ in self.watched})
        found: dict[SourceTable, list[ColumnShape]] = {}
        with pg_source.catalog_cursor(self.source) as cur:
            cur.execute(COLUMNS_SQL, (schemas,))
            for schema, table, attnum, name, type_, not_null in cur.fetchall():
                found.setdefault((schema, table), []).append(ColumnShape(attnum, name, type_, bool(not_null)))
        return {k: tuple(v) for k, v in found.items()}

    def baseline(self) -> None:
        """Take the current catalog as known (at the start of a stream: the targets were fitted to it)."""
        current = self.read()
        self.known = {t: current[t] for t in self.watched if t in current}

    def watch(self, table: SourceTable) -> None:
        """Streamed from now on (a new table loaded while streaming): the next scan takes its columns as known."""
        self.watched.add(table)

    def observe(self, tables: Iterable[SourceTable]) -> list[Change]:
        """The column changes of `tables` since they were last read (a relation message said they changed)."""
        wanted = [t for t in tables if t in self.watched]
        if not wanted:
            return []
        current = self.read()
        changes: list[Change] = []
        for table in wanted:
            now = current.get(table)
            if now is None:
                continue  # dropped meanwhile: the scan reports it
            changes += column_changes(f"{table[0]}.{table[1]}", self.known.get(table, now), now)
            self.known[table] = now
        return changes

    def scan(self) -> tuple[list[Change], list[tuple[SourceTable, str]]]:
        """Everything that changed since the last read: column changes, dropped tables (not known any more),
        and the new tables matching the pipeline's wildcards, with their target names (each reported once)."""
        current = self.read()
        changes: list[Change] = []
        for table in sorted(self.watched):
            label = f"{table[0]}.{table[1]}"
            now = current.get(table)
            if now is None:
                if table in self.known:
                    changes.append(Change(label, "table_dropped"))
                    del self.known[table]
                continue
            changes += column_changes(label, self.known.get(table, now), now)
            self.known[table] = now
        new: list[tuple[SourceTable, str]] = []
        if self.wildcards:
            for schema in sorted({s for s, _ in self.watched}):
                names = [t for s, t in current if s == schema]
                try:
                    pairs = select_tables(names, self.wildcards, self.exclude, [])
                except Exception:  # noqa: BLE001 - nothing matches (ValidationFailed): no new table
                    pairs = []
                renames = {m["source"]: m["target"] for m in self.mappings}
                for name, target in pairs:
                    key = (schema, name)
                    if key in self.watched or key in self.announced:
                        continue
                    self.announced.add(key)
                    changes.append(Change(f"{schema}.{name}", "table_added"))
                    new.append((key, renames.get(name, target)))
        return changes, new
