"""One table's structure: columns, primary key, foreign keys both ways, indexes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from nicegui import ui

from components.format import human_bytes, human_count
from core.connectors.base import ForeignKeyInfo, TableDetail, TableInfo

COLUMN_COLUMNS = [
    {"name": "position", "label": "#", "field": "position", "align": "right"},
    {"name": "name", "label": "Column", "field": "name", "align": "left"},
    {"name": "type", "label": "Type", "field": "type", "align": "left"},
    {"name": "nullable", "label": "Nullable", "field": "nullable", "align": "center"},
    {
        "name": "default",
        "label": "Default",
        "field": "default",
        "align": "left",
        "style": "max-width: 14rem; overflow: hidden; text-overflow: ellipsis",
    },
]
COLUMN_NAME_SLOT = r"""
<q-td :props="props">
  <q-icon v-if="props.row.pk" name="key" color="primary" size="xs" class="mr-1">
    <q-tooltip>primary key</q-tooltip>
  </q-icon>
  {{ props.value }}
</q-td>
"""
FK_COLUMNS = [
    {"name": "constraint", "label": "Constraint", "field": "constraint", "align": "left"},
    {"name": "from", "label": "From", "field": "from", "align": "left"},
    {"name": "to", "label": "References", "field": "to", "align": "left"},
]
INDEX_COLUMNS = [
    {"name": "name", "label": "Index", "field": "name", "align": "left"},
    {"name": "columns", "label": "Columns", "field": "columns", "align": "left"},
    {"name": "kind", "label": "Kind", "field": "kind", "align": "left"},
]


def count_text(table: TableInfo) -> str:
    """`40 rows (exact) · 16 kB`, or `(estimate)` for a catalog estimate."""
    counted = "exact" if table.row_count_exact else "estimate"
    return f"{human_count(table.row_count)} rows ({counted}) · {human_bytes(table.size_bytes)}"


def _ref(schema: str, table: str, columns: list[str]) -> str:
    return f"{schema}.{table}({', '.join(columns)})"


def fk_row(fk: ForeignKeyInfo) -> dict[str, str]:
    """A foreign key as `schema.table(cols)` -> `schema.table(cols)`."""
    return {
        "constraint": fk.name,
        "from": _ref(fk.schema, fk.table, fk.columns),
        "to": _ref(fk.referenced_schema, fk.referenced_table, fk.referenced_columns),
    }


class TableDetailView:
    """The right-hand panel of discovery; empty until a table is clicked."""

    def __init__(self, on_count: Callable[[str], Awaitable[None]]) -> None:
        self.key: str | None = None
        self.on_count = on_count
        self.count_label: ui.label | None = None
        self.count_button: ui.button | None = None
        self.card = ui.card().classes("w-full").props("flat bordered").mark("table-detail")
        self.clear()

    def clear(self) -> None:
        """Show the hint instead of a table."""
        self.key = None
        self.card.clear()
        self.count_label = self.count_button = None
        with self.card:
            ui.label("Click a table to see its columns, keys and indexes.").classes("text-grey-7")

    def loading(self, table: TableInfo) -> None:
        """Show a spinner for the table being loaded."""
        self.key = f"{table.schema}.{table.name}"
        self.card.clear()
        self.count_label = self.count_button = None
        with self.card, ui.row().classes("items-center gap-2"):
            ui.spinner()
            ui.label(f"Loading {self.key} …")

    def _header(self, table: TableInfo) -> None:
        with ui.row().classes("w-full items-center justify-between"):
            ui.label(self.key or "").classes("text-lg font-semibold").mark("detail-title")
            button = (
                ui.button("Exact count", icon="functions", on_click=lambda: self.on_count(self.key or ""))
                .props("flat dense")
                .mark("exact-count")
            )
            button.visible = not table.row_count_exact
        self.count_label = ui.label(count_text(table)).classes("text-grey-7").mark("detail-count")
        self.count_button = button

    def update_count(self, key: str, table: TableInfo) -> None:
        """Show the table's current count (exact or estimate) if this table is open."""
        if key == self.key and self.count_label is not None and self.count_button is not None:
            self.count_label.text = count_text(table)
            self.count_button.visible = not table.row_count_exact

    def show(self, detail: TableDetail, table: TableInfo) -> None:
        """Render the structure of one table."""
        self.key = f"{detail.schema}.{detail.name}"
        self.card.clear()
        pk = set(detail.primary_key)
        with self.card:
            self._header(table)
            ui.table(
                columns=COLUMN_COLUMNS,
                row_key="name",
                rows=[
                    {
                        "position": c.position,
                        "name": c.name,
                        "type": c.type,
                        "nullable": "yes" if c.nullable else "no",
                        "default": c.default or "",
                        "pk": c.name in pk,
                    }
                    for c in detail.columns
                ],
            ).classes("w-full").props("flat dense hide-bottom").mark("columns-table").add_slot(
                "body-cell-name", COLUMN_NAME_SLOT
            )
            if detail.primary_key:
                ui.label(f"Primary key: {', '.join(detail.primary_key)}").mark("detail-pk")
            else:
                ui.label("No primary key: CDC needs one (or a unique index) to apply updates and deletes.").classes(
                    "text-warning"
                ).mark("detail-pk")
            self._fk_section("Foreign keys", detail.foreign_keys, "fk-table", "References no other table.")
            self._fk_section("Referenced by", detail.referenced_by, "referenced-by-table", "No table references it.")
            ui.label("Indexes").classes("font-medium mt-2")
            if detail.indexes:
                ui.table(
                    columns=INDEX_COLUMNS,
                    row_key="name",
                    rows=[
                        {
                            "name": i.name,
                            "columns": ", ".join(i.columns),
                            "kind": "primary key" if i.primary else "unique" if i.unique else "index",
                        }
                        for i in detail.indexes
                    ],
                ).classes("w-full").props("flat dense hide-bottom").mark("indexes-table")
            else:
                ui.label("No indexes.").classes("text-grey-7")

    @staticmethod
    def _fk_section(title: str, fks: list[ForeignKeyInfo], mark: str, empty: str) -> None:
        ui.label(title).classes("font-medium mt-2")
        if fks:
            rows = [{"id": n, **fk_row(fk)} for n, fk in enumerate(fks)]
            ui.table(columns=FK_COLUMNS, row_key="id", rows=rows).classes("w-full").props(
                "flat dense hide-bottom"
            ).mark(mark)
        else:
            ui.label(empty).classes("text-grey-7")
