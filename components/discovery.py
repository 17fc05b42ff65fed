"""Browsing a connection: database -> schema -> tables -> one table's detail, and a load order.

Every call goes through core.connections in a worker thread; a newer choice (another database or
schema) makes the answers of older calls stale, and stale answers are dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from nicegui import run, ui

from components.format import human_bytes, human_count
from components.messages import plain
from components.table_detail import TableDetailView
from core import connections
from core.connections import ConnectionPublic
from core.connectors.base import Dependencies, SchemaInfo, TableInfo
from core.errors import StudioError
from core.users import Actor

log = logging.getLogger(__name__)

TABLE_COLUMNS = [
    {"name": "name", "label": "Table", "field": "name", "align": "left", "sortable": True},
    {"name": "row_count", "label": "Rows", "field": "row_count", "align": "right", "sortable": True},
    {"name": "size_bytes", "label": "Size", "field": "size_bytes", "align": "right", "sortable": True},
    {
        "name": "has_primary_key",
        "label": "Primary key",
        "field": "has_primary_key",
        "align": "center",
        "sortable": True,
    },
    {"name": "count", "label": "", "field": "key", "align": "right"},
]
ROWS_SLOT = r"""
<q-td :props="props">
  {{ props.row.rows_text }}
  <q-badge v-if="props.row.row_count_exact" color="positive" outline label="exact" class="ml-1">
    <q-tooltip>counted with count(*)</q-tooltip>
  </q-badge>
  <q-tooltip v-else>estimate from the catalog statistics</q-tooltip>
</q-td>
"""
SIZE_SLOT = r"""<q-td :props="props">{{ props.row.size_text }}</q-td>"""
PK_SLOT = r"""
<q-td :props="props">
  <q-icon v-if="props.value" name="key" color="positive" size="sm" />
  <q-badge v-else color="warning" text-color="black" label="no primary key" />
</q-td>
"""
COUNT_SLOT = r"""
<q-td :props="props">
  <q-btn v-if="!props.row.row_count_exact" flat dense round size="sm" icon="functions"
         @click.stop="$parent.$emit('count', props.row.key)"><q-tooltip>Count rows exactly</q-tooltip></q-btn>
