"""Notification channels: CRUD, routing of alerts to channels, the delivery log, retries and tests.

Every public function but `dispatch`, `attempt` and `retry_due` (the machinery) takes the acting user
and checks the role first, so the REST API and the pages refuse alike. Channel secrets (webhook
`secret`, Slack `webhook_url`, email `password`, PagerDuty `routing_key`) are kept encrypted in
`Channel.secrets_encrypted` as one JSON and are write-only: a channel shows each one it has as "***".

A notification is a Delivery row first (written by `dispatch`, which the alert evaluator calls) and
then attempts: a background thread makes the first one at once, and the `retry_due` job (every 15 s,
also after a restart) makes the later ones, with exponential backoff or the receiver's Retry-After.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core import audit
from core.errors import Conflict, NotFound, StudioError, ValidationFailed
from core.monitoring import senders
from core.monitoring.senders import CONFIGS, SECRET_FIELDS, Message, Outcome
from core.security import Action, decrypt_secret, encrypt_secret, require
from core.users import Actor
from data import channels as store
from data import db
from data.db import session_scope
from data.models import Alert, Channel, Delivery, utcnow

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)

Kind = Literal["webhook", "slack", "email", "pagerduty"]
Severity = Literal["info", "warning", "critical"]
SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
MASK = "***"  # how a stored secret shows; sent back unchanged in a PUT it keeps the secret
RETRY_BASE_S = 30.0
RETRY_CAP_S = 1800.0
MAX_ATTEMPTS = 8
SEND_TIMEOUT_S = 10.0
TEST_TIMEOUT_S = 5.0
LEASE = timedelta(minutes=5)  # longer than any attempt (SMTP's few round trips at SEND_TIMEOUT_S each)

# ---------------------------------------------------------------------------------------------------
# What users give and see


class ChannelCreate(BaseModel):
    """A new channel. `config` per kind; `pipeline_ids` empty = every pipeline."""

    model_config = ConfigDict(str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=100)
    kind: Kind
    config: dict[str, Any] = Field(default_factory=dict)
    pipeline_ids: list[int] = Field(default_factory=list)
    min_severity: Severity = "warning"
    enabled: bool = True


class ChannelUpdate(BaseModel):
    """A partial edit. In `config`, a secret left out (or sent back as "***") keeps the stored one; a
    null or empty one removes it."""

    model_config = ConfigDict(str_strip_whitespace=True)

    name: str | None = Field(default=None, min_length=1, max_length=100)
    kind: Kind | None = None
    config: dict[str, Any] | None = None
    pipeline_ids: list[int] | None = None
    min_severity: Severity | None = None
    enabled: bool | None = None


class ChannelPublic(BaseModel):
    """A channel as users see it: each secret it has shows as "***" in `config`, never its value."""

    id: int
    name: str
    kind: str
    config: dict[str, Any]
    pipeline_ids: list[int]
    min_severity: str
    enabled: bool
    created_at: datetime
    updated_at: datetime


class DeliveryPublic(BaseModel):
    """One notification to one channel and how its attempts went."""

    id: int
    channel_id: int
    channel_name: str | None
    alert_id: int | None
    event: str
    created_at: datetime
    status: str
    attempts: int
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    status_code: int | None
    error: str | None
    payload: dict[str, Any]


class TestResult(BaseModel):
    """What a test notification gave."""

    __test__ = False  # not a pytest class, despite the name

    ok: bool
    status_code: int | None
    error: str | None


# ---------------------------------------------------------------------------------------------------
# Config and secrets


def _secrets_of(channel: Channel) -> dict[str, str]:
    return json.loads(decrypt_secret(channel.secrets_encrypted)) if channel.secrets_encrypted else {}


def _merge(kind: str, given: dict[str, Any], stored: dict[str, str]) -> dict[str, Any]:
    """The given config with each secret it leaves out (or masks) taken from the stored ones."""
    merged = dict(given)
    for name in SECRET_FIELDS[kind]:
        if name not in given or given[name] == MASK:
            merged.pop(name, None)
            if name in stored:
                merged[name] = stored[name]
        elif given[name] in (None, ""):
            merged.pop(name)
    return merged


def validate_config(kind: str, config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The config checked for its kind and split into (plain fields, secret fields); 422 names the field."""
    try:
        checked = CONFIGS[kind].model_validate(config).model_dump(exclude_none=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValidationFailed("config." + where if where else "config", first["msg"]) from None
    secrets = {k: str(checked.pop(k)) for k in SECRET_FIELDS[kind] if k in checked}
    return checked, secrets


def _store_config(channel: Channel, kind: str, config: dict[str, Any]) -> None:
    try:
        stored = _secrets_of(channel)
    except StudioError:  # the secret key changed: what the edit gives replaces the unreadable secrets
        stored = {}
    plain, secrets = validate_config(kind, _merge(kind, config, stored))
    channel.kind = kind
    channel.config = plain
    channel.secrets_encrypted = encrypt_secret(json.dumps(secrets)) if secrets else ""


def _public(channel: Channel) -> ChannelPublic:
    assert channel.id is not None  # a stored channel
    shown = dict(channel.config or {})
    try:
        shown.update(dict.fromkeys(_secrets_of(channel), MASK))
    except StudioError:  # the secret key changed: the channel still lists, its secrets need entering again
        pass
    return ChannelPublic(
        id=channel.id,
        name=channel.name,
        kind=channel.kind,
        config=shown,
        pipeline_ids=list(channel.pipeline_ids or []),
        min_severity=channel.min_severity,
        enabled=channel.enabled,
        created_at=channel.created_at,
        updated_at=channel.updated_at,
    )


# ---------------------------------------------------------------------------------------------------
# CRUD


def _load(session, channel_id: int) -> Channel:  # noqa: ANN001
    channel = store.get_channel(session=session, channel_id=channel_id)
    if channel is None:
        raise NotFound(f"channel {channel_id} not found")
    return channel


def _as(model: type[M], data: M | dict[str, Any]) -> M:
    """The body as its model: pages may hand a plain dict, checked here like the API checks its body."""
    if isinstance(data, model):
        return data
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ValidationFailed(".".join(str(p) for p in first["loc"]) or "body", first["msg"]) from None


def _check_name_and_pipelines(session, name: str | None, pipeline_ids: list[int] | None, own_id: int | None) -> None:  # noqa: ANN001
    if name is not None:
        other = store.get_channel_by_name(session=session, name=name)
        if other is not None and other.id != own_id:
            raise Conflict(f"a channel named '{name}' already exists")
    missing = store.missing_pipelines(session=session, pipeline_ids=pipeline_ids or [])
    if missing:
        raise ValidationFailed("pipeline_ids", f"no pipeline with id {missing[0]}")


def list_channels(actor: Actor) -> list[ChannelPublic]:
    """Every channel by name, secrets masked."""
    require(actor, Action.read)
    with session_scope() as session:
        return [_public(c) for c in store.list_channels(session=session)]


def get_channel(actor: Actor, channel_id: int) -> ChannelPublic:
    """One channel, secrets masked."""
    require(actor, Action.read)
    with session_scope() as session:
        return _public(_load(session, channel_id))


def create_channel(actor: Actor, data: ChannelCreate | dict[str, Any]) -> ChannelPublic:
    """Save a new channel after checking its config for its kind; secrets are encrypted."""
    require(actor, Action.manage_pipelines)
    data = _as(ChannelCreate, data)
    with session_scope() as session:
        _check_name_and_pipelines(session, data.name, data.pipeline_ids, None)
        channel = Channel(
            name=data.name,
            kind=data.kind,
            pipeline_ids=sorted(set(data.pipeline_ids)),
            min_severity=data.min_severity,
            enabled=data.enabled,
        )
        _store_config(channel, data.kind, data.config)
        channel = store.save_channel(session=session, channel=channel)
        audit.log(
            actor, "channel.create", object_type="channel", object_id=channel.id, target=channel.name,
            after=audit.fields(channel), session=session,
        )  # fmt: skip
        return _public(channel)


def update_channel(actor: Actor, channel_id: int, data: ChannelUpdate | dict[str, Any]) -> ChannelPublic:
    """Apply a partial edit; a secret the edit leaves out is kept."""
    require(actor, Action.manage_pipelines)
    data = _as(ChannelUpdate, data)
    given = data.model_dump(exclude_unset=True)
    with session_scope() as session:
        channel = _load(session, channel_id)
        before = audit.fields(channel)
        _check_name_and_pipelines(session, given.get("name"), given.get("pipeline_ids"), channel.id)
        kind = given.get("kind") or channel.kind
        if "config" in given or kind != channel.kind:
            # secrets are write-only, so the plain fields of an unchanged config come from the row
            config: dict[str, Any] = given.get("config") or dict(channel.config or {})
            _store_config(channel, kind, config)
        for key in ("name", "min_severity", "enabled"):
            if given.get(key) is not None:
                setattr(channel, key, given[key])
        if given.get("pipeline_ids") is not None:
            channel.pipeline_ids = sorted(set(given["pipeline_ids"]))
        channel.updated_at = utcnow()
        channel = store.save_channel(session=session, channel=channel)
        changed = ",".join(sorted(data.model_fields_set))
        audit.log(
            actor, "channel.update", object_type="channel", object_id=channel.id, target=channel.name,
            before=before, after=audit.fields(channel), detail=changed, session=session,
        )  # fmt: skip
        return _public(channel)


def delete_channel(actor: Actor, channel_id: int) -> None:
    """Delete a channel and its delivery log."""
    require(actor, Action.manage_pipelines)
    with session_scope() as session:
        channel = _load(session, channel_id)
        name, before = channel.name, audit.fields(channel)
        store.delete_channel(session=session, channel=channel)
        audit.log(
            actor, "channel.delete", object_type="channel", object_id=channel_id, target=name, before=before,
            session=session,
        )  # fmt: skip


def _delivery_public(d: Delivery, names: dict[int, str]) -> DeliveryPublic:
    assert d.id is not None
    return DeliveryPublic(
        id=d.id,
        channel_id=d.channel_id,
        channel_name=names.get(d.channel_id),
        alert_id=d.alert_id,
        event=d.event,
        created_at=d.created_at,
        status=d.status,
        attempts=d.attempts,
        last_attempt_at=d.last_attempt_at,
        next_attempt_at=d.next_attempt_at if d.status == "pending" else None,
        status_code=d.status_code,
        error=d.error,
        payload=dict(d.payload or {}),
    )


def list_deliveries(
    actor: Actor, alert_id: int | None = None, channel_id: int | None = None, limit: int = 100
) -> list[DeliveryPublic]:
    """The delivery log, newest first (of one alert and/or one channel if given)."""
    require(actor, Action.read)
    with session_scope() as session:
        if channel_id is not None:
            _load(session, channel_id)
        names = {c.id: c.name for c in store.list_channels(session=session) if c.id is not None}
        rows = store.list_deliveries(session=session, alert_id=alert_id, channel_id=channel_id, limit=limit)
        return [_delivery_public(d, names) for d in rows]


def deliveries_of_alert(actor: Actor, alert_id: int) -> list[DeliveryPublic]:
    """The notifications of one alert (every channel, every event), newest first."""
    return list_deliveries(actor, alert_id=alert_id, limit=500)


# ---------------------------------------------------------------------------------------------------
# Routing and dispatch


def routes_to(channel: Channel, alert: Alert) -> bool:
    """Whether the channel takes this alert: enabled, its pipeline chosen (or all), severity high enough."""
    if not channel.enabled:
        return False
    if channel.pipeline_ids and alert.pipeline_id not in channel.pipeline_ids:
        return False
    return SEVERITY_RANK.get(alert.severity, 0) >= SEVERITY_RANK.get(channel.min_severity, 0)


def alert_doc(alert: Alert, pipeline_name: str | None) -> dict[str, Any]:
    """The alert as notifications carry it (the webhook body's `alert`, its state set when sent)."""
    return {
        "id": alert.id,
        "kind": alert.kind,
        "severity": alert.severity,
        "state": "resolved" if alert.state == "resolved" else "firing",
        "pipeline_id": alert.pipeline_id,
        "pipeline_name": pipeline_name,
        "object": alert.object,
        "message": alert.message,
        "value": alert.value,
        "threshold": alert.threshold,
        "started_at": senders.iso(alert.started_at),
        "resolved_at": senders.iso(alert.resolved_at),
    }


_queue: queue.SimpleQueue[tuple[str | None, int]] = queue.SimpleQueue()
_worker: threading.Thread | None = None
_worker_lock = threading.Lock()


def dispatch(alert: Alert, event: str) -> None:
    """Queue the alert's notification ("firing" | "resolved" | "reminder") to its channels.

    Called from the alert evaluator's thread: it only writes Delivery rows (one transaction) and hands
    them to the background sender, never waits on the network, and never raises. A resolve goes to
    the channels that were given the firing.
    """
    try:
        ids = _create_deliveries(alert, event)
        url = db.current_url()
        for delivery_id in ids:
            _queue.put((url, delivery_id))
        if ids:
            _ensure_worker()
    except Exception:
        log.exception("could not queue the notifications of alert %s (%s)", alert.id, event)


def _create_deliveries(alert: Alert, event: str) -> list[int]:
    with session_scope() as session:
        channels = store.list_channels(session=session, enabled_only=True)
        if event == "resolved" and alert.id is not None:
            # where the firing went, whatever the routing says now
            notified = set(store.channels_notified_of(session=session, alert_id=alert.id))
            chosen = [c for c in channels if c.id in notified]
        else:
            chosen = [c for c in channels if routes_to(c, alert)]
        if not chosen:
            return []
        doc = alert_doc(alert, store.pipeline_name(session=session, pipeline_id=alert.pipeline_id))
        now = utcnow()
        rows = [
            Delivery(channel_id=c.id, alert_id=alert.id, event=event, next_attempt_at=now, payload={"alert": doc})
            for c in chosen
            if c.id is not None
        ]
        return [d.id for d in store.add_deliveries(session=session, deliveries=rows) if d.id is not None]


def _ensure_worker() -> None:
    global _worker
    with _worker_lock:
        if _worker is None or not _worker.is_alive():
            _worker = threading.Thread(target=_work, name="cdc-notify", daemon=True)
            _worker.start()


def _work() -> None:
    while True:
        url, delivery_id = _queue.get()
        try:
            if url == db.current_url():  # not a row of a database this process has left (tests switch)
                attempt(delivery_id)
        except Exception:
            log.exception("delivery %s: the attempt failed unexpectedly", delivery_id)


# ---------------------------------------------------------------------------------------------------
# Attempts and retries


def backoff_s(attempts: int) -> float:
    """Seconds to wait after the `attempts`-th failed attempt: 30 s doubling, capped at 30 min."""
    return min(RETRY_CAP_S, RETRY_BASE_S * 2 ** max(0, attempts - 1))


@dataclass(frozen=True)
class _Job:
    channel_name: str
    kind: str
    config: dict[str, Any]
    secrets: dict[str, str]
    msg: Message


def _claim(delivery_id: int, now: datetime) -> _Job | None:
    """Claim the delivery and read what sending it takes; None when it is not ours to send (not due,
    gone, or settled here without sending: its channel disabled, its secrets unreadable)."""
    with session_scope() as session:
        if not store.claim(session=session, delivery_id=delivery_id, now=now, lease_until=now + LEASE):
            return None
        delivery = store.get_delivery(session=session, delivery_id=delivery_id)
        channel = store.get_channel(session=session, channel_id=delivery.channel_id) if delivery else None
        if delivery is None or channel is None:
            return None
        try:
            secrets = _secrets_of(channel)
        except StudioError as exc:  # the secret key changed: retried on the backoff, then failed
            _finish(delivery, Outcome(ok=False, error=str(exc)), now, final=False)
            return None
        if not channel.enabled:
            _finish(delivery, Outcome(ok=False, error="the channel was disabled before delivery"), now, final=True)
            return None
        msg = Message(alert=dict(delivery.payload.get("alert") or {}), event=delivery.event, sent_at=now)
        return _Job(channel.name, channel.kind, dict(channel.config or {}), secrets, msg)


def attempt(delivery_id: int, now: datetime | None = None) -> Outcome | None:
    """Make one attempt at a due pending delivery and log it; None when none was made (not due, not ours)."""
    now = now or utcnow()
    url = db.current_url()
    job = _claim(delivery_id, now)
    if job is None:
        return None
    # the network outside any transaction: a slow receiver holds no database lock
    outcome = senders.send(job.kind, job.config, job.secrets, job.msg, SEND_TIMEOUT_S)
    if db.current_url() != url:
        return None  # the process moved to another database meanwhile (tests do): this row is not there
    with session_scope() as session:
        delivery = store.get_delivery(session=session, delivery_id=delivery_id)
        if delivery is not None:
            _finish(delivery, outcome, now, final=False)
            store.save_delivery(session=session, delivery=delivery)
    if not outcome.ok:
        log.warning("delivery %s to channel %s failed: %s", delivery_id, job.channel_name, outcome.error)
    return outcome


def _finish(delivery: Delivery, outcome: Outcome, now: datetime, final: bool) -> None:
    """Log an attempt on the row: sent, failed for good (last attempt), or pending until the next one."""
    delivery.attempts += 1
    delivery.last_attempt_at = now
    delivery.status_code = outcome.status_code
    delivery.error = outcome.error
    if outcome.ok:
        delivery.status, delivery.next_attempt_at = "sent", None
    elif final or delivery.attempts >= MAX_ATTEMPTS:
        delivery.status, delivery.next_attempt_at = "failed", None
    else:
        wait = outcome.retry_after_s if outcome.retry_after_s is not None else backoff_s(delivery.attempts)
        delivery.next_attempt_at = now + timedelta(seconds=wait)


def retry_due(now: datetime | None = None) -> int:
    """The scheduler job: attempt every pending delivery that is due (after a restart too). Returns how
    many attempts were made."""
    now = now or utcnow()
    with session_scope() as session:
        due = [d.id for d in store.due_deliveries(session=session, now=now) if d.id is not None]
    made = 0
    for delivery_id in due:
        try:
            made += attempt(delivery_id, now=now) is not None
        except Exception:
            log.exception("delivery %s: the retry failed unexpectedly", delivery_id)
    return made


# ---------------------------------------------------------------------------------------------------
# Send test


def _test_doc(channel: Channel, now: datetime) -> dict[str, Any]:
    return {
        "id": None,
        "kind": "test",
        "severity": "info",
        "state": "firing",
        "pipeline_id": None,
        "pipeline_name": None,
        "object": f"channel {channel.name}",
        "message": f"Test notification from CDC Studio to channel '{channel.name}'",
        "value": None,
        "threshold": None,
        "started_at": senders.iso(now),
        "resolved_at": None,
    }


def test_channel(actor: Actor, channel_id: int, timeout: float = TEST_TIMEOUT_S) -> TestResult:
    """Send a test notification now (short timeout) and log it as a Delivery with event "test"."""
    require(actor, Action.manage_pipelines)
    now = utcnow()
    with session_scope() as session:
        channel = _load(session, channel_id)
        kind, config, secrets = channel.kind, dict(channel.config or {}), _secrets_of(channel)
        doc = _test_doc(channel, now)
    outcome = senders.send(kind, config, secrets, Message(alert=doc, event="test", sent_at=now), timeout)
    if kind == "pagerduty" and outcome.ok:
        # resolve the test incident at once: a test should not leave someone paged
        senders.send(kind, config, secrets, Message(alert=doc, event="resolved", sent_at=now), timeout)
    with session_scope() as session:
        channel = _load(session, channel_id)  # deleted meanwhile: log nothing
        delivery = Delivery(channel_id=channel_id, event="test", payload={"alert": doc})
        _finish(delivery, outcome, now, final=True)
        store.add_deliveries(session=session, deliveries=[delivery])
        audit.log(
            actor, "channel.test", object_type="channel", object_id=channel_id, target=channel.name,
            outcome="ok" if outcome.ok else "failed", session=session,
        )  # fmt: skip
    return TestResult(ok=outcome.ok, status_code=outcome.status_code, error=outcome.error)


test_channel.__dict__["__test__"] = False  # not a pytest test, despite the name
