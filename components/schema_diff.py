"""Source tables against their target tables: created, same, different or missing, and why."""

from __future__ import annotations

from nicegui import ui

from core.pipeline_schemas import PreviewRow
from core.pipelines import describe_differences

COLUMNS = [
    {"name": "source", "label": "Source", "field": "source", "align": "left"},
    {"name": "target", "label": "Target", "field": "target", "align": "left"},
    {"name": "status", "label": "Target table", "field": "status", "align": "left"},
    {"name": "detail", "label": "Differences", "field": "detail", "align": "left", "classes": "whitespace-normal"},
]
STATUS_WORDS = {
    "will_be_created": "will be created",
    "exists": "exists, same columns",
    "exists_different": "exists with different columns",
    "missing": "missing (auto-create off)",
}


def diff_row(r: PreviewRow) -> dict:
    """Display strings of one preview row: its differences, errors (✖) and warnings (⚠)."""
    notes = [describe_differences(r.differences)] + [f"✖ {e}" for e in r.errors] + [f"⚠ {w}" for w in r.warnings]
    return {
        "source": r.source,
        "target": r.target,
        "status": STATUS_WORDS.get(r.target_status, r.target_status),
        "detail": " · ".join(filter(None, notes)),
    }


class SchemaDiff(ui.table):
    """The schema diff table (marker `diff-table`)."""

    def __init__(self) -> None:
        super().__init__(columns=COLUMNS, rows=[], row_key="source")
        self.classes("w-full").mark("diff-table")

    def show(self, rows: list[PreviewRow]) -> None:
        """Replace the rows."""
        self.rows = [diff_row(r) for r in rows]
        self.update()

    def show_error(self, message: str) -> None:
        """Say why source and target cannot be compared."""
        self.rows = [{"source": "—", "target": "—", "status": "cannot compare", "detail": message}]
        self.update()
