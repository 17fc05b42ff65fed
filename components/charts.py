"""Charts of a pipeline's metrics history (plotly through ui.plotly) and small SVG sparklines.

The figures are plain plotly.js dicts (the fast path of ui.plotly); `figure` builds one from the
`{"series": {name: [[iso_ts, value], ...]}}` shape that core.monitoring.metrics.history returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from nicegui import ui

RANGES = ("15m", "1h", "6h", "24h", "7d", "30d")
COLORS = ("#1f77b4", "#2ca02c", "#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")


@dataclass(frozen=True)
class ChartSpec:
    """One chart: its title, the series it plots (metric name -> legend label), the y-axis unit, and series
    drawn on a second y axis."""

    key: str
    title: str
    series: tuple[tuple[str, str], ...]
    unit: str = ""
    right: tuple[str, ...] = ()
    stacked: bool = False


CDC_CHARTS = (
    ChartSpec(
        "throughput",
        "Rows applied per second",
        (("inserts_per_second", "insert"), ("updates_per_second", "update"), ("deletes_per_second", "delete")),
        "rows/s",
        stacked=True,
    ),
    ChartSpec(
        "latency",
        "End-to-end latency (source commit → applied)",
        (("latency_p50_ms", "p50"), ("latency_p95_ms", "p95"), ("latency_max_ms", "max")),
        "ms",
    ),
    ChartSpec(
        "lag",
        "Lag",
        (("lag_bytes", "WAL not confirmed (bytes)"), ("lag_seconds", "seconds")),
        "bytes",
        ("lag_seconds",),
    ),
    ChartSpec("wal", "Slot retained WAL", (("retained_wal_bytes", "retained WAL"),), "bytes"),
    ChartSpec("errors", "Errors and retries", (("errors", "errors"), ("retries", "automatic restarts")), "count"),
)
LOAD_CHART = ChartSpec("load", "Full load rows per second", (("load_rows_per_second", "rows/s"),), "rows/s")


def metric_names(specs: Sequence[ChartSpec]) -> list[str]:
    """Every metric the charts need, in one list for one history call."""
    return [name for spec in specs for name, _label in spec.series]


def figure(spec: ChartSpec, series: dict[str, list], height: int = 260) -> dict:
    """The plotly.js figure of one chart from history series (missing series plot as nothing)."""
    data = []
    for i, (name, label) in enumerate(spec.series):
        points = series.get(name) or []
        trace: dict = {
            "type": "scatter",
            "mode": "lines",
            "name": label,
            "x": [p[0] for p in points],
            "y": [p[1] for p in points],
            "line": {"width": 1.5, "color": COLORS[i % len(COLORS)]},
        }
        if spec.stacked:
            trace["stackgroup"] = "one"
        if name in spec.right:
            trace["yaxis"] = "y2"
        data.append(trace)
    layout: dict = {
        "title": {"text": spec.title, "font": {"size": 14}},
        "height": height,
        "margin": {"l": 60, "r": 60 if spec.right else 20, "t": 40, "b": 40},
        "xaxis": {"type": "date"},
        "yaxis": {"title": {"text": spec.unit}, "rangemode": "tozero"},
        "legend": {"orientation": "h", "y": -0.25},
        "showlegend": True,
    }
    if spec.right:
        layout["yaxis2"] = {"overlaying": "y", "side": "right", "rangemode": "tozero", "title": {"text": "s"}}
    return _said_when_empty({"data": data, "layout": layout, "config": {"displaylogo": False, "responsive": True}})


def _said_when_empty(fig: dict) -> dict:
    """An empty chart says so instead of drawing an axis around the year 2000."""
    if plotted_points(fig) == 0:
        fig["layout"]["xaxis"] = {"visible": False}
        fig["layout"]["annotations"] = [
            {
                "text": "No data in this range yet",
                "showarrow": False,
                "xref": "paper",
                "yref": "paper",
                "x": 0.5,
                "y": 0.5,
            }
        ]
    return fig


def table_figure(per_table: dict[str, list], height: int = 260) -> dict:
    """Full-load rows/s per table (`{table: [[ts, rows_per_second], ...]}`)."""
    data = [
        {
            "type": "scatter",
            "mode": "lines",
            "name": table,
            "x": [p[0] for p in points],
            "y": [p[1] for p in points],
            "line": {"width": 1.5, "color": COLORS[i % len(COLORS)]},
        }
        for i, (table, points) in enumerate(sorted(per_table.items()))
    ]
    layout = {
        "title": {"text": LOAD_CHART.title + " by table", "font": {"size": 14}},
        "height": height,
        "margin": {"l": 60, "r": 20, "t": 40, "b": 40},
        "xaxis": {"type": "date"},
        "yaxis": {"title": {"text": "rows/s"}, "rangemode": "tozero"},
        "legend": {"orientation": "h", "y": -0.25},
    }
    return _said_when_empty({"data": data, "layout": layout, "config": {"displaylogo": False, "responsive": True}})


def plotted_points(fig: dict) -> int:
    """How many points a figure plots (0: an empty chart)."""
    return sum(len(t.get("y") or []) for t in fig["data"])


def sparkline_svg(values: Sequence[float | None], width: int = 120, height: int = 28) -> str:
    """A tiny inline SVG line of the values (a flat grey line when there is nothing to show)."""
    ys = [v or 0.0 for v in values]
    if len(ys) < 2 or max(ys) <= 0:
        mid = height - 2
        return (
            f'<svg width="{width}" height="{height}" role="img" aria-label="no changes">'
            f'<line x1="0" y1="{mid}" x2="{width}" y2="{mid}" stroke="#bbb" stroke-width="1"/></svg>'
        )
    top = max(ys)
    step = width / (len(ys) - 1)
    points = " ".join(f"{i * step:.1f},{height - 2 - (y / top) * (height - 4):.1f}" for i, y in enumerate(ys))
    label = escape(f"peak {top:,.1f} rows/s")
    return (
        f'<svg width="{width}" height="{height}" role="img" aria-label="{label}">'
        f'<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{points}"/></svg>'
    )


class Chart(ui.plotly):
    """One metrics chart that can be redrawn from new series."""

    def __init__(self, spec: ChartSpec) -> None:
        super().__init__(figure(spec, {}))
        self.spec = spec
        self.classes("w-full")
        self.mark(f"chart-{spec.key}")

    def show(self, series: dict[str, list]) -> None:
        """Redraw from history series."""
        self.update_figure(figure(self.spec, series))
