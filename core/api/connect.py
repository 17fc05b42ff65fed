"""The Kafka Connect cluster: connectors (also ones CDC Studio did not create), plugins, actions, configs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Response

from core import connect_cluster as svc
from core.api.deps import current_actor
from core.connect_cluster import ClusterView, ConnectorAction, ConnectorView, PluginView, ValidationView
from core.users import Actor

router = APIRouter(prefix="/connect", tags=["kafka connect"])


@router.get("", response_model=ClusterView)
def cluster(details: bool = True, actor: Actor = Depends(current_actor)) -> ClusterView:
    """Server version, every connector with state, tasks, topics and offsets, and the plugins."""
    return svc.overview(actor, details=details)


@router.get("/plugins", response_model=list[PluginView])
def plugins(actor: Actor = Depends(current_actor)) -> list[PluginView]:
    return svc.overview(actor, details=False).plugins


@router.get("/connectors/{name}", response_model=ConnectorView)
def connector(name: str, actor: Actor = Depends(current_actor)) -> ConnectorView:
    return svc.connector(actor, name)


@router.put("/connectors/{name}/config", response_model=ConnectorView)
def save_config(name: str, config: dict[str, Any] = Body(...), actor: Actor = Depends(current_actor)) -> ConnectorView:
    """Create or update a connector; Connect validates the config first (422 naming the field)."""
    return svc.save(actor, name, config)


@router.put("/validate", response_model=ValidationView)
def validate(config: dict[str, Any] = Body(...), actor: Actor = Depends(current_actor)) -> ValidationView:
    """Connect's validation of a config, per-field errors."""
    return svc.validate(actor, config)


@router.post("/connectors/{name}/{action}", response_model=ConnectorView | None)
def act(name: str, action: ConnectorAction, actor: Actor = Depends(current_actor)) -> ConnectorView | None:
    """pause, resume, stop, restart, restart_failed (only failed tasks) or delete."""
    return svc.act(actor, name, action)


@router.delete("/connectors/{name}", status_code=204)
def delete(name: str, actor: Actor = Depends(current_actor)) -> Response:
    svc.act(actor, name, "delete")
    return Response(status_code=204)
