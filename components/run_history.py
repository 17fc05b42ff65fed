"""A pipeline's run history: one row per full load or CDC run, newest first."""

from __future__ import annotations

from nicegui import ui

from components.format import human_count, timestamp
from core.pipeline_schemas import RunPublic

COLUMNS = [
    {"name": "id", "label": "#", "field": "id", "align": "left"},
    {"name": "run_type", "label": "Type", "field": "run_type", "align": "left"},
    {"name": "trigger", "label": "Trigger", "field": "trigger", "align": "left"},
    {"name": "status", "label": "Status", "field": "status", "align": "left"},
    {"name": "started_at", "label": "Started", "field": "started_at", "align": "left"},
    {"name": "completed_at", "label": "Ended", "field": "completed_at", "align": "left"},
    {"name": "rows", "label": "Rows", "field": "rows", "align": "right"},
    {"name": "error", "label": "Error", "field": "error", "align": "left", "classes": "whitespace-normal"},
]


def run_row(r: RunPublic) -> dict:
    """Display strings of one run."""
    return {
        "id": r.id,
        "run_type": r.run_type,
        "trigger": r.trigger,
        "status": r.status,
        "started_at": timestamp(r.started_at),
        "completed_at": timestamp(r.completed_at),
        "rows": human_count(r.rows_processed),
        "error": r.error_message or "",
    }


class RunHistory(ui.table):
    """The table of runs (marker `runs-table`)."""

    def __init__(self) -> None:
        super().__init__(columns=COLUMNS, rows=[], row_key="id")
        self.classes("w-full").mark("runs-table")

    def show(self, runs: list[RunPublic]) -> None:
        """Replace the rows."""
        self.rows = [run_row(r) for r in runs]
        self.update()
