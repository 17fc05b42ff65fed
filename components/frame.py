"""The shared page shell: header, navigation, user menu and logout."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from nicegui import app, run, ui

from components.auth_middleware import end_session, session_expired
from components.password_dialog import open_password_dialog
from components.preferences import DARK, UTC, active_nav, apply_preferences, preference_items
from core.errors import AuthenticationRequired
from core.users import Actor, actor_by_id

NAV = [
    ("Dashboard", "/", "dashboard"),
    ("Connections", "/connections", "cable"),
    ("Pipelines", "/pipelines", "account_tree"),
    ("Connectors", "/connectors", "hub"),
    ("Live events", "/events", "bolt"),
    ("Alerts", "/alerts", "notifications"),
    ("Users", "/users", "group"),
    ("Settings", "/settings", "settings"),
    ("Audit", "/audit", "history"),
]


PREFERENCES = (DARK, UTC)


def _current_path() -> str:
    request = ui.context.client.request
    return request.url.path if request is not None else ""


def _actor_or_none(user_id: int, login_at: float | None) -> Actor | None:
    try:
        return actor_by_id(user_id, login_at)
    except AuthenticationRequired:
        return None


async def current_actor() -> Actor | None:
    """The signed-in user of this browser session, or None (also when the account was removed).

    The lookup reads the app database, so it runs in a worker thread, never on the event loop.
    """
    user_id = app.storage.user.get("user_id")
    if user_id is None:
        return None
    if session_expired(app.storage.user, time.time()):
        end_session()
        return None
    actor = await run.io_bound(_actor_or_none, int(user_id), app.storage.user.get("login_at"))
    if actor is None and not (app.is_stopping or app.is_stopped):  # None then says nothing about the account
        app.storage.user.clear()
    return actor


def logout() -> None:
    end_session()
    ui.navigate.to("/login")


def _header(actor: Actor) -> None:
    with ui.header().classes("items-center justify-between px-4 py-2"):
        with ui.row().classes("items-center gap-6"):
            ui.link("CDC Studio", "/").classes("text-xl font-bold text-white no-underline")
            current = _current_path()
            for label, path, icon in NAV:
                if path in ("/users", "/settings", "/audit") and actor.role != "admin":
                    continue
                with ui.link(target=path).classes("text-white no-underline flex items-center gap-1") as link:
                    ui.icon(icon)
                    ui.label(label)
                if active_nav(path, current):  # where the person is, at a glance
                    link.classes("bg-white/20 rounded px-2 py-1 font-semibold").props('aria-current="page"')
                    link.mark("nav-active")
        with ui.button(icon="account_circle").props("flat color=white").classes("normal-case") as menu_button:
            ui.label(f"{actor.email} ({actor.role})").classes("ml-1")
            with ui.menu():
                ui.menu_item("API docs", on_click=lambda: ui.navigate.to("/docs", new_tab=True)).mark("api-docs")
                preference_items()
                ui.menu_item("Account", on_click=lambda: ui.navigate.to("/account")).mark("account")
                ui.menu_item("API tokens", on_click=lambda: ui.navigate.to("/tokens")).mark("api-tokens")
                ui.menu_item("Change password", on_click=lambda: open_password_dialog(actor)).mark("change-password")
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
    apply_preferences()
    _header(actor)
    with ui.column().classes("w-full max-w-screen-xl mx-auto p-4 gap-4"):
        ui.label(title).classes("text-2xl font-semibold")
        yield actor
