"""Login, and the one-time "create the first admin" form."""

from __future__ import annotations

import time

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import app, run, ui

from core.errors import Conflict, StudioError
from core.users import authenticate, create_first_admin, needs_first_admin


def _safe_target(redirect_to: str) -> str:
    return redirect_to if redirect_to.startswith("/") and not redirect_to.startswith("//") else "/"


async def login_page(request: Request, redirect_to: str = "/") -> RedirectResponse | None:
    """Email/password login; sends to the first-admin form while no account exists."""
    # HTTP redirects, not ui.navigate: the browser gets its session cookie before the next page.
    if await run.io_bound(needs_first_admin):
        return RedirectResponse("/setup")
    if app.storage.user.get("user_id"):
        return RedirectResponse(_safe_target(redirect_to))

    client_addr = request.client.host if request.client else ""

    async def try_login() -> None:
        try:
            actor = await run.io_bound(authenticate, email.value or "", password.value or "", client_addr)
        except StudioError as exc:
            error.text = str(exc)
            error.visible = True
            return
        now = time.time()
        app.storage.user.update(
            {"user_id": actor.id, "email": actor.email, "role": actor.role, "login_at": now, "seen_at": now}
        )
        ui.navigate.to(_safe_target(redirect_to))

    with ui.card().classes("absolute-center w-96"):
        ui.label("CDC Studio").classes("text-2xl font-bold")
        ui.label("Sign in").classes("text-grey-7")
        email = ui.input("Email").props("autofocus").classes("w-full").mark("email")
        password = ui.input("Password", password=True, password_toggle_button=True).classes("w-full").mark("password")
        password.on("keydown.enter", try_login)
        error = ui.label().classes("text-negative").mark("login-error")
        error.visible = False
        ui.button("Log in", on_click=try_login).classes("w-full").mark("login")


async def setup_page() -> RedirectResponse | None:
    """Create the first admin; only while no account exists."""
    if not await run.io_bound(needs_first_admin):
        return RedirectResponse("/login")

    async def create() -> None:
        if (password.value or "") != (confirm.value or ""):
            error.text = "the passwords do not match"
            error.visible = True
            return
        try:
            user = await run.io_bound(create_first_admin, email.value or "", password.value or "", name.value or "")
        except Conflict:
            ui.navigate.to("/login")
            return
        except StudioError as exc:
            error.text = str(exc)
            error.visible = True
            return
        now = time.time()
        app.storage.user.update(
            {"user_id": user.id, "email": user.email, "role": user.role, "login_at": now, "seen_at": now}
        )
        ui.navigate.to("/")

    with ui.card().classes("absolute-center w-96"):
        ui.label("Welcome to CDC Studio").classes("text-2xl font-bold")
        ui.label("Create the first admin account").classes("text-grey-7")
        name = ui.input("Full name").classes("w-full").mark("full-name")
        email = ui.input("Email").classes("w-full").mark("email")
        password = ui.input("Password (8+ characters)", password=True).classes("w-full").mark("password")
        confirm = ui.input("Repeat password", password=True).classes("w-full").mark("confirm")
        error = ui.label().classes("text-negative").mark("setup-error")
        error.visible = False
        ui.button("Create admin", on_click=create).classes("w-full").mark("create-admin")
