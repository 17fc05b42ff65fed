"""Pages, registered on every run of app.py (tests re-run it with fresh NiceGUI globals)."""

from __future__ import annotations

from fastapi import FastAPI
from nicegui import ui

from components.auth_middleware import AuthMiddleware


def register(app: FastAPI) -> None:
    """Register every page route and the login guard."""
    from pages import (
        account,
        alerts,
        audit,
        connection_detail,
        connections,
        connectors,
        dashboard,
        events,
        login,
        pipeline_detail,
        pipeline_new,
        pipelines,
        settings,
        tokens,
        users,
    )

    ui.page("/login", title="Log in · CDC Studio")(login.login_page)
    ui.page("/setup", title="Set up · CDC Studio")(login.setup_page)
    ui.page("/", title="Dashboard · CDC Studio")(dashboard.dashboard_page)
    ui.page("/connections", title="Connections · CDC Studio")(connections.connections_page)
    ui.page("/connections/{connection_id}", title="Connection · CDC Studio")(connection_detail.connection_detail_page)
    ui.page("/pipelines", title="Pipelines · CDC Studio")(pipelines.pipelines_page)
    ui.page("/pipelines/new", title="New pipeline · CDC Studio")(pipeline_new.pipeline_new_page)
    ui.page("/pipelines/{pipeline_id}", title="Pipeline · CDC Studio")(pipeline_detail.pipeline_detail_page)
    ui.page("/connectors", title="Connectors · CDC Studio")(connectors.connectors_page)
    ui.page("/events", title="Live events · CDC Studio")(events.events_page)
    ui.page("/alerts", title="Alerts · CDC Studio")(alerts.alerts_page)
    ui.page("/users", title="Users · CDC Studio")(users.users_page)
    ui.page("/settings", title="Settings · CDC Studio")(settings.settings_page)
    ui.page("/account", title="Account · CDC Studio")(account.account_page)
    ui.page("/tokens", title="API tokens · CDC Studio")(tokens.tokens_page)
    ui.page("/audit", title="Audit · CDC Studio")(audit.audit_page)
    app.add_middleware(AuthMiddleware)
