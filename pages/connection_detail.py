"""One connection: its settings, a connection test with history, and discovery of its tables."""

from __future__ import annotations

import asyncio
import logging

from nicegui import run, ui
from nicegui.client import ClientConnectionTimeout

from components.connection_form import KIND_LABELS, USAGE_LABELS, confirm_and_delete, open_connection_form
from components.discovery import DiscoveryPanel
from components.format import format_options, iso_utc, ms, time_cell_slot, timestamp
from components.frame import frame
from components.messages import error_title, plain
from components.preferences import show_utc
from core import connections
from core.connections import ConnectionPublic, ConnectionTestPublic
from core.connectors.base import ReadinessItem
from core.errors import StudioError
from core.security import Action, can
from core.users import Actor

log = logging.getLogger(__name__)

HISTORY_COLUMNS = [
    {"name": "time", "label": "Time", "field": "time", "align": "left"},
    {"name": "result", "label": "Result", "field": "result", "align": "left"},
    {"name": "latency", "label": "Round trip", "field": "latency", "align": "right"},
    {"name": "version", "label": "Server version", "field": "version", "align": "left"},
    {"name": "error", "label": "Error", "field": "error", "align": "left"},
]
RESULT_SLOT = r"""
<q-td :props="props">
  <q-badge :color="props.value === 'ok' ? 'positive' : 'negative'" :label="props.value" />
</q-td>
"""


def history_row(t: ConnectionTestPublic) -> dict:
    """One row of the test history."""
    return {
        "id": t.id,
        "time": iso_utc(t.tested_at),  # shown in the browser's time zone, UTC on hover
        "result": "ok" if t.ok else "failed",
        "latency": ms(t.latency_ms) if t.ok else "—",
        "version": t.server_version or "",
        "error": "" if t.ok else f"{error_title(t.error_kind)}: {t.error or ''}",
    }


def _summary(c: ConnectionPublic) -> None:
    with ui.row().classes("items-center gap-2"):
        ui.label(c.name).classes("text-xl font-semibold").mark("connection-name")
        ui.badge(KIND_LABELS.get(c.kind, c.kind)).props("outline")
        ui.badge(USAGE_LABELS.get(c.usage, c.usage)).props("outline color=grey-8")
    facts = [
        ("Host", f"{c.host}:{c.port}"),
        ("Database", c.database),
        ("Username", c.username),
        ("Password", "stored (encrypted)" if c.has_password else "none"),
        ("Default schema", c.schema_ or "—"),
        ("Extra options", format_options(c.options).replace("\n", ", ") or "—"),
        ("Updated", timestamp(c.updated_at)),
    ]
    with ui.grid(columns="auto 1fr auto 1fr").classes("gap-x-6 gap-y-1 items-baseline").mark("connection-summary"):
        for label, value in facts:
            ui.label(label).classes("text-grey-7")
            ui.label(value)


class ConnectionTestSection:
    """The Test button, the latest result in words, and the history table."""

    def __init__(self, actor: Actor, connection: ConnectionPublic) -> None:
        self.actor = actor
        self.connection = connection
        self.result = ui.label().mark("test-result")
        self.result.visible = False
        empty = "Not tested yet: press Test" if can(actor.role, Action.manage_connections) else "Not tested yet"
        ui.label("Test history").classes("text-lg font-medium")
        self.history = (
            ui.table(columns=HISTORY_COLUMNS, rows=[], row_key="id", pagination=10)
            .classes("w-full")
            .props(f'flat bordered dense no-data-label="{empty}"')
            .mark("test-history")
        )
        self.history.add_slot("body-cell-result", RESULT_SLOT)
        self.history.add_slot("body-cell-time", time_cell_slot(show_utc()))

    async def load_history(self) -> None:
        """Fetch the newest tests."""
        try:
            tests = await run.io_bound(connections.test_history, self.actor, self.connection.id)
        except StudioError as exc:
            self._show(plain(exc), ok=False)
            return
        self.history.rows = [history_row(t) for t in tests or []]

    def _show(self, text: str, ok: bool) -> None:
        self.result.text = text
        self.result.classes(replace="text-positive" if ok else "text-negative")
        self.result.visible = True

    async def run_test(self, button: ui.button) -> None:
        """Connect now and show the outcome in words."""
        button.props("loading")
        try:
            test = await run.io_bound(connections.test_connection, self.actor, self.connection.id)
        except StudioError as exc:
            self._show(f"Test failed: {plain(exc)}", ok=False)
            return
        except Exception as exc:  # a bug, not a failed connection: log it, still answer in words
            log.exception("testing connection %s failed", self.connection.id)
            self._show(f"Test failed: {plain(exc)}", ok=False)
            return
        finally:
            button.props(remove="loading")
        if test is None:
            return
        if test.ok:
            self._show(f"Connected: {test.server_version} · {ms(test.latency_ms)} round trip", ok=True)
        else:
            self._show(f"{error_title(test.error_kind)}: {test.error}", ok=False)
        await self.load_history()


READINESS_LOOK = {
    "ok": ("check_circle", "text-positive"),
    "warning": ("warning", "text-warning"),
    "failing": ("cancel", "text-negative"),
}


