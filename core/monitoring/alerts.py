"""Alerts: conditions from the health checks (and from producers) through the rules' state machine.

An alert's identity is rule kind + pipeline + object (the slot, the task, the table; '' = the
pipeline). When a rule's condition holds, the identity's alert is `pending` (started_at); once a
rule of the kind has held for its `for_seconds` it is `firing` (one "firing" notification,
fired_at); when no rule of the kind holds any more it is `resolved` (one "resolved" notification
if a "firing" one went out; a pending alert that never fired resolves silently). A kind with two
rules (warning and critical) is one alert whose severity rises to the highest rule that held long
enough; a rise notifies "firing" again (so a page follows a warning that became critical), a fall
does not notify. While firing, a "reminder" goes out every settings.alert_reminder_hours until
acknowledged; silenced until a time, nothing is sent (states are still tracked), and a fire that
happened under silence is notified when the silence ends if it still fires.

Time is injectable (`now`), so tests shorten durations without sleeping. How long each rule's
condition has held is kept in memory (per process): after a restart an open alert keeps its state
while its condition holds, and a pending one counts its duration afresh.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel

from core import audit
from core.config import get_settings
from core.errors import NotFound, ValidationFailed
from core.events import Event, bus
from core.lifecycle import State
from core.monitoring import channels
from core.monitoring.probes import SlotProbe
from core.monitoring.rules import SEVERITY_RANK, effective_rules_in, ensure_default_rules
from core.security import Action, require
from core.users import Actor
from data import alerts as store
from data.db import session_scope
from data.models import Alert, AlertRule

log = logging.getLogger(__name__)

EVENT_KINDS = ("data_mismatch", "schema_drift")  # raised and cleared by their producers
SLOT_KINDS = ("retained_wal_bytes", "slot_wal_status", "slot_inactive", "stalled", "lag_seconds")
STATE_KINDS = ("pipeline_error", "recovery_failing", "run_failed", "no_changes")
RESYNC_FIX = "the slot is lost: its changes cannot be read any more; resync the pipeline (full load into a new slot)"

_lock = threading.RLock()  # one evaluation of an identity at a time (the job and producers' threads)
_held_since: dict[tuple[int | None, str, str, int], datetime] = {}  # (pipeline, kind, object, rule) -> since
_schema_events = bus.subscribe(("pipeline.schema",), maxlen=1000)


@dataclass
class Observation:
    """What one round of health checks saw of a pipeline (None / not measured: left alone by the rules)."""

    pipeline_id: int
    name: str = ""
    state: str = ""
    error_message: str | None = None
    error_kind: str | None = None
    failing_since: datetime | None = None
    slot_measured: bool = False
    slot: SlotProbe | None = None
    slot_name: str = ""
    stalled_bytes: int | None = None
    lag_seconds: float | None = None
    tasks_measured: bool = False
    tasks: list[tuple[int, str, str | None]] = field(default_factory=list)  # (task id, state, trace)
    last_run: tuple[int, str, str | None] | None = None  # latest non-CDC run: (id, status, error)
    last_change_at: datetime | None = None


@dataclass
class Condition:
    """A condition seen on one object: its measured value; `below` compares value < threshold."""

    kind: str
    object: str
    value: float | None
    message: str
    below: bool = False
    always: bool = False  # holds for every rule of the kind whatever its threshold (a lost slot)


class AlertPublic(BaseModel):
    id: int
    rule_id: int | None
    kind: str
    severity: str
    state: Literal["pending", "firing", "resolved"]
    pipeline_id: int | None
    pipeline_name: str | None
    object: str
    message: str
    value: float | None
    threshold: float | None
    started_at: datetime
    fired_at: datetime | None
    resolved_at: datetime | None
    acked_by: str | None
    acked_at: datetime | None
    silenced_until: datetime | None


def _aware(t: datetime | None) -> datetime | None:
    """SQLite gives naive datetimes back: they are UTC."""
    return t.replace(tzinfo=UTC) if t is not None and t.tzinfo is None else t


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


# -- conditions of an observation -----------------------------------------------------------------


def _slot_conditions(o: Observation) -> list[Condition]:
    s, name = o.slot, o.slot_name
    if s is None:
        return []
    if not s.present:
        if o.state not in (State.RUNNING, State.PAUSED, State.STOPPED):
            return []
        return [Condition("slot_wal_status", name, None, f"replication slot {name} is gone; {RESYNC_FIX}", always=True)]
    out: list[Condition] = []
    if s.retained_wal_bytes is not None:
        out.append(
            Condition(
                "retained_wal_bytes",
                name,
                s.retained_wal_bytes,
                f"slot {name} retains {size_text(s.retained_wal_bytes)} of WAL",
            )
        )
    out += _wal_status(s, name)
    if o.state == State.RUNNING and s.active is False:
        out.append(Condition("slot_inactive", name, None, f"slot {name} has no reader while the pipeline runs"))
    if o.state == State.RUNNING and o.stalled_bytes:
        msg = (
            f"slot {name}: confirmed position static while the server's WAL moved {size_text(o.stalled_bytes)} past it"
        )
        out.append(Condition("stalled", name, o.stalled_bytes, msg))
    if o.state == State.RUNNING and o.lag_seconds is not None:
        out.append(Condition("lag_seconds", name, o.lag_seconds, f"slot {name} is {o.lag_seconds:.0f} s behind"))
    return out


def _wal_status(s: SlotProbe, name: str) -> list[Condition]:
    if s.wal_status == "lost":
        return [Condition("slot_wal_status", name, None, f"slot {name} wal_status lost; {RESYNC_FIX}", always=True)]
    if s.wal_status == "unreserved":
        msg = f"slot {name} wal_status unreserved: its WAL is about to be removed (safe_wal_size {s.safe_wal_size})"
        return [Condition("slot_wal_status", name, None, msg, always=True)]
    if s.safe_wal_size is not None and s.max_slot_wal_keep_size:
        fraction = s.safe_wal_size / s.max_slot_wal_keep_size
        msg = f"slot {name}: safe_wal_size {size_text(s.safe_wal_size)} is {fraction:.0%} of max_slot_wal_keep_size"
        return [Condition("slot_wal_status", name, fraction, msg, below=True)]
    return []


def _state_conditions(o: Observation, now: datetime) -> list[Condition]:
    out: list[Condition] = []
    if o.state == State.ERROR:
        kind = f" ({o.error_kind})" if o.error_kind else ""
        out.append(Condition("pipeline_error", "", None, f"pipeline in ERROR{kind}: {o.error_message or '-'}"))
    since = _aware(o.failing_since)
    if since is not None:
        secs = (now - since).total_seconds()
        msg = f"recovery failing for {secs / 60:.0f} min: {o.error_message or '-'}"
        out.append(Condition("recovery_failing", "", secs, msg))
    if o.last_run is not None and o.last_run[1] == "FAILED":
        run_id, _, error = o.last_run
        out.append(Condition("run_failed", "", run_id, f"run {run_id} failed: {error or '-'}"))
    last = _aware(o.last_change_at)
    if o.state == State.RUNNING and last is not None:
        hours = (now - last).total_seconds() / 3600
        out.append(Condition("no_changes", "", hours, f"no change applied for {hours:.1f} h"))
    return out


def _task_conditions(o: Observation) -> list[Condition]:
    return [
        Condition("connector_task_failed", f"task {tid}", None, f"connector task {tid} FAILED: {_first_line(trace)}")
        for tid, state, trace in o.tasks
        if state == "FAILED"
    ]


def conditions_of(o: Observation, now: datetime) -> tuple[set[str], list[Condition]]:
    """The kinds an observation measured (their open alerts without a condition resolve) and its conditions."""
    measured = set(STATE_KINDS)
    if o.slot_measured:
        measured.update(SLOT_KINDS)
    if o.tasks_measured:
        measured.add("connector_task_failed")
    if o.state != State.RUNNING:
        measured.add("connector_task_failed")  # a stopped pipeline's tasks do not alert
    return measured, _slot_conditions(o) + _state_conditions(o, now) + _task_conditions(o)


def _first_line(text: str | None) -> str:
    return text.strip().splitlines()[0] if text and text.strip() else "no trace given"


def size_text(n: float) -> str:
    """A byte count as people read it: 812 bytes, 8.0 KiB, 1.5 GiB."""
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


# -- the state machine ------------------------------------------------------------------------------


def _holds(rule: AlertRule, c: Condition) -> bool:
    if c.always or rule.threshold is None or c.value is None:
        return True
    return c.value < rule.threshold if c.below else c.value > rule.threshold


def _notify(alert: Alert, event: str, now: datetime, sends: list[tuple[Alert, str]]) -> None:
    """Queue a notification unless the alert is silenced; a resolve only follows a sent fire, and is sent
    even under a silence (whoever was paged must hear that it is over; a PagerDuty incident must close)."""
    if event == "resolved":
        if alert.last_notified_at is not None:
            sends.append((alert, event))
        return
    silenced = _aware(alert.silenced_until)
    if silenced is not None and silenced > now:
        return
    alert.last_notified_at = now
    sends.append((alert, event))


def _resolve(alert: Alert, now: datetime, sends: list[tuple[Alert, str]]) -> None:
    alert.state, alert.resolved_at = "resolved", now
    if alert.fired_at is not None:
        _notify(alert, "resolved", now, sends)


def _due(
    key: tuple[int | None, str, str], rules: list[AlertRule], c: Condition | None, now: datetime
) -> tuple[list[AlertRule], list[AlertRule]]:
    """The rules whose condition holds, and of those the ones that held for their for_seconds."""
    held, due = [], []
    for r in rules:
        rk = (*key, r.id or 0)
        if c is not None and _holds(r, c):
            since = _held_since.setdefault(rk, now)
            held.append(r)
            if (now - since).total_seconds() >= r.for_seconds:
                due.append(r)
        else:
            _held_since.pop(rk, None)
    return held, due


def _top(rules: list[AlertRule]) -> AlertRule:
    return max(rules, key=lambda r: (SEVERITY_RANK.get(r.severity, 0), r.threshold or 0))


def step(
    session,  # noqa: ANN001 - sqlmodel Session
    pipeline_id: int | None,
    kind: str,
    obj: str,
    rules: list[AlertRule],
    c: Condition | None,
    now: datetime,
    sends: list[tuple[Alert, str]],
) -> Alert | None:
    """Move one identity's alert by its condition (None: it does not hold); notifications go to `sends`."""
    key = (pipeline_id, kind, obj)
    alert = store.open_alert(session=session, pipeline_id=pipeline_id, kind=kind, obj=obj)
    held, due = _due(key, rules, c, now)
    if not held or c is None:
        if alert is not None:
            _resolve(alert, now, sends)
            store.save(session=session, obj=alert)
        return alert
    if alert is None:
        top = _top(held)
        alert = Alert(
            pipeline_id=pipeline_id, kind=kind, object=obj, severity=top.severity, rule_id=top.id, started_at=now
        )
    alert.value, alert.message, alert.last_seen_at = c.value, c.message, now
    if due:
        _fire(alert, _top(due), now, sends)
    elif alert.state == "pending":
        alert.severity, alert.rule_id, alert.threshold = _top(held).severity, _top(held).id, _top(held).threshold
    store.save(session=session, obj=alert)
    if alert.state == "firing" and not any(a is alert for a, _ in sends):
        _remind(alert, now, sends)
    return alert


