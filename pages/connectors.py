"""The Kafka Connect cluster: every connector with state, tasks, topics and offsets; plugins; configs."""

from __future__ import annotations

from nicegui import run, ui

from components.confirm import confirm
from components.connector_card import ConnectorCard, plugins_table
from components.connector_editor import ConnectorEditor
from components.frame import frame
from components.messages import plain
from core import connect_cluster
from core.connect_cluster import ClusterView, ConnectorView
from core.errors import NotFound, StudioError
from core.security import Action, can
from core.users import Actor

REFRESH_S = 5.0  # the cluster is shared: connectors change there without the app knowing


async def connectors_page() -> None:
    """List, act on and edit the connectors of the configured Kafka Connect cluster."""
    async with frame("Connectors") as actor:
        page = _ConnectorsPage(actor, editor=can(actor.role, Action.manage_pipelines))
        await page.refresh()
        ui.timer(REFRESH_S, page.refresh)


class _ConnectorsPage:
    """The header and connector cards of an open Connectors page, re-rendered when the cluster changes."""

    def __init__(self, actor: Actor, *, editor: bool) -> None:
        self.actor, self.editor = actor, editor
        self.header = ui.row().classes("w-full items-center gap-4")
        self.body = ui.column().classes("w-full gap-3")
        self.shown: dict | None = None

    async def refresh(self) -> None:
        """Read the cluster (in a worker thread) and show it, or say why it cannot be read."""
        try:
            view = await run.io_bound(connect_cluster.overview, self.actor)
        except NotFound as exc:
            self._problem(str(exc), "text-gray-600", "connect-not-configured")
        except StudioError as exc:
            self._problem(f"Kafka Connect cannot be reached: {plain(exc)}", "text-negative", "connect-error")
        else:
            if view is not None:
                self.render(view)

    def _problem(self, message: str, classes: str, marker: str) -> None:
        self.shown = None
        self.body.clear()
        with self.body:
            ui.label(message).classes(classes).mark(marker)

    def render(self, view: ClusterView) -> None:
        """Show the cluster, unless it is unchanged (open traces and expansions stay as they are)."""
        if self.shown == view.model_dump():
            return
        self.shown = view.model_dump()
        self.header.clear()
        with self.header:
            ui.label(f"{view.url} · Kafka Connect {view.version or '?'}").classes("text-gray-600").mark("connect-url")
            ui.button("Refresh", icon="refresh", on_click=self.refresh).props("flat")
            if self.editor:
                ui.button("New connector", icon="add", on_click=lambda: self.edit(None)).mark("new-connector")
        self.body.clear()
        with self.body:
            if not view.connectors:
                ui.label("No connectors on this cluster yet.").classes("text-gray-600")
            for c in view.connectors:
                if self.editor:
                    ConnectorCard(c, on_action=self.act, on_edit=self.edit)
                else:
                    ConnectorCard(c)
            plugins_table(view.plugins)

    async def act(self, name: str, action: str) -> None:
        """Pause, resume, stop, restart, restart the failed tasks of, or delete (once confirmed) a connector."""
        if action == "delete" and not await confirm(f"Delete connector {name} from the cluster?"):
            return
        try:
            await run.io_bound(connect_cluster.act, self.actor, name, action)
            ui.notify(f"{action.replace('_', ' ')}: {name}", type="positive")
        except StudioError as exc:
            ui.notify(plain(exc), type="negative", multi_line=True)
        await self.refresh()

    def edit(self, c: ConnectorView | None) -> None:
        """Open the editor on a connector, or on a new one."""
        ConnectorEditor(self.actor, c, on_saved=self.refresh).open()
