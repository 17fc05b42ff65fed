"""The Kafka Connect cluster as the Connectors page and API see it: every connector, also foreign ones.

Reads (list, plugins, one connector) need the read role; actions and config changes need
manage_pipelines and are audited. A config is validated by Connect
(`PUT /connector-plugins/{class}/config/validate`) before it is saved, and per-field errors come
back as ValidationFailed naming the field. Passwords in configs are masked in every answer.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel

from core import audit, config
from core.errors import NotFound, StudioError, ValidationFailed
from core.kafka.connect_client import KafkaConnectClient, KafkaConnectError, mask_config
from core.kafka.debezium import parse_connector_name
from core.security import Action, require
from core.users import Actor

ConnectorAction = Literal["pause", "resume", "stop", "restart", "restart_failed", "delete"]


class TaskView(BaseModel):
    id: int
    state: str
    worker_id: str | None = None
    trace: str | None = None


class ConnectorView(BaseModel):
    name: str
    type: str | None = None
    connector_class: str | None = None
    state: str
    worker_id: str | None = None
    trace: str | None = None
    tasks: list[TaskView]
    topics: list[str] | None = None
    offsets: list[dict] | None = None
    pipeline_id: int | None = None  # set when CDC Studio created it for a pipeline
    config: dict[str, Any] = {}


class PluginView(BaseModel):
    class_name: str
    type: str
    version: str | None = None


class ClusterView(BaseModel):
    url: str
    version: str | None = None
    kafka_cluster_id: str | None = None
    connectors: list[ConnectorView]
    plugins: list[PluginView]


class ValidationView(BaseModel):
    plugin: str
    error_count: int
    errors: dict[str, list[str]]


def _client() -> KafkaConnectClient:
    settings = config.get_settings()
    if not settings.kafka_connect_url:
        raise NotFound(
            "no Kafka Connect cluster is configured: set KAFKA_CONNECT_URL (for example "
            "http://connect:8083) and restart the app"
        )
    return KafkaConnectClient.from_settings(settings)


def _view(name: str, info: Any, client: KafkaConnectClient, details: bool) -> ConnectorView:
    status = info.status
    pipeline_id = parse_connector_name(name.removesuffix("-sink"))
    view = ConnectorView(
        name=name,
        type=info.type or (status.type if status else None),
        connector_class=(info.config or {}).get("connector.class"),
        state=status.state if status else "UNKNOWN",
        worker_id=status.worker_id if status else None,
        trace=status.trace if status else None,
        tasks=[
            TaskView(id=t.id, state=t.state, worker_id=t.worker_id, trace=t.trace)
            for t in (status.tasks if status else [])
        ],
        pipeline_id=pipeline_id,
        config=mask_config(info.config or {}),
    )
    if details:
        try:
            view.topics = client.topics(name)
        except StudioError:
            view.topics = None
        try:
            view.offsets = client.offsets(name)
        except StudioError:
            view.offsets = None
    return view


def overview(actor: Actor, details: bool = True) -> ClusterView:
    """Server version, every connector with state/tasks/topics/offsets, and the installed plugins."""
    require(actor, Action.read)
    with _client() as client:
        info = client.server_info()
        connectors = client.connectors()
        views = [_view(name, c, client, details) for name, c in sorted(connectors.items())]
        plugins = [PluginView(class_name=p.class_name, type=p.type, version=p.version) for p in client.plugins()]
        return ClusterView(
            url=client.url,
            version=info.get("version"),
            kafka_cluster_id=info.get("kafka_cluster_id"),
            connectors=views,
            plugins=plugins,
        )


def connector(actor: Actor, name: str) -> ConnectorView:
    require(actor, Action.read)
    with _client() as client:
        connectors = client.connectors()
        if name not in connectors:
            raise NotFound(f"connector {name} does not exist on the cluster")
        return _view(name, connectors[name], client, True)


def act(actor: Actor, name: str, action: ConnectorAction) -> ConnectorView | None:
    """Pause, resume, stop, restart (everything or only failed) or delete a connector."""
    require(actor, Action.manage_pipelines)
    with _client() as client:
        if action == "pause":
            client.pause(name)
        elif action == "resume":
            client.resume(name)
        elif action == "stop":
            client.stop(name)
        elif action == "restart":
            client.restart(name, include_tasks=True, only_failed=False)
        elif action == "restart_failed":
            client.restart(name, include_tasks=True, only_failed=True)
        elif action == "delete":
            client.delete(name)
        else:  # pragma: no cover - Literal guards the API
            raise ValidationFailed("action", f"unknown action {action!r}")
    audit.log(actor, f"connector.{action}", object_type="connector", object_id=name, target=name)
    return None if action == "delete" else connector(actor, name)


def validate(actor: Actor, config: dict[str, Any]) -> ValidationView:
    """Connect's own validation of a connector config, errors per field."""
    require(actor, Action.read)
    plugin = str(config.get("connector.class") or "").strip()
    if not plugin:
        raise ValidationFailed("connector.class", "the config must name its connector.class")
    with _client() as client:
        result = client.validate(plugin, config)
    return ValidationView(plugin=plugin, error_count=result.error_count, errors=result.errors)


def save(actor: Actor, name: str, config: dict[str, Any]) -> ConnectorView:
    """Create or update a connector, after Connect validated its config (422 naming the first bad field)."""
    require(actor, Action.manage_pipelines)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}", name or ""):
        raise ValidationFailed("name", "use letters, digits, '.', '_' or '-' (starting with a letter or digit)")
    report = validate(actor, config)
    if report.error_count:
        field = next(iter(report.errors))
        raise ValidationFailed(f"config.{field}", "; ".join(report.errors[field]))
    with _client() as client:
        try:
            before = client.config(name)
        except KafkaConnectError as exc:
            if exc.status_code != 404:
                raise
            before = None  # a new connector
        client.put_config(name, config)
    audit.log(
        actor, "connector.save", object_type="connector", object_id=name, target=name, before=before or {},
        after=config, detail="created" if before is None else "updated",
    )  # fmt: skip
    return connector(actor, name)
