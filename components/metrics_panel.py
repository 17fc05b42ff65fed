"""A pipeline's metrics: a time-range toggle, the history charts and the per-table statistics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from nicegui import ui

from components.charts import CDC_CHARTS, RANGES, Chart, table_figure
from components.format import ago, human_count

STATS_COLUMNS = [
    {"name": "source", "label": "Table", "field": "source", "align": "left", "sortable": True},
    {"name": "inserts", "label": "Inserts", "field": "inserts", "sortable": True},
    {"name": "updates", "label": "Updates", "field": "updates", "sortable": True},
    {"name": "deletes", "label": "Deletes", "field": "deletes", "sortable": True},
    {"name": "last_change", "label": "Last change", "field": "last_change", "align": "left"},
    {"name": "full_load", "label": "Full load", "field": "full_load", "align": "left"},
]


def stats_rows(stats: list[dict]) -> list[dict]:
    """Table rows of core.monitoring.metrics.table_stats."""
    rows = []
    for s in stats:
        pct = s.get("full_load_pct")
        rows.append(
            {
                "source": s["source"],
                "inserts": human_count(s.get("inserts") or 0),
                "updates": human_count(s.get("updates") or 0),
                "deletes": human_count(s.get("deletes") or 0),
                "last_change": _ago(s.get("last_change_at")),
                "full_load": "—" if pct is None else f"{pct:.0f} %  {s.get('status') or ''}".strip(),
            }
        )
    return rows


def _ago(at: datetime | str | None) -> str:
    if at is None:
        return "—"
    return ago(datetime.fromisoformat(at) if isinstance(at, str) else at)


class MetricsPanel(ui.column):
    """Charts that follow the chosen range; `on_range(range)` is called when the user picks another one."""

    def __init__(self, on_range: Callable[[str], Awaitable[None]], *, cdc: bool = True, initial: str = "1h") -> None:
        super().__init__()
        self.classes("w-full gap-2")
        self.range = initial
        self._on_range = on_range
        with self:
            with ui.row().classes("items-center gap-2"):
                ui.label("Range").classes("text-grey-7")
                self.toggle = ui.toggle(list(RANGES), value=initial, on_change=self._picked).mark("metrics-range")
            self.charts: dict[str, Chart] = {}
            if cdc:
                with ui.grid(columns=2).classes("w-full gap-2"):
                    for spec in CDC_CHARTS:
                        self.charts[spec.key] = Chart(spec)
            self.load_chart = ui.plotly(table_figure({})).classes("w-full").mark("chart-load")
            self.stats = ui.table(columns=STATS_COLUMNS, rows=[], row_key="source").classes("w-full")
            self.stats.mark("table-stats")

    async def _picked(self, e) -> None:  # noqa: ANN001 - a ValueChangeEventArguments
        if e.value and e.value != self.range:
            self.range = e.value
            await self._on_range(e.value)

    def show(self, series: dict[str, list], per_table: dict[str, list], stats: list[dict]) -> None:
        """Redraw every chart and the statistics table."""
        for chart in self.charts.values():
            chart.show(series)
        self.load_chart.update_figure(table_figure(per_table))
        self.stats.rows = stats_rows(stats)
        self.stats.update()
