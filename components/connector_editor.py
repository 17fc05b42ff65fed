"""A dialog that creates or edits a connector's JSON config, validated by Kafka Connect before it is saved."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from nicegui import run, ui

from components.messages import plain
from core import connect_cluster
from core.connect_cluster import ConnectorView
from core.errors import StudioError, ValidationFailed
from core.users import Actor

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


def parse_config(text: str | None) -> dict[str, Any]:
    """The config a textarea holds; ValueError saying what is wrong unless it is a JSON object."""
    value = json.loads(text or "{}")
    if not isinstance(value, dict):
        raise ValueError("the config must be a JSON object")
    return value


class ConnectorEditor(ui.dialog):
    """New connector (`c` None, starting from an example) or edit one; `on_saved()` after a save."""

    def __init__(self, actor: Actor, c: ConnectorView | None, on_saved: Callable[[], Awaitable[None]]) -> None:
        super().__init__()
        self._actor, self._on_saved = actor, on_saved
        with self, ui.card().classes("w-[48rem] max-w-full"):
            ui.label("Edit connector" if c else "New connector").classes("text-lg font-medium")
            self.name = (
                ui.input("Name", value=c.name if c else "")
                .props("readonly" if c else "")
                .classes("w-full")
                .mark("connector-name")
            )
            self.config = (
                ui.textarea("Config (JSON)", value=json.dumps(c.config if c else EXAMPLE, indent=2))
                .classes("w-full font-mono")
                .props("rows=16")
                .mark("connector-config")
            )
            self.errors = ui.column().classes("w-full gap-1").mark("validation-errors")
            with ui.row().classes("w-full justify-end gap-2"):
                ui.button("Cancel", on_click=self.close).props("flat")
                ui.button("Validate", on_click=self.check).props("outline").mark("validate-connector")
                ui.button("Save", on_click=self.save).mark("save-connector")

    def _say(self, text: str, classes: str = "text-negative", marker: str | None = None) -> None:
        with self.errors:
            label = ui.label(text).classes(classes)
            if marker:
                label.mark(marker)

    def _parsed(self) -> dict[str, Any] | None:
        self.errors.clear()
        try:
            return parse_config(self.config.value)
        except ValueError as exc:
            self._say(f"Not valid JSON: {exc}")
            return None

    async def check(self) -> bool:
        """Let Connect validate the config; show its per-field errors (True when it has none)."""
        value = self._parsed()
        if value is None:
            return False
        try:
            report = await run.io_bound(connect_cluster.validate, self._actor, value)
        except StudioError as exc:
            self._say(plain(exc))
            return False
        if report is None:  # the app is stopping
            return False
        if not report.error_count:
            self._say("Connect accepts this config.", "text-positive")
        for field, messages in report.errors.items():
            self._say(f"{field}: {'; '.join(messages)}", marker=f"error-{field}")
        return not report.error_count

    async def save(self) -> None:
        """Validate, then create or update the connector and close."""
        if not await self.check():
            return
        name = (self.name.value or "").strip()
        try:
            await run.io_bound(connect_cluster.save, self._actor, name, self._parsed() or {})
        except ValidationFailed as exc:
            self._say(str(exc))
            return
        except StudioError as exc:
            self._say(plain(exc))
            return
        self.close()
        ui.notify(f"saved {name}", type="positive")
        await self._on_saved()
