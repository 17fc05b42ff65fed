"""A pipeline's run history: one row per full load or CDC run, newest first, with its duration."""

from __future__ import annotations

from datetime import UTC, datetime

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
    {"name": "duration", "label": "Duration", "field": "duration", "align": "right"},
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
        "duration": duration(r),
        "rows": human_count(r.rows_processed),
        "error": r.error_message or "",
    }


def duration(r: RunPublic, now: datetime | None = None) -> str:
    """How long a run took ('4.2 s', '3 min 05 s', '2 h 07 min'); a running one: so far."""
    end = r.completed_at or now or datetime.now(UTC)
    seconds = max(0.0, (_aware(end) - _aware(r.started_at)).total_seconds())
    if seconds < 60:
        text = f"{seconds:.1f} s"
    elif seconds < 3600:
        text = f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    else:
        text = f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"
    return text if r.completed_at else f"{text} so far"


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)  # SQLite gives back naive UTC


class RunHistory(ui.table):
    """The table of runs (marker `runs-table`)."""

    def __init__(self) -> None:
        super().__init__(columns=COLUMNS, rows=[], row_key="id")
        self.classes("w-full").mark("runs-table")

    def show(self, runs: list[RunPublic]) -> None:
        """Replace the rows."""
        self.rows = [run_row(r) for r in runs]
        self.update()
