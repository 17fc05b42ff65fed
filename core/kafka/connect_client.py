"""A small synchronous client for the Kafka Connect REST API.

The app calls it from worker threads. Every HTTP or transport failure leaves as a
`KafkaConnectError` (a `core.errors.ConnectorError`); 404 and 409 answers also are `NotFound` /
`Conflict`, so callers can catch either family. Secrets in connector configs (keys containing
"password", "secret" or "sasl.jaas.config") never reach an error message or a log line.
"""

from __future__ import annotations

import logging
import re
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

from core.errors import (
    AuthFailed,
    Conflict,
    ConnectionRefused,
    ConnectorError,
    ConnectTimeout,
    NotFound,
    UnknownHost,
)

log = logging.getLogger(__name__)

CONNECTOR_STATES = ("UNASSIGNED", "RUNNING", "PAUSED", "STOPPED", "FAILED", "RESTARTING")
SECRET_KEY_PARTS = ("password", "secret", "sasl.jaas.config")
MASK = "****"

# Connect answers 409 with these while the group rebalances or a config change is in flight.
_REBALANCE_HINTS = ("rebalance", "stale configuration")
_NOT_STOPPED_HINT = "must be in the stopped state"
# Endpoints older Connect versions lack; a bare 404 on them means "too old", not "no such connector".
_NEWER_ENDPOINTS = ("/stop", "/offsets", "/topics", "/topics/reset")
_SECRET_PAIR = re.compile(
    r"""(?P<key>[\w.-]*(?:password|secret)[\w.-]*|sasl\.jaas\.config)(?P<sep>"?\s*[:=]\s*"?)(?P<value>[^",;}\s]+)""",
    re.IGNORECASE,
)


# -- errors -----------------------------------------------------------------------------------