</q-td>
"""


def table_row(t: TableInfo) -> dict[str, Any]:
    """A tables-table row: raw numbers to sort by, display strings to show."""
    return {
        "key": f"{t.schema}.{t.name}",
        "schema": t.schema,
        "name": t.name,
        "row_count": t.row_count,
        "rows_text": human_count(t.row_count),
        "row_count_exact": t.row_count_exact,
        "size_bytes": t.size_bytes,
        "size_text": human_bytes(t.size_bytes),
        "has_primary_key": t.has_primary_key,
    }


def default_schema(schemas: list[SchemaInfo], preferred: str | None, kind: str) -> str | None:
    """The schema discovery opens: the connection's default schema, else the one where the data is.

    "Where the data is" is the largest schema by size, then rows, then tables; when the server tells
    none of these (all zero), the kind's usual schema (public / dbo), else the first.
    """
    names = [s.name for s in schemas]
    if preferred and preferred in names:
        return preferred
    largest = max(schemas, key=lambda s: (s.size_bytes, s.row_count, s.table_count), default=None)
    if largest is not None and (largest.size_bytes, largest.row_count, largest.table_count) != (0, 0, 0):
        return largest.name
    usual = "dbo" if kind == "sqlserver" else "public"
    if usual in names:
        return usual
    return names[0] if names else None


class Busy:
    """A spinner shown while at least one call runs."""

    def __init__(self, spinner: ui.spinner) -> None:
        self.spinner = spinner
        self.count = 0
        spinner.visible = False

    def __enter__(self) -> None:
        self.count += 1
        self.spinner.visible = True

    def __exit__(self, *exc: object) -> None:
        self.count -= 1
        self.spinner.visible = self.count > 0


class DiscoveryPanel:
    """Database and schema pickers, the tables of the schema, one table's detail, and dependencies."""

    def __init__(self, actor: Actor, connection: ConnectionPublic) -> None:
        self.actor = actor
        self.connection = connection
        self.tables: list[TableInfo] = []
        self._generation = 0
        self._shown: tuple[str | None, str | None] = (None, None)
        self._silent = False
        self._build()

    # ---- layout -------------------------------------------------------------------------------
    def _build(self) -> None:
        with ui.row().classes("w-full items-center gap-4"):
            self.database = (
                ui.select([], label="Database", on_change=self._database_changed).classes("w-64").mark("db-select")
            )
            self.schema = (
                ui.select([], label="Schema", on_change=self._schema_changed).classes("w-64").mark("schema-select")
            )
            self.refresh_button = (
                ui.button("Refresh", icon="refresh", on_click=self.refresh).props("flat").mark("discovery-refresh")
            )
            self.exact_button = (
                ui.button("Exact counts", icon="functions", on_click=lambda: self.load_tables(exact=True))
                .props("outline")
                .mark("exact-counts")
            )
            self.exact_button.tooltip("Count every table's rows with count(*) — can be slow on big tables")
            self.busy = Busy(ui.spinner(size="lg").mark("discovery-spinner"))
        self.error = ui.label().classes("text-negative").mark("discovery-error")
        self.error.visible = False
        # Hidden until tables are loaded, so a failure shows only its reason, not an empty table.
        with ui.column().classes("w-full gap-4") as self.body:
            with ui.element("div").classes("w-full grid grid-cols-1 lg:grid-cols-2 gap-4 items-start"):
                with ui.column().classes("w-full gap-2"):
                    self.summary = ui.label().classes("text-grey-7").mark("tables-summary")
                    self.table = (
                        ui.table(
                            columns=TABLE_COLUMNS,
                            rows=[],
                            row_key="key",
                            pagination={"rowsPerPage": 15, "sortBy": "name"},
                        )
                        .classes("w-full")
                        .props('flat bordered dense no-data-label="No tables in this schema"')
                        .mark("tables-table")
                    )
                    self.table.add_slot("body-cell-row_count", ROWS_SLOT)
                    self.table.add_slot("body-cell-size_bytes", SIZE_SLOT)
                    self.table.add_slot("body-cell-has_primary_key", PK_SLOT)
                    self.table.add_slot("body-cell-count", COUNT_SLOT)
                    self.table.on(
                        "rowClick", lambda e: self.show_table(_key_of(e.args)), js_handler="(evt, row) => emit(row.key)"
                    )
                    self.table.on("count", lambda e: self.count_exactly(_key_of(e.args)))
                self.detail = TableDetailView(on_count=self.count_exactly)
            with (
                ui.expansion("Dependencies (load order)", icon="account_tree")
                .classes("w-full")
                .props("header-class=text-lg") as self.dependencies_panel
            ):
                self.dependencies_panel.mark("dependencies")
                self._build_dependencies()
        self.body.visible = False

    def _build_dependencies(self) -> None:
        ui.label(
            "Pick tables to see the order a full load must follow: tables only referenced by others "
            "come first; tables on one level can load in parallel."
        ).classes("text-grey-7")
        with ui.row().classes("w-full items-center gap-2"):
            self.dep_tables = (
                ui.select([], label="Tables", multiple=True, with_input=True)
                .props("use-chips clearable")
                .classes("flex-1 min-w-64")
                .mark("dep-tables")
            )
            ui.button("All", on_click=self._select_all).props("flat").mark("dep-all")
            self.dep_button = ui.button("Show load order", icon="sort", on_click=self.show_dependencies).mark("dep-run")
        self.dep_result = ui.column().classes("w-full gap-1").mark("dep-result")

    # ---- loading ------------------------------------------------------------------------------
    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[bool, Any]:
        """Run a service call off the loop; (True, result) or (False, None) after showing the error."""
        with self.busy:
            try:
                return True, await run.io_bound(fn, self.actor, self.connection.id, *args, **kwargs)
            except StudioError as exc:
                self.show_error(plain(exc))
                return False, None
            except Exception as exc:  # a bug, not the user's doing: log it, still answer in words
                log.exception("discovery call %s failed", getattr(fn, "__name__", fn))
                self.show_error(plain(exc))
                return False, None

    def show_error(self, text: str) -> None:
        """Show an error in words above the tables."""
        self.error.text = text
        self.error.visible = True

    def _clear_error(self) -> None:
        self.error.visible = False

    def _set_silently(self, select: ui.select, options: dict[str, str], value: str | None) -> None:
        self._silent = True
        try:
            select.set_options(options, value=value)
        finally:
            self._silent = False

    async def start(self) -> None:
        """Load the databases and open the connection's own database."""
        self._clear_error()
        ok, databases = await self._call(connections.list_databases)
        if not ok or databases is None:
            return
        options = {
            d.name: d.name if d.size_bytes is None else f"{d.name} ({human_bytes(d.size_bytes)})" for d in databases
        }
        if self.connection.database not in options:
            options = {self.connection.database: self.connection.database, **options}
        self._set_silently(self.database, options, self.connection.database)
        await self.load_schemas()

    async def refresh(self) -> None:
        """Reload what is shown; start over if not even the databases loaded."""
        if not self.database.options:
            await self.start()
        else:
            await self.load_tables()

    async def _database_changed(self) -> None:
        if not self._silent:
            await self.load_schemas()

    async def _schema_changed(self) -> None:
        if not self._silent:
            await self.load_tables()

    async def load_schemas(self) -> None:
        """Schemas of the chosen database; then the tables of the default schema."""
        self._generation += 1
        generation = self._generation
        self._clear_error()
        self._show_tables([])
        ok, schemas = await self._call(connections.list_schemas, self.database.value)
        if generation != self._generation:
            return
        if not ok or schemas is None:
            self.body.visible = False
            return
        options = {s.name: _schema_label(s) for s in schemas}
        self._set_silently(self.schema, options, default_schema(schemas, self.connection.schema_, self.connection.kind))
        await self.load_tables()

    async def load_tables(self, exact: bool = False) -> None:
        """Tables of the chosen schema (estimated counts, or exact ones)."""
        if not self.schema.value:
            self._show_tables([])
            self.body.visible = True
            return
        self._generation += 1
        generation = self._generation
        self._clear_error()
        self.exact_button.disable()
        try:
            ok, tables = await self._call(
                connections.list_tables, database=self.database.value, schema=self.schema.value, exact=exact
            )
        finally:
            self.exact_button.enable()
        if generation != self._generation:
            return
        if not ok or tables is None:
            self.body.visible = False
            return
        self._show_tables(tables)
        self.body.visible = True

    def _show_tables(self, tables: list[TableInfo]) -> None:
        context = (self.database.value, self.schema.value)
        if context != self._shown:  # another database or schema: what was picked there no longer applies
            self._shown = context
            self.dep_result.clear()
            self.detail.clear()
        self.tables = tables
        self.table.rows = [table_row(t) for t in tables]
        names = [t.name for t in tables]
        self.dep_tables.set_options(names, value=[v for v in (self.dep_tables.value or []) if v in names])
        open_table = self._find(self.detail.key) if self.detail.key else None
        if open_table is None:
            self.detail.clear()
        else:  # the open table's count may have changed (Exact counts, Refresh): its detail says so too
            self.detail.update_count(self.detail.key or "", open_table)
        if not self.schema.value:
            self.summary.text = ""
        elif tables:
            total = sum(max(t.row_count, 0) for t in tables)
            size = sum(max(t.size_bytes, 0) for t in tables)
            no_pk = sum(1 for t in tables if not t.has_primary_key)
            self.summary.text = (
                f"{len(tables)} tables · {human_count(total)} rows · {human_bytes(size)}"
                + (f" · {no_pk} without a primary key" if no_pk else "")
                + " — click a table for its columns and keys"
            )
        else:
            self.summary.text = f"The schema {self.schema.value} has no tables."

    def _find(self, key: str) -> TableInfo | None:
        return next((t for t in self.tables if f"{t.schema}.{t.name}" == key), None)

    async def show_table(self, key: str) -> None:
        """Load and show one table's columns, keys and indexes."""
        table = self._find(key)
        if table is None:
            return
        context = self._shown
        self.detail.loading(table)
        ok, detail = await self._call(connections.table_detail, table.schema, table.name, database=self.database.value)
        if context != self._shown or self.detail.key != key:
            return
        if not ok or detail is None:
            self.detail.clear()
            return
        self.detail.show(detail, self._find(key) or table)  # counts may have been refreshed meanwhile

    async def count_exactly(self, key: str) -> None:
        """Count one table's rows exactly and update its row."""
        table = self._find(key)
        if table is None:
            return
        context = self._shown
        ok, count = await self._call(connections.count_rows, table.schema, table.name, database=self.database.value)
        if context != self._shown or not ok or count is None:
            return
        table = self._find(key) or table  # the list may have been reloaded meanwhile
        table.row_count, table.row_count_exact = count, True
        self.table.rows = [table_row(t) for t in self.tables]
        self.detail.update_count(key, table)
        with self.table:  # the button clicked may sit in a detail panel that was replaced meanwhile
            ui.notify(f"{key}: {count:,} rows", type="info")

    # ---- dependencies -------------------------------------------------------------------------
    def _select_all(self) -> None:
        self.dep_tables.value = [t.name for t in self.tables]

    async def show_dependencies(self) -> None:
        """Compute and show the load order of the chosen tables."""
        chosen = list(self.dep_tables.value or [])
        self.dep_result.clear()
        if not chosen:
            with self.dep_result:
                ui.label("Pick at least one table.").classes("text-grey-7")
            return
        context = self._shown
        ok, deps = await self._call(
            connections.dependencies, chosen, database=self.database.value, schema=self.schema.value
        )
        if context != self._shown or not ok or deps is None:
            return
        self._render_dependencies(deps)

    def _render_dependencies(self, deps: Dependencies) -> None:
        cyclic = {t for cycle in deps.cycles for t in cycle}
        with self.dep_result:
            for number, level in enumerate(deps.levels, start=1):
                in_cycle = bool(cyclic & set(level))
                with ui.row().classes("items-center gap-2").mark("dep-level"):
                    ui.label(f"Level {number}" + (" (cycle)" if in_cycle else "")).classes("w-32 font-medium")
                    for name in level:
                        color = "orange-8" if name in cyclic else "primary"
                        ui.chip(name, color=color, text_color="white").props("dense square")
            for cycle in deps.cycles:
                ui.label(
                    f"Cycle: {' → '.join([*cycle, cycle[0]])}. These tables reference each other, so no order "
                    "satisfies every foreign key: a full load needs deferred constraints or a second pass."
                ).classes("text-orange-10").mark("dep-cycle")
            if deps.edges:
                references = "; ".join(f"{e['table']} → {e['references']}" for e in deps.edges)
                ui.label(f"References: {references}").classes("text-grey-7 text-sm").mark("dep-edges")
            else:
                ui.label("No foreign keys between these tables: they can all load at once.").classes(
                    "text-grey-7 text-sm"
                ).mark("dep-edges")


def _schema_label(s: SchemaInfo) -> str:
    """`sales (3 tables · 1.2 MB)`: the size says where the data is before a schema is opened."""
    tables = f"{s.table_count} table" + ("" if s.table_count == 1 else "s")
    return f"{s.name} ({tables} · {human_bytes(s.size_bytes)})" if s.size_bytes else f"{s.name} ({tables})"


def _key_of(args: object) -> str:
    """The `schema.table` key a row event carries (the key itself, or a row dict)."""
    if isinstance(args, dict):
        return str(args.get("key") or f"{args.get('schema')}.{args.get('name')}")
    return str(args)