def _fire(alert: Alert, top: AlertRule, now: datetime, sends: list[tuple[Alert, str]]) -> None:
    if alert.state == "pending":
        alert.state, alert.fired_at = "firing", now
        alert.severity, alert.rule_id, alert.threshold = top.severity, top.id, top.threshold
        _notify(alert, "firing", now, sends)
    elif SEVERITY_RANK.get(top.severity, 0) > SEVERITY_RANK.get(alert.severity, 0):
        alert.severity, alert.rule_id, alert.threshold = top.severity, top.id, top.threshold
        _notify(alert, "firing", now, sends)


def _remind(alert: Alert, now: datetime, sends: list[tuple[Alert, str]]) -> None:
    """A firing alert: the reminder when due, or the fire itself once a silence it happened under ended."""
    silenced = _aware(alert.silenced_until)
    if silenced is not None and silenced > now:
        return
    last = _aware(alert.last_notified_at)
    if last is None:
        _notify(alert, "firing", now, sends)
    elif alert.acked_at is None and now - last >= timedelta(hours=get_settings().alert_reminder_hours):
        _notify(alert, "reminder", now, sends)


def _send(sends: list[tuple[Alert, str]]) -> None:
    for alert, event in sends:
        bus.publish(Event(f"alert.{event}", {"id": alert.id, "kind": alert.kind}, alert.pipeline_id))
        try:
            channels.dispatch(alert, event)
        except Exception:  # noqa: BLE001 - a channel problem must not stop the evaluation
            log.exception("dispatch of alert %s (%s) failed", alert.id, event)


