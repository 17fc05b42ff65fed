"""The dashboard: connections, pipelines, and the changes applied (SQL over per-minute rollups)."""

from __future__ import annotations

from nicegui import run, ui

from components.format import human_count
from components.frame import frame
from core import connections, monitoring, pipelines


async def dashboard_page() -> None:
    """Counts of connections by kind and by their latest test."""
    with frame("Dashboard") as actor:
        items = await run.io_bound(connections.list_connections, actor)
        pipes = await run.io_bound(pipelines.list_pipelines, actor) or []
        ok = sum(1 for c in items if c.last_test and c.last_test.ok)
        failing = sum(1 for c in items if c.last_test and not c.last_test.ok)
        with ui.row().classes("gap-4"):
            for label, value, mark in [
                ("Connections", len(items), "stat-connections"),
                ("PostgreSQL", sum(1 for c in items if c.kind == "postgresql"), "stat-postgresql"),
                ("SQL Server", sum(1 for c in items if c.kind == "sqlserver"), "stat-sqlserver"),
                ("Last test OK", ok, "stat-ok"),
                ("Last test failed", failing, "stat-failing"),
                ("Pipelines", len(pipes), "stat-pipelines"),
                ("Running", sum(1 for p in pipes if p.state in ("STARTING", "RUNNING")), "stat-running"),
                ("In error", sum(1 for p in pipes if p.state == "ERROR"), "stat-error"),
            ]:
                with ui.card().classes("w-44"):
                    ui.label(label).classes("text-grey-7")
                    ui.label(str(value)).classes("text-3xl font-semibold").mark(mark)
        ui.label("Changes applied").classes("text-lg font-semibold mt-2")
        figures: dict[str, ui.label] = {}
        with ui.row().classes("gap-4"):
            for label, key in [
                ("Total", "total_events"),
                ("Inserts", "insert_count"),
                ("Updates", "update_count"),
                ("Deletes", "delete_count"),
                ("Events/s (5 min)", "events_per_second"),
            ]:
                with ui.card().classes("w-44"):
                    ui.label(label).classes("text-grey-7")
                    figures[key] = ui.label("—").classes("text-3xl font-semibold").mark(f"stat-{key}")

        async def refresh() -> None:
            d = await run.io_bound(monitoring.dashboard, actor)
            if d is None:  # the app is shutting down
                return
            for key, label in figures.items():
                value = getattr(d, key)
                label.text = f"{value:,.1f}" if key == "events_per_second" else human_count(value)

        await refresh()
        ui.timer(5.0, refresh)
