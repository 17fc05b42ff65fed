"""The REST API under /api/v1 (FastAPI routers mounted on the NiceGUI app)."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from core.api import auth, connect, connections, monitoring, pipelines, users
from core.api.errors import install_error_handlers

PREFIX = "/api/v1"


def install_api(app: FastAPI) -> None:
    """Mount every router under /api/v1 and the error handlers."""
    router = APIRouter(prefix=PREFIX)
    router.include_router(auth.router)
    router.include_router(users.router)
    router.include_router(users.audit_router)
    router.include_router(connections.router)
    router.include_router(pipelines.router)
    router.include_router(monitoring.router)
    router.include_router(connect.router)
    app.include_router(router)
    install_error_handlers(app)
