"""Per-table full-load progress bars that move live."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from nicegui import ui

from components.format import human_count, timestamp
from core.pipeline_schemas import PipelineStatus, TableStatus

STATUS_COLORS = {
    "PENDING": "grey",
    "RUNNING": "primary",
    "COMPLETED": "positive",
    "FAILED": "negative",
    "CANCELLED": "warning",
    "STREAMING": "positive",  # CDC_ONLY: no full load, its changes are applied
}


class TableProgressList(ui.column):
    """One row per table: name, status badge, progress bar, its last full-load result (rows copied of
    expected, rows/s), its CDC figures (changes by operation, last change; `show_changes`) and error; a FAILED
    table has a Retry button when `on_retry` is given (it loads that table again alone). `cdc_only`: no full
    load ever runs, the rows say so instead of 0 / 0."""

    def __init__(self, on_retry: Callable[[str], Awaitable[None]] | None = None, *, cdc_only: bool = False) -> None:
        super().__init__()
        self._on_retry = on_retry
        self._cdc_only = cdc_only
        self._changes: dict[str, dict] = {}
        self.classes("w-full gap-1")
        self._rows: dict[str, dict] = {}
        self._placeholder: ui.label | None = None

    def show(self, tables: list[TableStatus]) -> None:
        """Replace the list (for a new run or the stored status)."""
        self.clear()
        self._rows.clear()
        with self:
            self._placeholder = ui.label("No load has run yet.").classes("text-grey-7") if not tables else None
            for t in tables:
                self._add(t)

    def set_table(self, t: TableStatus) -> None:
        """Move one table's bar (adds the row if it is new)."""
        row = self._rows.get(t.source)
        if row is None:
            if self._placeholder is not None:
                self._placeholder.delete()
                self._placeholder = None
            with self:
                self._add(t)
            return
        fraction = _fraction(t)
        row["bar"].value = fraction
        row["bar"].props(f"color={STATUS_COLORS.get(t.status, 'grey')}")
        row["badge"].text = t.status
        row["badge"].props(f"color={STATUS_COLORS.get(t.status, 'grey')}")
        row["rows"].text = _rows_text(t, self._cdc_only)
        row["error"].text = t.error or ""
        row["error"].visible = bool(t.error)
        if row["retry"] is not None:
            row["retry"].visible = t.status == "FAILED"

    def _add(self, t: TableStatus) -> None:
        with ui.row().classes("w-full items-center gap-3 no-wrap") as line:
            ui.label(f"{t.source} → {t.target}").classes(
                "w-96 break-words font-mono text-sm"
            )  # wrap at spaces, not mid-name
            badge = ui.badge(t.status).props(f"color={STATUS_COLORS.get(t.status, 'grey')}").classes("w-24")
            bar = ui.linear_progress(value=_fraction(t), show_value=False, size="12px").classes("flex-grow")
            bar.props(f"color={STATUS_COLORS.get(t.status, 'grey')} instant-feedback")
            rows = ui.label(_rows_text(t, self._cdc_only)).classes("w-72 text-right text-sm text-grey-8")
            rows.mark(f"rows-{t.source}")
            changes = ui.label(changes_text(self._changes.get(t.source))).classes("w-80 text-sm text-grey-8")
            changes.mark(f"changes-{t.source}")
            retry = None
            if self._on_retry is not None:
                on_retry, source = self._on_retry, t.source
                retry = ui.button("Retry", icon="replay", on_click=lambda: on_retry(source)).props("outline dense")
                retry.mark(f"retry-{t.source}")
                retry.visible = t.status == "FAILED"
        line.mark(f"progress-{t.source}")
        error = ui.label(t.error or "").classes("text-negative text-sm pl-4")
        error.visible = bool(t.error)
        self._rows[t.source] = {
            "bar": bar,
            "badge": badge,
            "rows": rows,
            "changes": changes,
            "error": error,
            "retry": retry,
        }

    def show_changes(self, stats: list[dict]) -> None:
        """Each table's CDC figures (core.monitoring.metrics.table_stats rows)."""
        self._changes = {s["source"]: s for s in stats}
        for source, row in self._rows.items():
            row["changes"].text = changes_text(self._changes.get(source))

    def texts(self, source: str) -> dict[str, str]:
        """What one table's row says (status, rows, changes, error; empty when it is not listed): for tests."""
        row = self._rows.get(source)
        return {k: row[k].text if row else "" for k in ("badge", "rows", "changes", "error")}


def changes_text(stats: dict | None) -> str:
    """'CDC: 3 inserts · 1 update · 0 deletes, last 2026-12-02 04:01:02 UTC', or that none arrived yet."""
    if not stats or not any(stats.get(k) for k in ("inserts", "updates", "deletes")):
        return "CDC: no changes yet"
    counts = " · ".join(
        f"{human_count(stats.get(k) or 0)} {word}"
        for k, word in (("inserts", "inserted"), ("updates", "updated"), ("deletes", "deleted"))
    )
    last = stats.get("last_change_at")
    if not last:
        return f"CDC: {counts}"
    return f"CDC: {counts}, last {timestamp(datetime.fromisoformat(last))}"


class TableHealth(ui.label):
    """The "degraded" line (marker `pipeline-health`): tables FAILED and set aside while the others run."""

    def __init__(self) -> None:
        super().__init__()
        self.classes("text-warning").mark("pipeline-health")
        self.visible = False

    def show(self, status: PipelineStatus) -> None:
        """Follow a pipeline's stored status."""
        self.visible = status.health == "degraded"
        self.text = (
            f"Degraded: {len(status.failed_tables)} table(s) failed and are set aside while the "
            f"others run ({', '.join(status.failed_tables)}); fix the cause, then Retry the table"
        )


def _fraction(t: TableStatus) -> float:
    if t.status == "COMPLETED":
        return 1.0
    if not t.rows_expected:
        return 0.0
    return min(1.0, t.rows_copied / t.rows_expected)


def _rows_text(t: TableStatus, cdc_only: bool = False) -> str:
    if cdc_only and not t.rows_expected and not t.rows_copied:
        return "no full load (CDC only)"
    if t.status == "PENDING" and not t.rows_expected and not t.rows_copied:
        return "not loaded yet"
    rate = f" · {human_count(int(t.rows_per_second))} rows/s" if t.rows_per_second else ""
    return f"{human_count(t.rows_copied)} / {human_count(t.rows_expected)} rows{rate}"
