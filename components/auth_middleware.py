"""Redirect anonymous visitors of any page except login/setup to the login page."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import app
from nicegui.client import Client
from starlette.middleware.base import BaseHTTPMiddleware

PUBLIC_PAGES = {"/login", "/setup"}


class AuthMiddleware(BaseHTTPMiddleware):
    """Only pages are guarded here; the REST API checks bearer tokens itself."""

    async def dispatch(self, request: Request, call_next):  # noqa: ANN001, ANN201
        path = request.url.path
        is_page = path in Client.page_routes.values() or any(
            path.startswith(route.split("{")[0]) and "{" in route for route in Client.page_routes.values()
        )
        if is_page and path not in PUBLIC_PAGES and not app.storage.user.get("user_id"):
            return RedirectResponse(f"/login?redirect_to={quote(path)}")
        return await call_next(request)
