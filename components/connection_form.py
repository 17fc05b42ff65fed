"""The dialog that creates or edits a saved connection; nothing is saved unless every field is valid."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from nicegui import run, ui
from pydantic import ValidationError

from components.confirm import confirm
from components.format import format_options, ms, parse_options
from components.messages import error_title, field_errors, plain
from core import connections
from core.connections import ConnectionCreate, ConnectionDraft, ConnectionPublic, ConnectionUpdate
from core.connectors import DEFAULT_PORTS
from core.errors import Conflict, StudioError, ValidationFailed
from core.users import Actor

KIND_LABELS = {"postgresql": "PostgreSQL", "sqlserver": "SQL Server"}
USAGE_LABELS = {"source": "Source", "target": "Target", "both": "Source and target"}
FIELD_LABELS = {
    "name": "Name",
    "kind": "Kind",
    "usage": "Usage",
    "host": "Host",
    "port": "Port",
    "database": "Database",
    "username": "Username",
    "password": "Password",
    "schema": "Default schema",
    "schema_": "Default schema",
    "options": "Extra options",
}

OPTION_HINTS = {"postgresql": "sslmode=require", "sqlserver": "driver=FreeTDS"}

OnSaved = Callable[[ConnectionPublic], Awaitable[None] | None]


class ConnectionForm:
    """A dialog with every field of a connection. `existing` switches it to editing.

    The password field always starts empty; when editing, empty means "keep the stored password".
    The dialog is persistent (no close by ESC or a click outside) and deleted when closed.
    """

    def __init__(self, actor: Actor, on_saved: OnSaved, existing: ConnectionPublic | None = None) -> None:
        self.actor = actor
        self.on_saved = on_saved
        self.existing = existing
        with ui.dialog().props("persistent") as self.dialog, ui.card().classes("w-[36rem] max-w-full"):
            self._build()

    def _build(self) -> None:
        c = self.existing
        title = f"Edit connection {c.name}" if c else "New connection"
        ui.label(title).classes("text-xl font-semibold").mark("connection-form-title")
        self.name = ui.input("Name", value=c.name if c else "").classes("w-full").mark("conn-name")
        with ui.row().classes("w-full gap-4 no-wrap"):
            self.kind = (
                ui.select(KIND_LABELS, label="Kind", value=c.kind if c else "postgresql", on_change=self._kind_changed)
                .classes("flex-1")
                .mark("conn-kind")
            )
            self.usage = (
                ui.select(USAGE_LABELS, label="Usage", value=c.usage if c else "both")
                .classes("flex-1")
                .mark("conn-usage")
            )
        self._previous_kind = self.kind.value
        with ui.row().classes("w-full gap-4 no-wrap"):
            self.host = ui.input("Host", value=c.host if c else "").classes("flex-[3]").mark("conn-host")
            self.port = (
                ui.number(
                    "Port",
                    value=c.port if c else DEFAULT_PORTS["postgresql"],
                    format="%d",
                    min=1,
                    max=65535,
                    precision=0,
                )
                .classes("flex-1")
                .mark("conn-port")
            )
        self.database = ui.input("Database", value=c.database if c else "").classes("w-full").mark("conn-database")
        with ui.row().classes("w-full gap-4 no-wrap"):
            self.username = ui.input("Username", value=c.username if c else "").classes("flex-1").mark("conn-username")
            self.password = (
                ui.input("Password", password=True, password_toggle_button=True)
                .props("autocomplete=new-password")
                .classes("flex-1")
                .mark("conn-password")
            )
            if c and c.has_password:
                self.password.props('hint="leave empty to keep the stored password"')
        self.clear_password: ui.checkbox | None = None
        if c and c.has_password:
            self.clear_password = ui.checkbox("Remove the stored password").mark("conn-clear-password")
        self.schema = (
            ui.input("Default schema", value=(c.schema_ or "") if c else "", placeholder="public / dbo")
            .classes("w-full")
            .mark("conn-schema")
        )
        self.options = (
            ui.textarea(
                "Extra options (key=value per line)",
                value=format_options(c.options if c else {}),
                placeholder=OPTION_HINTS.get(c.kind if c else "postgresql", ""),
            )
            .props("autogrow")
            .classes("w-full")
            .mark("conn-options")
        )
        self.fields: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "usage": self.usage,
            "host": self.host,
            "port": self.port,
            "database": self.database,
            "username": self.username,
            "password": self.password,
            "schema": self.schema,
            "schema_": self.schema,
            "options": self.options,
        }
        self.error = ui.label().classes("text-negative whitespace-pre-line").mark("form-error")
        self.error.visible = False
        self.test_result = ui.label().classes("whitespace-pre-line").mark("form-test-result")
        self.test_result.visible = False
        with ui.row().classes("w-full items-center gap-2"):
            self.test_button = ui.button("Test", icon="bolt", on_click=self.test).props("outline").mark("form-test")
            self.test_button.tooltip("Connect with these values now; nothing is saved")
            ui.space()
            ui.button("Cancel", on_click=self.close).props("flat").mark("form-cancel")
            self.save_button = ui.button("Save", on_click=self.save).mark("form-save")

    def open(self) -> ConnectionForm:
        """Show the dialog."""
        self.dialog.open()
        return self

    def close(self) -> None:
        """Hide the dialog and delete it, so nothing typed (the password) stays in the page."""
        self.password.value = ""
        self.dialog.close()
        self.dialog.delete()

    def _kind_changed(self) -> None:
        self.options.props(f'placeholder="{OPTION_HINTS.get(self.kind.value, "")}"')
        # Only replace a port the user did not choose: the other kind's default (or nothing).
        old = DEFAULT_PORTS.get(self._previous_kind)
        if self.port.value in (None, old) and self.kind.value in DEFAULT_PORTS:
            self.port.value = DEFAULT_PORTS[self.kind.value]
        self._previous_kind = self.kind.value

    def _values(self) -> dict[str, Any]:
        port = self.port.value
        return {
            "name": self.name.value or "",
            "kind": self.kind.value,
            "usage": self.usage.value,
            "host": self.host.value or "",
            "port": int(port) if port is not None and float(port).is_integer() else port,
            "database": self.database.value or "",
            "username": self.username.value or "",
            "password": self.password.value or "",
            "schema": (self.schema.value or "").strip() or None,
            "options": parse_options(self.options.value),
        }

    def _show_errors(self, errors: list[ValidationFailed]) -> None:
        lines = []
        for err in errors:
            label = FIELD_LABELS.get(err.field, err.field)
            lines.append(f"{label}: {err.message}")
            element = self.fields.get(err.field)
            if element is not None and hasattr(element, "error"):
                element.error = err.message
        self.error.text = "\n".join(lines)
        self.error.visible = True

    def _clear_errors(self) -> None:
        for element in set(self.fields.values()):
            if hasattr(element, "error"):
                element.error = None
        self.error.text = ""
        self.error.visible = False

    def _validated(self) -> ConnectionCreate | ConnectionUpdate | None:
        try:
            values = self._values()
            if self.existing is None:
                return ConnectionCreate.model_validate(values)
            if not values["password"]:
                values["password"] = "" if self.clear_password is not None and self.clear_password.value else None
            values["schema"] = values["schema"] or ""  # an emptied field clears the default schema
            return ConnectionUpdate.model_validate(values)
        except ValidationFailed as exc:
            self._show_errors([exc])
        except ValidationError as exc:
            self._show_errors(field_errors(exc))
        return None

    def _draft(self) -> ConnectionDraft | None:
        """The entered values as a test draft; editing with an empty password tests the stored one."""
        try:
            values = self._values()
            if self.existing is not None and not values["password"]:
                cleared = self.clear_password is not None and self.clear_password.value
                values["password"] = "" if cleared else None
                values["connection_id"] = self.existing.id
            return ConnectionDraft.model_validate(values)
        except ValidationFailed as exc:
            self._show_errors([exc])
        except ValidationError as exc:
            self._show_errors(field_errors(exc))
        return None

    def _show_test(self, text: str, ok: bool) -> None:
        self.test_result.text = text
        self.test_result.classes(replace="text-positive" if ok else "text-negative")
        self.test_result.visible = True

    async def test(self) -> None:
        """Connect with the entered values and show the result under the fields; nothing is stored."""
        self._clear_errors()
        self.test_result.visible = False
        draft = self._draft()
        if draft is None:
            return
        self.test_button.props("loading")
        try:
            result = await run.io_bound(connections.test_draft, self.actor, draft)
        except StudioError as exc:
            self._show_test(f"Test failed: {plain(exc)}", ok=False)
            return
        finally:
            self.test_button.props(remove="loading")
        if result is None:  # the app is shutting down
            return
        if result.ok:
            self._show_test(f"Connected: {result.server_version} · {ms(result.latency_ms)} round trip", ok=True)
        else:
            self._show_test(f"{error_title(result.error_kind)}: {result.error}", ok=False)

    async def save(self) -> None:
        """Validate, save through the service layer, close and report; on any error keep the dialog open."""
        self._clear_errors()
        data = self._validated()
        if data is None:
            return
        self.save_button.props("loading")
        try:
            if self.existing is None:
                saved = await run.io_bound(connections.create_connection, self.actor, data)
            else:
                saved = await run.io_bound(connections.update_connection, self.actor, self.existing.id, data)
        except ValidationFailed as exc:
            self._show_errors([exc])
            return
        except Conflict as exc:
            self.name.error = "this name is taken"
            self.error.text = plain(exc)
            self.error.visible = True
            return
        except StudioError as exc:
            self.error.text = plain(exc)
            self.error.visible = True
            return
        finally:
            self.save_button.props(remove="loading")
        if saved is None:  # the app is shutting down
            return
        self.password.value = ""
        self.dialog.close()
        # The dialog is deleted last: this handler runs in its slot, which notify and navigate still need.
        try:
            ui.notify(f"Saved connection {saved.name}", type="positive")
            result = self.on_saved(saved)
            if result is not None:
                await result
        finally:
            self.dialog.delete()


def open_connection_form(actor: Actor, on_saved: OnSaved, existing: ConnectionPublic | None = None) -> ConnectionForm:
    """Create and open the connection dialog (a new one each time)."""
    return ConnectionForm(actor, on_saved, existing).open()


async def confirm_and_delete(actor: Actor, connection: ConnectionPublic) -> bool:
    """Ask, then delete the connection; True when it is gone. Errors are shown, not raised."""
    if not await confirm(f"Delete the connection '{connection.name}'?\nIts test history is deleted too."):
        return False
    try:
        await run.io_bound(connections.delete_connection, actor, connection.id)
    except StudioError as exc:
        ui.notify(f"Could not delete {connection.name}: {plain(exc)}", type="negative")
        return False
    ui.notify(f"Deleted connection {connection.name}", type="positive")
    return True
