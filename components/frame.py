"""The shared page shell: header, navigation, user menu and logout."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from nicegui import app, run, ui

from core.errors import AuthenticationRequired
from core.users import Actor, actor_by_id

NAV = [
    ("Dashboard", "/", "dashboard"),
    ("Connections", "/connections", "cable"),
    ("Pipelines", "/pipelines", "account_tree"),
    ("Connectors", "/connectors", "hub"),
    ("Live events", "/events", "bolt"),
    ("Users", "/users", "group"),
]


def _actor_or_none(user_id: int) -> Actor | None:
    try:
        return actor_by_id(user_id)
    except AuthenticationRequired:
        return None


async def current_actor() -> Actor | None:
    """The signed-in user of this browser session, or None (also when the account was removed).

    The lookup reads the app database, so it runs in a worker thread, never on the event loop.
    """
    user_id = app.storage.user.get("user_id")
    if user_id is None:
        return None
    actor = await run.io_bound(_actor_or_none, int(user_id))
    if actor is None and not (app.is_stopping or app.is_stopped):  # None then says nothing about the account
        app.storage.user.clear()
    return actor


def logout() -> None:
    app.storage.user.clear()
    ui.navigate.to("/login")


def _header(actor: Actor) -> None:
    with ui.header().classes("items-center justify-between px-4 py-2"):
        with ui.row().classes("items-center gap-6"):
            ui.link("CDC Studio", "/").classes("text-xl font-bold text-white no-underline")
            for label, path, icon in NAV:
                if path == "/users" and actor.role != "admin":
                    continue
                with ui.link(target=path).classes("text-white no-underline flex items-center gap-1"):
                    ui.icon(icon)
                    ui.label(label)
        with ui.button(icon="account_circle").props("flat color=white").classes("normal-case") as menu_button:
            ui.label(f"{actor.email} ({actor.role})").classes("ml-1")
            with ui.menu():
                ui.menu_item("Log out", on_click=logout).mark("logout")
        menu_button.mark("user-menu")


@asynccontextmanager
async def frame(title: str) -> AsyncIterator[Actor]:
    """Render the page shell around the page's content and yield the signed-in user."""
    actor = await current_actor()
    if actor is None:  # the middleware already redirects; this covers a session revoked mid-way
        ui.navigate.to("/login")
        raise AuthenticationRequired("not signed in")
    ui.colors(primary="#1f4e79")
    _header(actor)
    with ui.column().classes("w-full max-w-screen-xl mx-auto p-4 gap-4"):
        ui.label(title).classes("text-2xl font-semibold")
        yield actor