class ReadinessSection:
    """The CDC readiness checklist of a PostgreSQL connection: each point, its status and the fix."""

    def __init__(self, actor: Actor, connection: ConnectionPublic) -> None:
        self.actor = actor
        self.connection = connection
        with ui.row().classes("w-full items-center justify-between"):
            ui.label("CDC readiness").classes("text-lg font-medium")
            self.button = (
                ui.button("Check again", icon="refresh", on_click=self.load).props("flat").mark("readiness-refresh")
            )
        self.summary = ui.label().classes("text-grey-7").mark("readiness-summary")
        # Two columns on wide screens: the whole checklist, warnings included, fits in one look.
        self.items = ui.element("div").classes("w-full grid grid-cols-1 lg:grid-cols-2 gap-x-8 gap-y-3")
        self.items.mark("readiness")

    async def load(self) -> None:
        """Run the checks on the server and show each point."""
        self.button.props("loading")
        self.summary.text = "Checking the server …"
        try:
            items = await run.io_bound(connections.cdc_readiness, self.actor, self.connection.id)
        except StudioError as exc:
            self.items.clear()
            self.summary.text = f"Could not check: {plain(exc)}"
            return
        finally:
            self.button.props(remove="loading")
        if items is None:
            return
        self._render(items)

    def _render(self, items: list[ReadinessItem]) -> None:
        failing = sum(1 for i in items if i.status == "failing")
        warnings = sum(1 for i in items if i.status == "warning")
        self.summary.classes(replace="text-negative" if failing else "text-warning" if warnings else "text-positive")
        if failing:
            self.summary.text = f"Not ready for CDC: {failing} point(s) to fix" + (
                f", {warnings} warning(s)" if warnings else ""
            )
        elif warnings:
            self.summary.text = f"Ready for CDC, with {warnings} warning(s)"
        else:
            self.summary.text = "Ready for CDC"
        self.items.clear()
        with self.items:
            for item in items:
                icon, color = READINESS_LOOK.get(item.status, ("help", "text-grey-7"))
                with ui.row().classes("w-full items-start no-wrap gap-3").mark(f"readiness-{item.key}"):
                    ui.icon(icon, size="sm").classes(color)
                    with ui.column().classes("gap-0 min-w-0"):
                        with ui.row().classes("items-baseline gap-2"):
                            ui.label(item.label).classes("font-medium")
                            ui.label(item.status).classes(f"text-xs uppercase {color}")
                        ui.label(item.found).classes("text-grey-8 break-words")
                        if item.fix:
                            ui.label(f"Fix: {item.fix}").classes("text-sm font-mono break-words")


async def connection_detail_page(connection_id: int) -> None:
    """Settings, test and discovery of one saved connection."""
    async with frame("Connection") as actor:
        try:
            c = await run.io_bound(connections.get_connection, actor, connection_id)
        except StudioError as exc:
            ui.label(plain(exc)).classes("text-negative").mark("connection-error")
            ui.link("Back to connections", "/connections")
            return
        if c is None:
            return
        ui.page_title(f"{c.name} · CDC Studio")
        manage = can(actor.role, Action.manage_connections)

        async def delete() -> None:
            if await confirm_and_delete(actor, c):
                ui.navigate.to("/connections")

        ui.link("← All connections", "/connections").classes("text-primary -mt-2").mark("back-to-list")
        with ui.card().classes("w-full").props("flat bordered"):
            with ui.row().classes("w-full items-start justify-between"):
                with ui.column().classes("gap-2"):
                    _summary(c)
                with ui.row().classes("gap-2"):
                    # A test writes the test history: read-only roles are not offered it.
                    test_button = ui.button("Test", icon="bolt").mark("test-connection") if manage else None
                    if manage:
                        ui.button(
                            "Edit",
                            icon="edit",
                            on_click=lambda: open_connection_form(
                                actor, lambda saved: ui.navigate.to(f"/connections/{saved.id}"), c
                            ),
                        ).props("outline").mark("edit-connection")
                        ui.button("Delete", icon="delete", on_click=delete).props("outline color=negative").mark(
                            "delete-connection"
                        )
            tests = ConnectionTestSection(actor, c)
            if test_button is not None:
                test_button.on_click(lambda: tests.run_test(test_button))
        readiness = None
        if c.kind == "postgresql":  # the checklist is PostgreSQL's (wal_level, slots, WAL senders ...)
            with ui.card().classes("w-full").props("flat bordered").mark("readiness-card"):
                readiness = ReadinessSection(actor, c)
        with ui.card().classes("w-full").props("flat bordered"):
            ui.label("Discovery").classes("text-lg font-medium")
            discovery = DiscoveryPanel(actor, c)
        await tests.load_history()
        try:  # discovery may take seconds: send the page first
            await ui.context.client.connected(timeout=60)
        except ClientConnectionTimeout:
            return  # the browser never connected; nobody to show discovery to
        # Both only read; side by side, an unreachable server costs one connect timeout, not two.
        await asyncio.gather(discovery.start(), *([readiness.load()] if readiness is not None else []))