class KafkaConnectError(ConnectorError):
    """Kafka Connect refused or failed a request; `status_code` is the HTTP status (None: no answer)."""

    kind = "kafka_connect"

    def __init__(self, message: str, *, status_code: int | None = None, kind: str | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        if kind is not None:
            self.kind = kind
        if status_code is not None and (status_code == 409 or status_code >= 500):
            # A rebalance, a worker restarting or overloaded: the same request later may succeed.
            self.transient = True


class ConnectNotFound(KafkaConnectError, NotFound):
    kind = "not_found"


class ConnectConflict(KafkaConnectError, Conflict):
    kind = "conflict"


class ConnectAuthFailed(KafkaConnectError, AuthFailed):
    kind = "auth_failed"


class ConnectRefused(KafkaConnectError, ConnectionRefused):
    kind = "refused"
    transient = True


class ConnectUnknownHost(KafkaConnectError, UnknownHost):
    kind = "unknown_host"


class ConnectTimedOut(KafkaConnectError, ConnectTimeout):
    kind = "timeout"
    transient = True


# -- masking ----------------------------------------------------------------------------------


def is_secret_key(key: str) -> bool:
    """Whether a config key holds a secret (its value must never be shown)."""
    lowered = key.lower()
    return any(part in lowered for part in SECRET_KEY_PARTS)


def mask_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `config` safe to log or show: secret values replaced by a mask."""
    return {k: (MASK if is_secret_key(k) and v not in (None, "") else v) for k, v in config.items()}


def mask_text(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with the given secret values and any `secret-key=value` pairs masked."""
    for secret in sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return _SECRET_PAIR.sub(lambda m: f"{m.group('key')}{m.group('sep')}{MASK}", text)


def _secrets_in(body: Any) -> list[str]:
    """Secret values anywhere in a request body (a config, or {"config": {...}})."""
    found: list[str] = []
    if isinstance(body, Mapping):
        for key, value in body.items():
            if isinstance(value, Mapping | list):
                found.extend(_secrets_in(value))
            elif isinstance(key, str) and is_secret_key(key) and value not in (None, ""):
                found.append(str(value))
    elif isinstance(body, list):
        for item in body:
            found.extend(_secrets_in(item))
    return found


def _display_url(url: str) -> str:
    """The URL without any user:password part."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, "", "")).rstrip("/")


# -- results ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PluginInfo:
    class_name: str
    type: str
    version: str | None = None

    @property
    def short_name(self) -> str:
        return self.class_name.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class TaskStatus:
    id: int
    state: str
    worker_id: str | None = None
    trace: str | None = None


@dataclass(frozen=True)
class ConnectorStatus:
    name: str
    state: str
    worker_id: str | None = None
    type: str | None = None
    tasks: list[TaskStatus] = field(default_factory=list)
    trace: str | None = None

    @property
    def failed_tasks(self) -> list[TaskStatus]:
        return [t for t in self.tasks if t.state == "FAILED"]

    @property
    def healthy(self) -> bool:
        """Running, with at least one task and every task running."""
        return self.state == "RUNNING" and bool(self.tasks) and all(t.state == "RUNNING" for t in self.tasks)


@dataclass(frozen=True)
class ConnectorInfo:
    name: str
    config: dict[str, str]
    type: str | None
    status: ConnectorStatus | None


@dataclass(frozen=True)
class ValidationResult:
    name: str
    error_count: int
    errors: dict[str, list[str]]

    @property
    def ok(self) -> bool:
        return self.error_count == 0


def parse_status(data: Mapping[str, Any]) -> ConnectorStatus:
    """A `ConnectorStatus` from Connect's `/connectors/{name}/status` JSON."""
    conn = data.get("connector") or {}
    tasks = [
        TaskStatus(
            id=int(t.get("id", 0)), state=str(t.get("state", "")), worker_id=t.get("worker_id"), trace=t.get("trace")
        )
        for t in data.get("tasks") or []
    ]
    return ConnectorStatus(
        name=str(data.get("name", "")),
        state=str(conn.get("state", "")),
        worker_id=conn.get("worker_id"),
        type=data.get("type"),
        tasks=sorted(tasks, key=lambda t: t.id),
        trace=conn.get("trace"),
    )


def parse_validation(data: Mapping[str, Any], secrets: Iterable[str] = ()) -> ValidationResult:
    """A `ValidationResult` from Connect's validate JSON: per-field error lists, secrets masked."""
    secrets = list(secrets)
    errors: dict[str, list[str]] = {}
    for item in data.get("configs") or []:
        value = item.get("value") or {}
        messages = value.get("errors") or []
        if messages:
            key = value.get("name") or (item.get("definition") or {}).get("name") or "?"
            errors.setdefault(str(key), []).extend(mask_text(str(m), secrets) for m in messages)
    return ValidationResult(name=str(data.get("name", "")), error_count=int(data.get("error_count", 0)), errors=errors)


# -- client -----------------------------------------------------------------------------------


def _seg(value: str | int) -> str:
    """One URL path segment, fully percent-encoded (connector names may hold '/', spaces, ...)."""
    return quote(str(value), safe="")


def _flag(value: bool) -> str:
    return "true" if value else "false"


class KafkaConnectClient:
    """Talks to one Kafka Connect cluster over its REST API (synchronous; use from worker threads)."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        auth: tuple[str, str] | None = None,
        verify: bool | str = True,
        retries_on_rebalance: int = 3,
        backoff_s: float = 0.5,
    ) -> None:
        url = url.strip()
        if "://" not in url:
            url = "http://" + url
        self.url = _display_url(url)
        self.retries_on_rebalance = max(0, retries_on_rebalance)
        self.backoff_s = backoff_s
        self._auth_secret = auth[1] if auth else ""
        self._http = httpx.Client(
            base_url=url.rstrip("/"),
            timeout=httpx.Timeout(timeout_s),
            transport=transport,
            auth=auth,
            verify=verify,
            headers={"Accept": "application/json"},
        )

    @classmethod
    def from_settings(cls, settings: Any, **kwargs: Any) -> KafkaConnectClient:
        """A client for `settings.kafka_connect_url`, with optional basic auth and CA bundle."""
        url = getattr(settings, "kafka_connect_url", None)
        if not url:
            raise KafkaConnectError(
                "KAFKA_CONNECT_URL is not set: the kafka_connect CDC engine needs it", kind="config"
            )
        user = getattr(settings, "kafka_connect_username", None)
        password = getattr(settings, "kafka_connect_password", None)
        if password is not None and hasattr(password, "get_secret_value"):
            password = password.get_secret_value()
        ca = getattr(settings, "kafka_connect_ca_location", None)
        kwargs.setdefault("auth", (user, password or "") if user else None)
        kwargs.setdefault("verify", ca or True)
        return cls(url, **kwargs)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> KafkaConnectClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- cluster ------------------------------------------------------------------------------

    def server_info(self) -> dict[str, Any]:
        """Version, commit and Kafka cluster id of the worker answering."""
        return self._json("GET", "/")

    def plugins(self, connectors_only: bool = True) -> list[PluginInfo]:
        """The connector (and, if asked, converter/transform) plugins installed on the cluster."""
        data = self._json("GET", "/connector-plugins", params={"connectorsOnly": _flag(connectors_only)})
        return [PluginInfo(str(p.get("class", "")), str(p.get("type", "")), p.get("version")) for p in data or []]

    def connectors(self) -> dict[str, ConnectorInfo]:
        """Every connector on the cluster with its config, type and status, in one request."""
        data = self._json("GET", "/connectors", params=[("expand", "status"), ("expand", "info")]) or {}
        out: dict[str, ConnectorInfo] = {}
        for name, item in data.items():
            info = item.get("info") or {}
            status = parse_status(item["status"]) if item.get("status") else None
            out[name] = ConnectorInfo(
                name=name,
                config=dict(info.get("config") or {}),
                type=info.get("type") or (status.type if status else None),
                status=status,
            )
        return out

    # -- one connector ------------------------------------------------------------------------

    def connector(self, name: str) -> dict[str, Any]:
        """Name, config, tasks and type of a connector."""
        return self._json("GET", f"/connectors/{_seg(name)}", connector=name)

    def config(self, name: str) -> dict[str, str]:
        """The connector's configuration."""
        return dict(self._json("GET", f"/connectors/{_seg(name)}/config", connector=name) or {})

    def create(self, name: str, config: Mapping[str, Any]) -> dict[str, Any]:
        """Create a connector; `ConnectConflict` when one of that name exists."""
        body = {"name": name, "config": _strings(config)}
        return self._json("POST", "/connectors", json=body, connector=name)

    def put_config(self, name: str, config: Mapping[str, Any]) -> dict[str, Any]:
        """Create the connector, or replace its configuration."""
        return self._json("PUT", f"/connectors/{_seg(name)}/config", json=_strings(config), connector=name)

    def validate(self, plugin_class: str, config: Mapping[str, Any]) -> ValidationResult:
        """Ask the plugin to check `config`; per-field error messages in `errors`."""
        body = _strings(config)
        body.setdefault("connector.class", plugin_class)
        data = self._json("PUT", f"/connector-plugins/{_seg(plugin_class)}/config/validate", json=body)
        return parse_validation(data or {}, _secrets_in(body))

    def status(self, name: str) -> ConnectorStatus:
        """State of the connector and of each of its tasks (with the stack trace of failed ones)."""
        return parse_status(self._json("GET", f"/connectors/{_seg(name)}/status", connector=name) or {})

    def pause(self, name: str) -> None:
        self._request("PUT", f"/connectors/{_seg(name)}/pause", connector=name)

    def resume(self, name: str) -> None:
        self._request("PUT", f"/connectors/{_seg(name)}/resume", connector=name)

    def stop(self, name: str) -> None:
        """Stop the connector and shut its tasks down (Kafka 3.5+); needed before offsets change."""
        self._request("PUT", f"/connectors/{_seg(name)}/stop", connector=name)

    def restart(self, name: str, include_tasks: bool = False, only_failed: bool = False) -> ConnectorStatus | None:
        """Restart the connector (and its tasks); the new status when Connect returns one."""
        params = {"includeTasks": _flag(include_tasks), "onlyFailed": _flag(only_failed)}
        response = self._request("POST", f"/connectors/{_seg(name)}/restart", params=params, connector=name)
        return parse_status(response.json()) if response.content else None

    def restart_task(self, name: str, task_id: int) -> None:
        self._request("POST", f"/connectors/{_seg(name)}/tasks/{_seg(task_id)}/restart", connector=name)

    def delete(self, name: str) -> None:
        """Delete the connector; `ConnectNotFound` (a `NotFound`) when it does not exist."""
        self._request("DELETE", f"/connectors/{_seg(name)}", connector=name)

    def topics(self, name: str) -> list[str]:
        """The topics the connector has used since it was created or its topics were reset."""
        data = self._json("GET", f"/connectors/{_seg(name)}/topics", connector=name) or {}
        return list((data.get(name) or {}).get("topics") or [])

    def reset_topics(self, name: str) -> None:
        self._request("PUT", f"/connectors/{_seg(name)}/topics/reset", connector=name)

    def offsets(self, name: str) -> list[dict[str, Any]]:
        """The connector's committed offsets: a list of {"partition": ..., "offset": ...}."""
        data = self._json("GET", f"/connectors/{_seg(name)}/offsets", connector=name) or {}
        return list(data.get("offsets") or [])

    def alter_offsets(self, name: str, offsets: list[dict[str, Any]]) -> None:
        """Overwrite offsets (Kafka 3.6+); the connector must be stopped first."""
        self._request("PATCH", f"/connectors/{_seg(name)}/offsets", json={"offsets": offsets}, connector=name)

    def reset_offsets(self, name: str) -> None:
        """Forget all offsets (Kafka 3.6+); the connector must be stopped first."""
        self._request("DELETE", f"/connectors/{_seg(name)}/offsets", connector=name)

    # -- plumbing -----------------------------------------------------------------------------

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise KafkaConnectError(
                f"{self.url} answered {method} {path} with something that is not JSON: is this Kafka Connect?",
                status_code=response.status_code,
                kind="bad_response",
            ) from exc

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        json: Any = None,
        connector: str | None = None,
    ) -> httpx.Response:
        """Send, retrying 409s caused by a rebalance; translate every failure."""
        secrets = [*_secrets_in(json), self._auth_secret]
        attempt = 0
        while True:
            try:
                response = self._http.request(method, path, params=params, json=json)
            except httpx.HTTPError as exc:
                raise self._transport_error(exc, secrets) from None
            log.debug("kafka connect %s %s -> %s", method, path, response.status_code)
            if response.is_success:
                return response
            message = _error_message(response)
            if response.status_code == 409 and _is_rebalance(message) and attempt < self.retries_on_rebalance:
                delay = self.backoff_s * (2**attempt)
                attempt += 1
                log.info("kafka connect busy (%s); retry %d in %.1fs", message, attempt, delay)
                time.sleep(delay)
                continue
            raise self._http_error(method, path, response.status_code, message, connector, secrets)

    def _transport_error(self, exc: httpx.HTTPError, secrets: list[str]) -> KafkaConnectError:
        url = self.url
        hint = f"is Kafka Connect running at {url}? (check KAFKA_CONNECT_URL)"
        if isinstance(exc, httpx.TimeoutException):
            return ConnectTimedOut(f"Kafka Connect at {url} did not answer in time: {hint}")
        detail = mask_text(str(exc), secrets) or type(exc).__name__
        if isinstance(exc, httpx.ConnectError):
            lowered = detail.lower()
            if _caused_by(exc, socket.gaierror) or any(s in lowered for s in _UNKNOWN_HOST):
                host = urlsplit(url).hostname or url
                return ConnectUnknownHost(f"cannot resolve host '{host}' of {url}: {hint}")
            if "certificate" in lowered or "ssl" in lowered:
                return KafkaConnectError(
                    f"the TLS handshake with {url} failed ({detail}): check the CA bundle for Kafka Connect",
                    kind="tls_failed",
                )
            return ConnectRefused(f"cannot connect to {url} ({detail}): {hint}")
        return KafkaConnectError(f"the request to Kafka Connect at {url} failed ({detail}): {hint}", kind="transport")

    def _http_error(
        self, method: str, path: str, status: int, message: str, connector: str | None, secrets: list[str]
    ) -> KafkaConnectError:
        message = mask_text(message, secrets)
        what = f"{method} {path}"
        if status in (401, 403):
            return ConnectAuthFailed(
                f"Kafka Connect at {self.url} refused the credentials ({status}): {message}", status_code=status
            )
        if status == 404:
            if _is_unknown_endpoint(message):
                if path.endswith(_NEWER_ENDPOINTS):
                    return KafkaConnectError(
                        f"Kafka Connect at {self.url} does not know {what}: it is too old for this operation "
                        "(topics need Kafka 2.5+, stop 3.5+, offsets 3.6+)",
                        status_code=status,
                        kind="unsupported",
                    )
                return KafkaConnectError(
                    f"{self.url} answered {what} with 404 {message}: is this the Kafka Connect REST URL?",
                    status_code=status,
                    kind="bad_response",
                )
            if connector is not None:
                return ConnectNotFound(
                    f"connector '{connector}' does not exist on the Kafka Connect cluster at {self.url}",
                    status_code=status,
                )
            return ConnectNotFound(f"Kafka Connect at {self.url}: {message}", status_code=status)
        if status == 405:
            return KafkaConnectError(
                f"Kafka Connect at {self.url} does not support {what}: {message}",
                status_code=status,
                kind="unsupported",
            )
        if _NOT_STOPPED_HINT in message.lower():
            return ConnectConflict(
                f"connector '{connector}' must be stopped before its offsets can be changed: stop it first "
                f"(Kafka Connect said: {message})",
                status_code=status,
                kind="not_stopped",
            )
        if status == 409:
            kind = "rebalance" if _is_rebalance(message) else "exists" if "already exists" in message else "conflict"
            return ConnectConflict(f"Kafka Connect at {self.url}: {message}", status_code=status, kind=kind)
        if status == 400:
            return KafkaConnectError(
                f"Kafka Connect rejected {what}: {message}", status_code=status, kind="bad_request"
            )
        if status >= 500:
            return KafkaConnectError(
                f"Kafka Connect at {self.url} failed {what} ({status}): {message}",
                status_code=status,
                kind="server_error",
            )
        return KafkaConnectError(f"Kafka Connect answered {what} with {status}: {message}", status_code=status)


_UNKNOWN_HOST = ("name or service not known", "nodename nor servname", "name resolution", "getaddrinfo", "no address")


def _strings(config: Mapping[str, Any]) -> dict[str, str]:
    """Connect configs are string maps; render booleans the way Java expects them."""
    out: dict[str, str] = {}
    for key, value in config.items():
        if value is None:
            continue
        out[str(key)] = _flag(value) if isinstance(value, bool) else str(value)
    return out


def _error_message(response: httpx.Response) -> str:
    """The `message` of Connect's JSON error body, else the start of the raw body."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, Mapping) and data.get("message"):
        return str(data["message"])
    text = response.text.strip()
    return text[:300] if text else (response.reason_phrase or f"HTTP {response.status_code}")


def _is_rebalance(message: str) -> bool:
    lowered = message.lower()
    return any(h in lowered for h in _REBALANCE_HINTS)


def _is_unknown_endpoint(message: str) -> bool:
    # Jersey's own 404 for a path it has no resource for, as opposed to Connect's "Connector x not found".
    return message.strip().lower() in ("http 404 not found", "not found")


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False
