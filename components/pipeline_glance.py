"""The dashboard's pipelines at a glance: a row each with state, health, lag, a throughput line and alerts."""

from __future__ import annotations

from collections.abc import Sequence

from nicegui import ui

from components.charts import sparkline_svg
from components.format import human_bytes, iso_utc, state_badge_slot, time_cell_slot
from core.monitoring.overview import PipelineGlance

COLUMNS = [
    {"name": "name", "label": "Pipeline", "field": "name", "align": "left", "sortable": True},
    {"name": "state", "label": "State", "field": "state", "align": "left", "sortable": True},
    {"name": "health", "label": "Health", "field": "health", "align": "left", "sortable": True},
    {"name": "lag", "label": "Lag", "field": "lag", "align": "left"},
    {"name": "throughput", "label": "Rows/s (1 h)", "field": "throughput", "align": "left"},
    {"name": "last_change", "label": "Last change", "field": "last_change", "align": "left", "sortable": True},
    {"name": "errors", "label": "Errors", "field": "errors", "align": "left", "sortable": True},
    {"name": "alerts", "label": "Alerts firing", "field": "alerts", "sortable": True},
]
NAME_SLOT = r"""
<q-td :props="props">
  <a :href="'/pipelines/' + props.row.id" class="text-primary font-medium whitespace-nowrap">{{ props.value }}</a>
</q-td>
"""
ERRORS_SLOT = r"""
<q-td :props="props">
  <span v-if="props.row.error_message" class="text-negative" :title="props.row.error_message">
    {{ props.value }} · {{ props.row.error_short }}
  </span>
  <span v-else-if="props.value > 0" class="text-warning">{{ props.value }}</span>
  <span v-else class="text-grey-6">0</span>
</q-td>
"""
EMPTY_SLOT = r"""
<div class="w-full text-center text-grey-7 p-4">No pipelines yet.
  <a href="/pipelines/new" class="text-primary">Create one</a> to copy tables and keep them in sync.</div>
"""
HEALTH_SLOT = r"""
<q-td :props="props">
  <q-badge :color="{healthy: 'positive', degraded: 'warning', failing: 'negative'}[props.value] || 'grey-5'"
           :label="props.value" />
</q-td>
"""
THROUGHPUT_SLOT = r"""
<q-td :props="props"><span class="inline-flex items-center gap-2">
  <span v-html="props.row.spark"></span><span>{{ props.value }}</span></span>
</q-td>
"""
ALERTS_SLOT = r"""
<q-td :props="props">
  <a v-if="props.value > 0" href="/alerts"><q-badge color="negative" :label="props.value" /></a>
  <span v-else class="text-grey-6">0</span>
</q-td>
"""


def glance_row(g: PipelineGlance) -> dict:
    """Display values of one pipeline's row."""
    if g.lag_bytes is None and g.lag_seconds is None:
        lag = "—"
    else:
        seconds = "" if g.lag_seconds is None else f" · {g.lag_seconds:.1f} s"
        lag = human_bytes(g.lag_bytes) + seconds
    message = g.error_message if g.state == "ERROR" else None
    return {
        "id": g.id,
        "name": g.name,
        "state": g.state,
        "health": g.health or "not checked",
        "lag": lag,
        "throughput": "—" if g.rows_per_second is None else f"{g.rows_per_second:,.1f}",
        "spark": sparkline_svg(g.sparkline),
        "alerts": g.alerts_firing,
        "last_change": iso_utc(g.last_change_at),
        "errors": g.errors,
        "error_message": message,
        "error_short": message if message is None or len(message) <= 60 else message[:60] + "…",
    }


class PipelineGlanceTable(ui.table):
    """Every pipeline's health at a glance."""

    def __init__(self, utc: bool = False) -> None:
        super().__init__(columns=COLUMNS, rows=[], row_key="id")
        self.classes("w-full")
        self.mark("pipelines-glance").props('data-testid="pipelines-glance"')
        self.add_slot("no-data", EMPTY_SLOT)
        for name, slot in (
            ("name", NAME_SLOT),
            ("state", state_badge_slot()),
            ("last_change", time_cell_slot(utc)),
            ("errors", ERRORS_SLOT),
            ("health", HEALTH_SLOT),
            ("throughput", THROUGHPUT_SLOT),
            ("alerts", ALERTS_SLOT),
        ):
            self.add_slot(f"body-cell-{name}", slot)

    def show(self, rows: Sequence[PipelineGlance]) -> None:
        """Replace the rows."""
        self.rows = [glance_row(g) for g in rows]
        self.update()
