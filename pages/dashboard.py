"""The dashboard: connections, pipelines, and the changes applied (SQL over per-minute rollups)."""

from __future__ import annotations

from nicegui import run, ui

from components.alert_list import AlertList
from components.format import human_count
from components.frame import frame
from components.getting_started import Step, getting_started
from components.health_checks import HealthChecks
from components.live import on_events
from components.pipeline_glance import PipelineGlanceTable
from components.preferences import show_utc
from components.stat_card import StatCard
from core import connections, monitoring, pipelines
from core.connections import ConnectionPublic
from core.monitoring import Dashboard, alerts, health, overview
from core.pipeline_schemas import PipelinePublic

FOLLOWED = ("pipeline.state", "cdc.events")  # pipelines starting, stopping, failing; changes applied
FOLLOW_EVERY_S = 2.0  # a dashboard read flushes the metrics recorder: not more often than this
RATE_EVERY_S = 60.0  # "events/s (5 min)" also falls while nothing happens
GLANCE_EVERY_S = 10.0  # the metrics sampler writes a point every 10 s; health checks run every 30 s
ALERTS_SHOWN = 5
# (title, figure, where a click goes)
CHANGES = [
    ("Total", "total_events", "/events"),
    ("Inserts", "insert_count", "/events?op=insert"),
    ("Updates", "update_count", "/events?op=update"),
    ("Deletes", "delete_count", "/events?op=delete"),
    ("Events/s (5 min)", "events_per_second", "/events"),
]
PIPELINES = [
    ("Pipelines", "pipelines_total", "stat-pipelines", "/pipelines"),
    ("Running", "pipelines_running", "stat-running", "/pipelines?state=RUNNING"),
    ("In error", "pipelines_error", "stat-error", "/pipelines?state=ERROR"),
]


def connection_figures(items: list[ConnectionPublic]) -> list[tuple[str, int, str]]:
    """Title, count and marker of each connection card."""
    return [
        ("Connections", len(items), "stat-connections"),
        ("PostgreSQL", sum(1 for c in items if c.kind == "postgresql"), "stat-postgresql"),
        ("SQL Server", sum(1 for c in items if c.kind == "sqlserver"), "stat-sqlserver"),
        ("Last test OK", sum(1 for c in items if c.last_test and c.last_test.ok), "stat-ok"),
        ("Last test failed", sum(1 for c in items if c.last_test and not c.last_test.ok), "stat-failing"),
    ]


def checklist(items: list[ConnectionPublic], pipes: list[PipelinePublic]) -> list[Step]:
    """The four steps from an empty install to a running pipeline, each done or not."""
    tested = [c for c in items if c.last_test and c.last_test.ok]
    started = [p for p in pipes if p.state != "NOT_STARTED" or p.last_run is not None]
    untested = f"/connections/{items[0].id}" if items else "/connections"
    waiting = next((p for p in pipes if p not in started), None)
    return [
        Step("connection", "Add a connection (your source and target databases)", "/connections", bool(items)),
        Step("test", "Test the connection", untested, bool(tested)),
        Step("pipeline", "Create a pipeline", "/pipelines/new", bool(pipes)),
        Step("start", "Start it", f"/pipelines/{waiting.id}" if waiting else "/pipelines", bool(started)),
    ]


def figure(d: Dashboard, key: str) -> str:
    """One dashboard figure as shown."""
    value = getattr(d, key)
    return f"{value:,.1f}" if key == "events_per_second" else human_count(value)


async def dashboard_page() -> None:
    """Counts of connections, pipelines by state and changes applied; follows pipeline and CDC events."""
    async with frame("Dashboard") as actor:
        items = await run.io_bound(connections.list_connections, actor) or []
        pipes = await run.io_bound(pipelines.list_pipelines, actor) or []
        getting_started(checklist(items, pipes))
        cards: dict[str, StatCard] = {}
        with ui.row().classes("gap-4"):
            for title, count, marker in connection_figures(items):
                StatCard(title, str(count), marker=marker, link="/connections")
            for title, key, marker, link in PIPELINES:
                cards[key] = StatCard(title, marker=marker, link=link)
        ui.label("Changes applied").classes("text-lg font-semibold mt-2")
        with ui.row().classes("gap-4"):
            for title, key, link in CHANGES:
                cards[key] = StatCard(title, marker=f"stat-{key}", link=link)

        ui.label("Pipelines at a glance").classes("text-lg font-semibold mt-2")
        table = PipelineGlanceTable(utc=show_utc())
        with ui.row().classes("w-full gap-8 no-wrap items-start"):
            system = HealthChecks(marker="system-health")
            with ui.column().classes("w-full gap-1"):
                with ui.row().classes("items-center gap-2"):
                    ui.label("Firing alerts").classes("text-grey-7")
                    ui.link("all alerts", "/alerts").classes("text-sm")
                firing = AlertList(empty="Nothing is firing.", marker="dashboard-alerts")

        async def refresh() -> None:
            d = await run.io_bound(monitoring.dashboard, actor)
            if d is None:  # the app is shutting down
                return
            for key, card in cards.items():
                card.show(figure(d, key))

        async def refresh_glance() -> None:
            rows = await run.io_bound(overview.glance, actor)
            report = await run.io_bound(health.system_health, actor)
            found = await run.io_bound(alerts.list_alerts, actor, "firing", None, ALERTS_SHOWN)
            if rows is None or report is None or found is None:  # the app is shutting down
                return
            table.show(rows)
            system.show(report)
            firing.show(found)

        on_events(lambda _events: refresh(), topics=FOLLOWED, interval=FOLLOW_EVERY_S)
        on_events(lambda _events: refresh_glance(), topics=("pipeline.state", "alert."), interval=FOLLOW_EVERY_S)
        ui.timer(RATE_EVERY_S, refresh)
        ui.timer(GLANCE_EVERY_S, refresh_glance)
        await refresh()
        ui.timer(0.05, refresh_glance, once=True)  # the page shows before the first health read
