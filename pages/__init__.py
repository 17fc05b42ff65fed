"""Pages, registered on every run of app.py (tests re-run it with fresh NiceGUI globals)."""

from __future__ import annotations

from fastapi import FastAPI
from nicegui import ui

from components.auth_middleware import AuthMiddleware


def register(app: FastAPI) -> None:
    """Register every page route and the login guard."""
    from pages import connection_detail, connections, dashboard, login, users

    ui.page("/login", title="Log in · CDC Studio")(login.login_page)
    ui.page("/setup", title="Set up · CDC Studio")(login.setup_page)
    ui.page("/", title="Dashboard · CDC Studio")(dashboard.dashboard_page)
    ui.page("/connections", title="Connections · CDC Studio")(connections.connections_page)
    ui.page("/connections/{connection_id}", title="Connection · CDC Studio")(connection_detail.connection_detail_page)
    ui.page("/users", title="Users · CDC Studio")(users.users_page)
    app.add_middleware(AuthMiddleware)
