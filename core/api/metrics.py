"""Metrics of pipelines (current figures, history, per-table statistics, sparklines) and GET /metrics."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from core import pipelines
from core.api.deps import current_actor
from core.config import get_settings
from core.monitoring import metrics, prometheus
from core.security import Action, require
from core.users import Actor

router = APIRouter(prefix="/monitoring", tags=["monitoring"])
prometheus_router = APIRouter(tags=["monitoring"])  # at the app root: where Prometheus looks by default

_bearer = HTTPBearer(auto_error=False, description="A token from POST /api/v1/auth/token")


@router.get("/pipelines/{pipeline_id}/metrics")
def current(pipeline_id: int, actor: Actor = Depends(current_actor)) -> dict:
    """Current figures: rates over the last minute, latency, lag, retained WAL, totals by op, last change."""
    return metrics.current(actor, pipeline_id)


@router.get("/pipelines/{pipeline_id}/metrics/history")
def history(
    pipeline_id: int,
    range: str = Query("1h", description="15m, 1h, 6h, 24h, 7d or 30d"),  # noqa: A002 - the contract's name
    step: str | None = Query(None, description="10s, 1m, 5m, 1h ... (default: by range)"),
    metrics_: str | None = Query(None, alias="metrics", description="comma-separated names (default: all)"),
    actor: Actor = Depends(current_actor),
) -> dict:
    """{series: {name: [[ts, value], ...]}} over the range, from the grain that answers it."""
    return metrics.history(actor, pipeline_id, range, step, metrics_)


@router.get("/pipelines/{pipeline_id}/lag")
def lag(pipeline_id: int, actor: Actor = Depends(current_actor)) -> dict:
    """As GET /pipelines/{id}/lag."""
    return pipelines.lag(actor, pipeline_id)


@router.get("/pipelines/{pipeline_id}/tables/stats")
def table_stats(pipeline_id: int, actor: Actor = Depends(current_actor)) -> list[dict]:
    """Per table: inserts, updates, deletes, last change time, full-load %, status."""
    return metrics.table_stats(actor, pipeline_id)


@router.get("/pipelines/{pipeline_id}/metrics/tables")
def table_history(pipeline_id: int, range: str = "1h", actor: Actor = Depends(current_actor)) -> dict:  # noqa: A002
    """Full-load rows/s per table over the range."""
    return metrics.table_history(actor, pipeline_id, range)


@router.get("/sparklines")
def sparklines(range: str = "1h", actor: Actor = Depends(current_actor)) -> dict[int, list]:  # noqa: A002
    """Every pipeline's rows/s over the range (about 60 points each)."""
    return metrics.sparklines(actor, range)


def scrape_allowed(credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
    """A valid bearer token, unless CDC_STUDIO_METRICS_PUBLIC=true."""
    if not get_settings().metrics_public:
        require(current_actor(credentials).role, Action.read)


@prometheus_router.get("/metrics", response_class=Response, dependencies=[Depends(scrape_allowed)])
def prometheus_metrics() -> Response:
    """Prometheus text format (cdcstudio_* in base units)."""
    return Response(prometheus.exposition(), media_type=prometheus.CONTENT_TYPE)
