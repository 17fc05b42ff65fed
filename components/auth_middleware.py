"""Redirect visitors of any page except login/setup to the login page unless their session is valid: signed
in, not idle past CDC_STUDIO_SESSION_IDLE_MINUTES, not older than CDC_STUDIO_SESSION_MAX_HOURS, and begun
after the account's password last changed."""

from __future__ import annotations

import time
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import app
from nicegui.client import Client
from starlette.concurrency import run_in_threadpool
from starlette.middleware.base import BaseHTTPMiddleware

from components.preferences import DARK, UTC
from core.config import get_settings
from core.errors import AuthenticationRequired
from core.users import Actor, actor_by_id

PUBLIC_PAGES = {"/login", "/setup"}
ACCOUNT_PAGE = "/account"


def session_expired(storage: dict, now: float) -> bool:
    """Whether a UI session is past its idle time (since the last page load) or its absolute lifetime."""
    settings = get_settings()
    login_at, seen_at = storage.get("login_at"), storage.get("seen_at")
    if login_at is None or seen_at is None:
        return True  # a session from before sessions were timed: sign in again
    return now - seen_at > settings.session_idle_minutes * 60 or now - login_at > settings.session_max_hours * 3600


def end_session() -> None:
    """Forget the signed-in user of this browser (its display preferences stay)."""
    kept = {k: v for k, v in app.storage.user.items() if k in (DARK, UTC)}  # display choices outlive it
    app.storage.user.clear()
    app.storage.user.update(kept)


def _still_valid(user_id: int, login_at: float | None) -> Actor | None:
    try:
        return actor_by_id(user_id, login_at)
    except AuthenticationRequired:
        return None


class AuthMiddleware(BaseHTTPMiddleware):
    """Only pages are guarded here; the REST API checks bearer tokens itself."""

    async def dispatch(self, request: Request, call_next):  # noqa: ANN001, ANN201
        path = request.url.path
        is_page = path in Client.page_routes.values() or any(
            path.startswith(route.split("{")[0]) and "{" in route for route in Client.page_routes.values()
        )
        if is_page and path not in PUBLIC_PAGES:
            storage = app.storage.user
            user_id = storage.get("user_id")
            now = time.time()
            actor = None
            if user_id is not None and not session_expired(storage, now):
                actor = await run_in_threadpool(_still_valid, int(user_id), storage.get("login_at"))
            if actor is None:
                if user_id is not None:
                    end_session()
                return RedirectResponse(f"/login?redirect_to={quote(path)}")
            storage["seen_at"] = now
            if actor.must_change_password and path != ACCOUNT_PAGE:  # an admin's reset: set your own first
                return RedirectResponse(f"{ACCOUNT_PAGE}?must_change=1")
        return await call_next(request)
