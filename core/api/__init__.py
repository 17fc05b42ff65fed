"""The REST API under /api/v1 (FastAPI routers mounted on the NiceGUI app)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI

from core.api import audit, auth, channels, connect, connections, datachecks, monitoring, pipelines, tokens, users
from core.api.alerts import router as alerts_router
from core.api.context import RequestContext
from core.api.errors import install_error_handlers
from core.api.metrics import prometheus_router
from core.api.metrics import router as metrics_router
from core.api.permissions import route_gate

PREFIX = "/api/v1"


def install_api(app: FastAPI) -> None:
    """Mount every router under /api/v1 and the error handlers."""
    # every route passes the permission gate first: 401/403 before the body is read
    router = APIRouter(prefix=PREFIX, dependencies=[Depends(route_gate)])
    router.include_router(auth.router)
    router.include_router(users.router)
    router.include_router(audit.router)
    router.include_router(users.audit_router)
    router.include_router(tokens.router)
    router.include_router(connections.router)
    router.include_router(pipelines.router)
    router.include_router(monitoring.router)
    router.include_router(alerts_router)
    router.include_router(metrics_router)
    router.include_router(channels.router)
    router.include_router(connect.router)
    router.include_router(datachecks.router)
    # Our routers have no lifespan of their own, but each include wraps the app's lifespan in one more
    # merged context: where the app is built again and again in one process (the tests' user fixture),
    # the nesting grew by 4 frames per build until start-up hit the recursion limit. Keep the app's own.
    lifespan = app.router.lifespan_context
    app.include_router(router)
    app.include_router(prometheus_router)  # GET /metrics at the root, where Prometheus scrapes
    app.router.lifespan_context = lifespan
    install_error_handlers(app)
    app.add_middleware(RequestContext)  # the client address and actor the audit trail records