# -- evaluation ------------------------------------------------------------------------------------


def evaluate_pipeline(o: Observation, now: datetime | None = None) -> None:
    """Evaluate every rule of one pipeline on what the health checks observed (one transaction)."""
    now = _now(now)
    measured, conds = conditions_of(o, now)
    sends: list[tuple[Alert, str]] = []
    with _lock, session_scope() as session:
        by_kind = effective_rules_in(store.list_rules(session=session, pipeline_id=o.pipeline_id), o.pipeline_id)
        seen: set[tuple[str, str]] = set()
        for c in conds:
            seen.add((c.kind, c.object))
            step(session, o.pipeline_id, c.kind, c.object, by_kind.get(c.kind, []), c, now, sends)
        for alert in store.open_alerts(session=session, pipeline_id=o.pipeline_id):
            if (alert.kind, alert.object) in seen:
                continue
            if alert.kind in measured or not by_kind.get(alert.kind):
                step(session, o.pipeline_id, alert.kind, alert.object, by_kind.get(alert.kind, []), None, now, sends)
            elif alert.kind in EVENT_KINDS:
                _event_alert(session, alert, by_kind[alert.kind], now, sends)
    _send(sends)


def _event_alert(session, alert: Alert, rules: list[AlertRule], now: datetime, sends: list) -> None:  # noqa: ANN001
    """A producer's condition holds until cleared (schema_drift: until `threshold` hours after it was seen)."""
    last = _aware(alert.last_seen_at) or now
    if alert.kind == "schema_drift":
        hours = _top(rules).threshold or 1
        if now - last >= timedelta(hours=hours):
            step(session, alert.pipeline_id, alert.kind, alert.object, rules, None, now, sends)
            return
    c = Condition(alert.kind, alert.object, alert.value, alert.message)
    step(session, alert.pipeline_id, alert.kind, alert.object, rules, c, now, sends)
    alert.last_seen_at = last  # re-evaluating is not seeing it again


