"""The installation's admin settings (admins only): who may see row data."""

from __future__ import annotations

from nicegui import run, ui

from components.frame import frame
from components.messages import plain
from core import app_settings
from core.errors import StudioError
from core.security import Action, can

VIEWERS_SEE_DATA_HELP = (
    "Row data is the content of captured rows: the before and after values in Live events and in a "
    "pipeline's events. Admins and editors always see it. Viewers see it only when this is on; "
    "otherwise they see which table, operation and key changed, not the values."
)


async def settings_page() -> None:
    """Admin settings; other roles are turned away."""
    async with frame("Settings") as actor:
        if not can(actor.role, Action.manage_settings):
            ui.label("You need the admin role to change the settings.").classes("text-grey-8").mark("settings-denied")
            return
        try:
            view = await run.io_bound(app_settings.get_settings_view, actor)
        except StudioError as exc:
            ui.label(plain(exc)).classes("text-negative").mark("settings-error")
            return
        if view is None:
            return

        async def changed(e) -> None:  # noqa: ANN001
            try:
                saved = await run.io_bound(app_settings.set_viewers_see_data, actor, bool(e.value))
            except StudioError as exc:
                ui.notify(plain(exc), type="negative")
                return
            if saved is not None:
                state = "can now see" if saved.viewers_see_data else "no longer see"
                ui.notify(f"Viewers {state} row data", type="positive")

        with ui.card().classes("w-full").props("flat bordered"):
            ui.label("Data access").classes("text-lg font-medium")
            ui.switch("Viewers can see row data", value=view.viewers_see_data, on_change=changed).mark(
                "viewers-see-data"
            )
            ui.label(VIEWERS_SEE_DATA_HELP).classes("text-grey-7 text-sm max-w-3xl")
