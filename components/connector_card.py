"""One Kafka Connect connector as a card (state, tasks with traces, topics, offsets, action buttons),
and the cluster's installed plugins."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from nicegui import ui

from core.connect_cluster import ConnectorView, PluginView

STATE_COLORS = {
    "RUNNING": "positive",
    "PAUSED": "warning",
    "STOPPED": "grey-7",
    "FAILED": "negative",
    "UNASSIGNED": "grey-5",
    "RESTARTING": "primary",
}
ACTIONS = (  # label, connector action, icon
    ("Pause", "pause", "pause"),
    ("Resume", "resume", "play_arrow"),
    ("Stop", "stop", "stop"),
    ("Restart", "restart", "restart_alt"),
    ("Restart failed", "restart_failed", "healing"),
)
PLUGIN_COLUMNS = [
    {"name": k, "label": k.replace("_", " ").capitalize(), "field": k, "align": "left"}
    for k in ("class_name", "type", "version")
]


def state_badge(state: str) -> ui.badge:
    """A connector's or task's state, coloured (marker `state-<STATE>`)."""
    return ui.badge(state, color=STATE_COLORS.get(state, "grey")).mark(f"state-{state}")


class ConnectorCard(ui.card):
    """A connector (marker `connector-<name>`); with `on_action`, its buttons call it with (name, action)
    and Edit calls `on_edit(connector)` (actions: pause, resume, stop, restart, restart_failed, delete)."""

    def __init__(
        self,
        c: ConnectorView,
        on_action: Callable[[str, str], Awaitable[None]] | None = None,
        on_edit: Callable[[ConnectorView], object] | None = None,
    ) -> None:
        super().__init__()
        self.classes("w-full").mark(f"connector-{c.name}")
        with self:
            with ui.row().classes("w-full items-center gap-3"):
                ui.label(c.name).classes("text-lg font-medium")
                state_badge(c.state)
                kind = (c.connector_class or "").rsplit(".", 1)[-1]
                ui.label(f"{c.type or ''} · {kind}").classes("text-gray-600")
                if c.pipeline_id is not None:
                    ui.link(f"pipeline {c.pipeline_id}", f"/pipelines/{c.pipeline_id}")
                ui.space()
                if on_action is not None:
                    self._buttons(c, on_action, on_edit)
            self._details(c)

    @staticmethod
    def _buttons(
        c: ConnectorView,
        on_action: Callable[[str, str], Awaitable[None]],
        on_edit: Callable[[ConnectorView], object] | None,
    ) -> None:
        for label, action, icon in ACTIONS:
            ui.button(label, icon=icon, on_click=lambda a=action: on_action(c.name, a)).props("flat dense").mark(
                f"{action}-{c.name}"
            )
        if on_edit is not None:
            ui.button("Edit", icon="edit", on_click=lambda: on_edit(c)).props("flat dense").mark(f"edit-{c.name}")
        ui.button("Delete", icon="delete", on_click=lambda: on_action(c.name, "delete")).props(
            "flat dense color=negative"
        ).mark(f"delete-{c.name}")

    @staticmethod
    def _details(c: ConnectorView) -> None:
        for t in c.tasks:
            with ui.row().classes("items-center gap-2"):
                ui.label(f"task {t.id}")
                state_badge(t.state)
                ui.label(t.worker_id or "").classes("text-gray-500 text-sm")
            if t.trace:
                with ui.expansion("Trace", icon="bug_report").classes("w-full"):
                    ui.code(t.trace).classes("w-full text-xs").mark(f"trace-{c.name}-{t.id}")
        if c.topics:
            ui.label("Topics: " + ", ".join(c.topics)).classes("text-sm").mark(f"topics-{c.name}")
        if c.offsets:
            ui.label("Offsets: " + json.dumps(c.offsets)[:400]).classes("text-sm text-gray-600 break-all")


def plugins_table(plugins: list[PluginView]) -> None:
    """The installed connector plugins, folded away (markers `plugins`, `plugins-table`)."""
    with (
        ui.expansion(f"Installed connector plugins ({len(plugins)})", icon="extension")
        .classes("w-full")
        .mark("plugins")
    ):
        rows = [p.model_dump() for p in plugins]
        ui.table(columns=PLUGIN_COLUMNS, rows=rows, row_key="class_name").classes("w-full").mark("plugins-table")