def evaluate(observations: list[Observation], now: datetime | None = None) -> None:
    """Evaluate every observed pipeline; one pipeline's failure is logged and the others go on."""
    now = _now(now)
    for o in observations:
        try:
            evaluate_pipeline(o, now)
        except Exception:  # noqa: BLE001 - robust: the next pipeline is still evaluated
            _failed("alert evaluation", o.pipeline_id)


def _failed(what: str, pipeline_id: int) -> None:
    """Log a failure of one pipeline's alerts: an error, unless the pipeline was deleted meanwhile."""
    with session_scope() as session:
        gone = pipeline_id not in store.pipeline_names(session=session)
    if gone:
        log.info("%s of pipeline %s skipped: the pipeline was deleted", what, pipeline_id)
    else:
        log.exception("%s of pipeline %s failed", what, pipeline_id)


def raise_condition(
    pipeline_id: int, kind: str, object: str, value: float | None, message: str, now: datetime | None = None
) -> Alert | None:
    """A producer saw its condition (data_mismatch, schema_drift, run_failed ...): evaluate it now."""
    return _event(pipeline_id, kind, object, Condition(kind, object, value, message), _now(now))


def clear_condition(pipeline_id: int, kind: str, object: str, now: datetime | None = None) -> Alert | None:
    """A producer's condition no longer holds: its alert resolves."""
    return _event(pipeline_id, kind, object, None, _now(now))


