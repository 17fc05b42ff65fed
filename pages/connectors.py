"""The Kafka Connect cluster: every connector with state, tasks, topics and offsets; plugins; configs."""

from __future__ import annotations

import json

from nicegui import run, ui

from components.confirm import confirm
from components.frame import frame
from components.messages import plain
from core import connect_cluster
from core.connect_cluster import ClusterView, ConnectorView
from core.errors import NotFound, StudioError, ValidationFailed
from core.security import Action, can

STATE_COLORS = {
    "RUNNING": "positive",
    "PAUSED": "warning",
    "STOPPED": "grey-7",
    "FAILED": "negative",
    "UNASSIGNED": "grey-5",
    "RESTARTING": "primary",
}
EXAMPLE = {
    "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
    "database.hostname": "db.example.com",
    "database.port": "5432",
    "database.user": "replicator",
    "database.password": "",
    "database.dbname": "shop",
    "plugin.name": "pgoutput",
    "topic.prefix": "shop",
    "table.include.list": "public.orders",
    "snapshot.mode": "no_data",
    "decimal.handling.mode": "string",
}


def _badge(state: str) -> None:
    ui.badge(state, color=STATE_COLORS.get(state, "grey")).mark(f"state-{state}")


async def connectors_page() -> None:
    """List, act on and edit the connectors of the configured Kafka Connect cluster."""
    with frame("Connectors") as actor:
        editor = can(actor.role, Action.manage_pipelines)
        header = ui.row().classes("w-full items-center gap-4")
        body = ui.column().classes("w-full gap-3")
        shown: dict = {}

        async def refresh() -> None:
            try:
                view = await run.io_bound(connect_cluster.overview, actor)
            except NotFound as exc:
                shown.clear()
                body.clear()
                with body:
                    ui.label(str(exc)).classes("text-gray-600").mark("connect-not-configured")
                return
            except StudioError as exc:
                shown.clear()
                body.clear()
                with body:
                    ui.label(f"Kafka Connect cannot be reached: {plain(exc)}").classes("text-negative").mark(
                        "connect-error"
                    )
                return
            render(view)

        def render(view: ClusterView) -> None:
            if shown.get("view") == view.model_dump():
                return  # unchanged: keep open traces and expansions as they are
            shown["view"] = view.model_dump()
            header.clear()
            with header:
                ui.label(f"{view.url} · Kafka Connect {view.version or '?'}").classes("text-gray-600").mark(
                    "connect-url"
                )
                ui.button("Refresh", icon="refresh", on_click=refresh).props("flat")
                if editor:
                    ui.button("New connector", icon="add", on_click=lambda: edit_dialog(None)).mark("new-connector")
            body.clear()
            with body:
                if not view.connectors:
                    ui.label("No connectors on this cluster yet.").classes("text-gray-600")
                for c in view.connectors:
                    connector_card(c)
                with (
                    ui.expansion(f"Installed connector plugins ({len(view.plugins)})", icon="extension")
                    .classes("w-full")
                    .mark("plugins")
                ):
                    rows = [p.model_dump() for p in view.plugins]
                    ui.table(
                        columns=[
                            {"name": k, "label": k.replace("_", " ").capitalize(), "field": k, "align": "left"}
                            for k in ("class_name", "type", "version")
                        ],
                        rows=rows,
                        row_key="class_name",
                    ).classes("w-full").mark("plugins-table")

        def connector_card(c: ConnectorView) -> None:
            with ui.card().classes("w-full").mark(f"connector-{c.name}"):
                with ui.row().classes("w-full items-center gap-3"):
                    ui.label(c.name).classes("text-lg font-medium")
                    _badge(c.state)
                    ui.label(f"{c.type or ''} · {(c.connector_class or '').rsplit('.', 1)[-1]}").classes(
                        "text-gray-600"
                    )
                    if c.pipeline_id is not None:
                        ui.link(f"pipeline {c.pipeline_id}", f"/pipelines/{c.pipeline_id}")
                    ui.space()
                    if editor:
                        for label, action, icon in (
                            ("Pause", "pause", "pause"),
                            ("Resume", "resume", "play_arrow"),
                            ("Stop", "stop", "stop"),
                            ("Restart", "restart", "restart_alt"),
                            ("Restart failed", "restart_failed", "healing"),
                        ):
                            ui.button(label, icon=icon, on_click=lambda a=action, n=c.name: do(n, a)).props(
                                "flat dense"
                            ).mark(f"{action}-{c.name}")
                        ui.button("Edit", icon="edit", on_click=lambda cc=c: edit_dialog(cc)).props("flat dense").mark(
                            f"edit-{c.name}"
                        )
                        ui.button("Delete", icon="delete", on_click=lambda n=c.name: delete(n)).props(
                            "flat dense color=negative"
                        ).mark(f"delete-{c.name}")
                for t in c.tasks:
                    with ui.row().classes("items-center gap-2"):
                        ui.label(f"task {t.id}")
                        _badge(t.state)
                        ui.label(t.worker_id or "").classes("text-gray-500 text-sm")
                    if t.trace:
                        with ui.expansion("Trace", icon="bug_report").classes("w-full"):
                            ui.code(t.trace).classes("w-full text-xs").mark(f"trace-{c.name}-{t.id}")
                if c.topics:
                    ui.label("Topics: " + ", ".join(c.topics)).classes("text-sm").mark(f"topics-{c.name}")
                if c.offsets:
                    ui.label("Offsets: " + json.dumps(c.offsets)[:400]).classes("text-sm text-gray-600 break-all")

        async def do(name: str, action: str) -> None:
            try:
                await run.io_bound(connect_cluster.act, actor, name, action)
                ui.notify(f"{action.replace('_', ' ')}: {name}", type="positive")
            except StudioError as exc:
                ui.notify(plain(exc), type="negative", multi_line=True)
            await refresh()

        async def delete(name: str) -> None:
            if await confirm(f"Delete connector {name} from the cluster?"):
                await do(name, "delete")

        def edit_dialog(c: ConnectorView | None) -> None:
            with ui.dialog() as dialog, ui.card().classes("w-[48rem] max-w-full"):
                ui.label("Edit connector" if c else "New connector").classes("text-lg font-medium")
                name = (
                    ui.input("Name", value=c.name if c else "")
                    .props("readonly" if c else "")
                    .classes("w-full")
                    .mark("connector-name")
                )
                config = (
                    ui.textarea("Config (JSON)", value=json.dumps(c.config if c else EXAMPLE, indent=2))
                    .classes("w-full font-mono")
                    .props("rows=16")
                    .mark("connector-config")
                )
                errors = ui.column().classes("w-full gap-1").mark("validation-errors")

                def parsed() -> dict | None:
                    errors.clear()
                    try:
                        value = json.loads(config.value or "{}")
                        if not isinstance(value, dict):
                            raise ValueError("the config must be a JSON object")
                        return value
                    except ValueError as exc:
                        with errors:
                            ui.label(f"Not valid JSON: {exc}").classes("text-negative")
                        return None

                async def check() -> bool:
                    value = parsed()
                    if value is None:
                        return False
                    try:
                        report = await run.io_bound(connect_cluster.validate, actor, value)
                    except StudioError as exc:
                        with errors:
                            ui.label(plain(exc)).classes("text-negative")
                        return False
                    with errors:
                        if not report.error_count:
                            ui.label("Connect accepts this config.").classes("text-positive")
                        for field, messages in report.errors.items():
                            ui.label(f"{field}: {'; '.join(messages)}").classes("text-negative").mark(f"error-{field}")
                    return not report.error_count

                async def save() -> None:
                    if not await check():
                        return
                    try:
                        await run.io_bound(connect_cluster.save, actor, name.value.strip(), parsed() or {})
                    except ValidationFailed as exc:
                        with errors:
                            ui.label(str(exc)).classes("text-negative")
                        return
                    except StudioError as exc:
                        with errors:
                            ui.label(plain(exc)).classes("text-negative")
                        return
                    dialog.close()
                    ui.notify(f"saved {name.value}", type="positive")
                    await refresh()

                with ui.row().classes("w-full justify-end gap-2"):
                    ui.button("Cancel", on_click=dialog.close).props("flat")
                    ui.button("Validate", on_click=check).props("outline").mark("validate-connector")
                    ui.button("Save", on_click=save).mark("save-connector")
            dialog.open()

        await refresh()
        ui.timer(5.0, refresh)
