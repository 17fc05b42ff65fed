"""The dashboard: connections, pipelines, and the changes applied (SQL over per-minute rollups)."""

from __future__ import annotations

from nicegui import run, ui

from components.format import human_count
from components.frame import frame
from components.live import on_events
from components.stat_card import StatCard
from core import connections, monitoring
from core.connections import ConnectionPublic
from core.monitoring import Dashboard

FOLLOWED = ("pipeline.state", "cdc.events")  # pipelines starting, stopping, failing; changes applied
FOLLOW_EVERY_S = 2.0  # a dashboard read flushes the metrics recorder: not more often than this
RATE_EVERY_S = 60.0  # "events/s (5 min)" also falls while nothing happens
CHANGES = [
    ("Total", "total_events"),
    ("Inserts", "insert_count"),
    ("Updates", "update_count"),
    ("Deletes", "delete_count"),
    ("Events/s (5 min)", "events_per_second"),
]
PIPELINES = [("Pipelines", "pipelines_total", "stat-pipelines"), ("Running", "pipelines_running", "stat-running")]
PIPELINES += [("In error", "pipelines_error", "stat-error")]


def connection_figures(items: list[ConnectionPublic]) -> list[tuple[str, int, str]]:
    """Title, count and marker of each connection card."""
    return [
        ("Connections", len(items), "stat-connections"),
        ("PostgreSQL", sum(1 for c in items if c.kind == "postgresql"), "stat-postgresql"),
        ("SQL Server", sum(1 for c in items if c.kind == "sqlserver"), "stat-sqlserver"),
        ("Last test OK", sum(1 for c in items if c.last_test and c.last_test.ok), "stat-ok"),
        ("Last test failed", sum(1 for c in items if c.last_test and not c.last_test.ok), "stat-failing"),
    ]


def figure(d: Dashboard, key: str) -> str:
    """One dashboard figure as shown."""
    value = getattr(d, key)
    return f"{value:,.1f}" if key == "events_per_second" else human_count(value)


async def dashboard_page() -> None:
    """Counts of connections, pipelines by state and changes applied; follows pipeline and CDC events."""
    async with frame("Dashboard") as actor:
        items = await run.io_bound(connections.list_connections, actor) or []
        cards: dict[str, StatCard] = {}
        with ui.row().classes("gap-4"):
            for title, count, marker in connection_figures(items):
                StatCard(title, str(count), marker=marker)
            for title, key, marker in PIPELINES:
                cards[key] = StatCard(title, marker=marker)
        ui.label("Changes applied").classes("text-lg font-semibold mt-2")
        with ui.row().classes("gap-4"):
            for title, key in CHANGES:
                cards[key] = StatCard(title, marker=f"stat-{key}")

        async def refresh() -> None:
            d = await run.io_bound(monitoring.dashboard, actor)
            if d is None:  # the app is shutting down
                return
            for key, card in cards.items():
                card.show(figure(d, key))

        on_events(lambda _events: refresh(), topics=FOLLOWED, interval=FOLLOW_EVERY_S)
        ui.timer(RATE_EVERY_S, refresh)
        await refresh()