def _event(pipeline_id: int, kind: str, obj: str, c: Condition | None, now: datetime) -> Alert | None:
    ensure_default_rules()  # a producer may come before the first health round
    sends: list[tuple[Alert, str]] = []
    with _lock, session_scope() as session:
        rules = effective_rules_in(store.list_rules(session=session, pipeline_id=pipeline_id), pipeline_id)
        alert = step(session, pipeline_id, kind, obj, rules.get(kind, []), c, now, sends)
    _send(sends)
    return alert


def drain_events(now: datetime | None = None) -> None:
    """Raise schema_drift for the schema changes the engines published since the last drain."""
    for e in _schema_events.drain():
        if e.pipeline_id is None:
            continue
        d = e.data
        parts = [
            f"{label} {', '.join(d.get(k) or [])}"
            for k, label in (("added", "added"), ("removed", "removed"), ("retyped", "retyped"))
            if d.get(k)
        ]
        message = f"schema drift on {d.get('table', '')}: {'; '.join(parts) or 'changed'}"
        try:
            raise_condition(e.pipeline_id, "schema_drift", str(d.get("table", "")), None, message, now)
        except Exception:  # noqa: BLE001 - e.g. a deleted pipeline's late event
            _failed("schema_drift alert", e.pipeline_id)


# -- what the API and the pages read and do ---------------------------------------------------------


def _public(a: Alert, names: dict[int, str]) -> AlertPublic:
    assert a.id is not None
    data = {k: _aware(v) if isinstance(v, datetime) else v for k, v in a.model_dump().items()}
    return AlertPublic(**data, pipeline_name=names.get(a.pipeline_id or 0))


def _names(session) -> dict[int, str]:  # noqa: ANN001
    return store.pipeline_names(session=session)


def list_alerts(
    actor: Actor,
    state: Literal["firing", "resolved", "all"] = "firing",
    pipeline_id: int | None = None,
    limit: int = 200,
) -> list[AlertPublic]:
    """Alerts newest first: firing, resolved (ones that fired), or all (pending too)."""
    require(actor, Action.read)
    if state not in ("firing", "resolved", "all"):
        raise ValidationFailed("state", "expected firing, resolved or all")
    with session_scope() as session:
        names = _names(session)
        found = store.list_alerts(session=session, state=state, pipeline_id=pipeline_id, limit=limit)
        return [_public(a, names) for a in found]


def _change(actor: Actor, alert_id: int, action: str, change) -> AlertPublic:  # noqa: ANN001
    require(actor, Action.manage_pipelines)
    with _lock, session_scope() as session:
        alert = store.get_alert(session=session, alert_id=alert_id)
        if alert is None:
            raise NotFound(f"alert {alert_id} does not exist")
        kept = ("acked_by", "acked_at", "silenced_until")
        before = {k: getattr(alert, k) for k in kept}
        change(alert)
        store.save(session=session, obj=alert)
        audit.log(
            actor, action, object_type="alert", object_id=alert_id, target=f"{alert.kind} {alert.object}".strip(),
            before=before, after={k: getattr(alert, k) for k in kept}, session=session,
        )  # fmt: skip
        return _public(alert, _names(session))


def ack(actor: Actor, alert_id: int, now: datetime | None = None) -> AlertPublic:
    """Acknowledge an alert: someone is on it, reminders stop (the resolve is still notified)."""
    at = _now(now)

    def change(a: Alert) -> None:
        a.acked_by, a.acked_at = actor.email, at

    return _change(actor, alert_id, "alert.ack", change)


def silence(actor: Actor, alert_id: int, hours: float, now: datetime | None = None) -> AlertPublic:
    """No notification of the alert for `hours` (its state is still tracked)."""
    if not 0 < hours <= 24 * 31:
        raise ValidationFailed("hours", "silence for more than 0 and at most 744 hours")
    until = _now(now) + timedelta(hours=hours)

    def change(a: Alert) -> None:
        a.silenced_until = until

    return _change(actor, alert_id, "alert.silence", change)


def firing_counts() -> dict[int, int]:
    """Firing alerts per pipeline id (pipelines without any are left out)."""
    with session_scope() as session:
        return store.firing_counts(session=session)


def forget_held() -> None:
    """Forget how long conditions held (tests; a process restart does the same)."""
    with _lock:
        _held_since.clear()
