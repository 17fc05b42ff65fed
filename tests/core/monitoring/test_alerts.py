"""The alert state machine on a real app database with an injected clock and a recording dispatch."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import col, select

from core.errors import NotFound, PermissionDenied, ValidationFailed
from core.events import Event, bus
from core.monitoring import alerts, rules
from core.monitoring.alerts import Observation
from core.monitoring.probes import SlotProbe
from core.monitoring.rules import AlertRuleCreate, AlertRuleUpdate
from core.users import Actor
from data import db
from data import pipelines as pipe_db
from data.db import session_scope
from data.models import Alert, Connection, Pipeline

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
ADMIN = Actor(id=1, email="admin@example.com", role="admin")
VIEWER = Actor(id=2, email="viewer@example.com", role="viewer")


@pytest.fixture
def sent(app_env, tmp_path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, str, str, str]]]:
    """A fresh app database with the default rules; the notifications dispatched, as (kind, object, severity, event)."""
    previous = db._current_url
    db.init(f"sqlite:///{tmp_path / 'app.db'}")
    rules.ensure_default_rules()
    alerts.forget_held()
    got: list[tuple[str, str, str, str]] = []
    monkeypatch.setattr(alerts.channels, "dispatch", lambda a, e: got.append((a.kind, a.object, a.severity, e)))
    yield got
    alerts.forget_held()
    db._current_url = previous


def _pipeline(name: str = "p", state: str = "RUNNING") -> int:
    with session_scope() as session:
        c = Connection(name=f"c-{name}", kind="postgresql", host="h", port=5432, database="d", username="u")
        session.add(c)
        session.flush()
        p = Pipeline(
            name=name,
            source_connection_id=c.id,
            target_connection_id=c.id,
            source_database="d",
            source_schema="s",
            target_database="d",
            target_schema="t",
            mode="CDC_ONLY",
            state=state,
        )
        p = pipe_db.save(session=session, obj=p)
        assert p.id is not None
        return p.id


def _slot(**kw) -> SlotProbe:
    values = dict(current_lsn=1000, max_slot_wal_keep_size=None, present=True, active=True, wal_status="reserved")
    values.update(kw)
    return SlotProbe(**values)


def _obs(pid: int, state: str = "RUNNING", **kw) -> Observation:
    values = dict(pipeline_id=pid, name="p", state=state, slot_measured=True, slot=_slot(), slot_name="s1")
    values.update(kw)
    return Observation(**values)


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _alerts(pid: int, kind: str) -> list[Alert]:
    with session_scope() as session:
        stmt = select(Alert).where(Alert.pipeline_id == pid, Alert.kind == kind).order_by(col(Alert.id))
        return list(session.exec(stmt))


# ------------------------------------------------------------------------------ rules


def test_default_rules_are_seeded_once_and_edits_are_kept(sent) -> None:
    listed = rules.list_rules(VIEWER)
    assert len(listed) == len(rules.DEFAULT_RULES)
    assert {(r.kind, r.severity) for r in listed} >= {
        ("retained_wal_bytes", "warning"),
        ("retained_wal_bytes", "critical"),
    }
    no_changes = next(r for r in listed if r.kind == "no_changes")
    assert no_changes.enabled is False and no_changes.severity == "info"
    lag = next(r for r in listed if r.kind == "lag_seconds" and r.severity == "warning")
    rules.update_rule(ADMIN, lag.id, AlertRuleUpdate(threshold=90, for_seconds=120))
    assert rules.ensure_default_rules() == 0
    again = {r.id: r for r in rules.list_rules(VIEWER)}
    assert len(again) == len(rules.DEFAULT_RULES)
    assert (again[lag.id].threshold, again[lag.id].for_seconds) == (90, 120)


def test_rule_validation_and_roles(sent) -> None:
    with pytest.raises(ValidationFailed) as exc:
        rules.create_rule(ADMIN, AlertRuleCreate(kind="cpu", severity="warning"))
    assert exc.value.field == "kind"
    with pytest.raises(ValidationFailed) as exc:
        rules.create_rule(ADMIN, AlertRuleCreate(kind="lag_seconds", severity="panic"))
    assert exc.value.field == "severity"
    with pytest.raises(ValidationFailed):
        rules.create_rule(ADMIN, AlertRuleCreate(kind="lag_seconds", pipeline_id=999))
    with pytest.raises(PermissionDenied):
        rules.create_rule(VIEWER, AlertRuleCreate(kind="lag_seconds"))
    with pytest.raises(NotFound):
        rules.delete_rule(ADMIN, 12345)


# ------------------------------------------------------------------------------ the state machine


def test_lag_warning_then_critical_then_resolved_notifies_each_once(sent) -> None:
    pid = _pipeline()
    for t in range(0, 300, 30):  # 120 s behind: pending for the warning rule's 300 s
        alerts.evaluate([_obs(pid, lag_seconds=120.0)], _at(t))
    assert sent == []
    (alert,) = _alerts(pid, "lag_seconds")
    assert alert.state == "pending" and alert.severity == "warning"
    for t in range(300, 600, 30):
        alerts.evaluate([_obs(pid, lag_seconds=120.0)], _at(t))
    assert sent == [("lag_seconds", "s1", "warning", "firing")]
    # Past 300 s for 600 s: the same alert becomes critical, notified once more.
    for t in range(600, 1300, 30):
        alerts.evaluate([_obs(pid, lag_seconds=400.0)], _at(t))
    assert sent[1:] == [("lag_seconds", "s1", "critical", "firing")]
    (alert,) = _alerts(pid, "lag_seconds")
    assert alert.state == "firing" and alert.severity == "critical" and alert.threshold == 300
    for t in range(1300, 1400, 30):
        alerts.evaluate([_obs(pid, lag_seconds=0.0)], _at(t))
    assert sent[2:] == [("lag_seconds", "s1", "critical", "resolved")]
    (alert,) = _alerts(pid, "lag_seconds")
    assert alert.state == "resolved" and alert.resolved_at is not None and alert.fired_at is not None


def test_flapping_sends_one_notification_per_fire_and_resolve(sent) -> None:
    pid = _pipeline()
    # Flapping around for_seconds (300): true/false every 100 s never holds long enough: nothing is sent.
    for i in range(12):
        alerts.evaluate([_obs(pid, lag_seconds=120.0 if i % 2 == 0 else 1.0)], _at(i * 100))
    assert sent == []
    assert all(a.state == "resolved" and a.fired_at is None for a in _alerts(pid, "lag_seconds"))
    assert alerts.list_alerts(VIEWER, "all", pid) == []  # pendings that never fired are not listed
    # A rule that fires at once: every evaluation while true is the same alert (one "firing"), and
    # every one while false resolves it once.
    rules.create_rule(ADMIN, AlertRuleCreate(pipeline_id=pid, kind="lag_seconds", threshold=10, severity="warning"))
    pattern = [True, True, True, False, False, True, False, True, True, False]
    for i, true in enumerate(pattern):
        alerts.evaluate([_obs(pid, lag_seconds=50.0 if true else 0.0)], _at(2000 + i * 30))
    fires = [e for *_, e in sent if e == "firing"]
    resolves = [e for *_, e in sent if e == "resolved"]
    assert len(fires) == 3 and len(resolves) == 3  # the pattern has 3 rising and 3 falling edges
    assert [e for *_, e in sent] == ["firing", "resolved"] * 3


def test_reminders_stop_when_acked_and_silence_holds_notifications(sent, monkeypatch) -> None:
    pid = _pipeline()
    rules.create_rule(ADMIN, AlertRuleCreate(pipeline_id=pid, kind="pipeline_error", severity="critical"))  # at once
    error = dict(state="ERROR", error_message="boom", slot_measured=False, slot=None)
    alerts.evaluate([_obs(pid, **error)], _at(0))
    assert sent == [("pipeline_error", "", "critical", "firing")]
    alerts.evaluate([_obs(pid, **error)], _at(3 * 3600))
    assert len(sent) == 1  # the reminder is due after 4 h
    alerts.evaluate([_obs(pid, **error)], _at(4 * 3600))
    assert sent[1] == ("pipeline_error", "", "critical", "reminder")
    (alert,) = _alerts(pid, "pipeline_error")
    acked = alerts.ack(ADMIN, alert.id, now=_at(4 * 3600 + 1))
    assert acked.acked_by == ADMIN.email and acked.pipeline_name == "p"
    alerts.evaluate([_obs(pid, **error)], _at(9 * 3600))
    assert len(sent) == 2  # acknowledged: no more reminders
    alerts.evaluate([_obs(pid)], _at(9 * 3600 + 30))
    assert sent[2] == ("pipeline_error", "", "critical", "resolved")  # the resolve is still told

    # Silenced: the fire is not sent while silenced; still firing after the silence, it is sent then.
    alerts.evaluate([_obs(pid, **error)], _at(10 * 3600))
    assert sent[3] == ("pipeline_error", "", "critical", "firing")
    second = _alerts(pid, "pipeline_error")[-1]
    alerts.silence(ADMIN, second.id, 2, now=_at(10 * 3600))
    alerts.evaluate([_obs(pid)], _at(10 * 3600 + 30))
    # its fire was sent: the resolve is too, silenced or not (whoever was paged hears that it is over)
    assert sent[4] == ("pipeline_error", "", "critical", "resolved")
    alerts.evaluate([_obs(pid, **error)], _at(10 * 3600 + 60))
    third = _alerts(pid, "pipeline_error")[-1]
    alerts.silence(ADMIN, third.id, 1, now=_at(10 * 3600 + 60))
    alerts.evaluate([_obs(pid, **error)], _at(10 * 3600 + 120))
    assert len(sent) == 6 and sent[5][3] == "firing"  # a new alert is not silenced: its fire went out
    alerts.evaluate([_obs(pid, **error)], _at(10 * 3600 + 1800))
    assert len(sent) == 6  # silenced: no reminder
    assert alerts.list_alerts(VIEWER, "firing", pid)[0].silenced_until == _at(11 * 3600 + 60)
    with pytest.raises(ValidationFailed):
        alerts.silence(ADMIN, third.id, 0)
    with pytest.raises(PermissionDenied):
        alerts.ack(VIEWER, third.id)


def test_fire_under_silence_is_sent_when_the_silence_ends(sent) -> None:
    pid = _pipeline()
    rules.create_rule(ADMIN, AlertRuleCreate(pipeline_id=pid, kind="lag_seconds", threshold=10, for_seconds=60))
    alerts.evaluate([_obs(pid, lag_seconds=50.0)], _at(0))
    (pending,) = _alerts(pid, "lag_seconds")
    alerts.silence(ADMIN, pending.id, 1, now=_at(0))
    alerts.evaluate([_obs(pid, lag_seconds=50.0)], _at(120))
    assert sent == [] and _alerts(pid, "lag_seconds")[0].state == "firing"
    alerts.evaluate([_obs(pid, lag_seconds=50.0)], _at(3700))
    assert sent == [("lag_seconds", "s1", "warning", "firing")]


def test_a_pipelines_own_rule_overrides_the_defaults_of_its_kind(sent) -> None:
    own, other = _pipeline("own"), _pipeline("other")
    rules.create_rule(
        ADMIN, AlertRuleCreate(pipeline_id=own, kind="lag_seconds", threshold=5, for_seconds=0, severity="critical")
    )
    effective = rules.effective_rules(own)
    assert [(r.threshold, r.severity) for r in effective["lag_seconds"]] == [(5, "critical")]
    assert len(rules.effective_rules(other)["lag_seconds"]) == 2
    alerts.evaluate([_obs(own, lag_seconds=20.0), _obs(other, lag_seconds=20.0)], _at(0))
    assert sent == [("lag_seconds", "s1", "critical", "firing")]
    assert [a.pipeline_id for a in alerts.list_alerts(VIEWER, "firing")] == [own]
    assert alerts.firing_counts() == {own: 1}
    # A disabled own rule turns the kind off for that pipeline (the alert resolves).
    rule = next(r for r in rules.list_rules(VIEWER, own) if r.pipeline_id == own)
    rules.update_rule(ADMIN, rule.id, AlertRuleUpdate(enabled=False))
    assert "lag_seconds" not in rules.effective_rules(own)
    alerts.evaluate([_obs(own, lag_seconds=20.0)], _at(30))
    assert sent[-1] == ("lag_seconds", "s1", "critical", "resolved")


def test_slot_lost_or_gone_is_critical_with_the_resync_fix(sent) -> None:
    pid = _pipeline(state="STOPPED")
    alerts.evaluate([_obs(pid, state="STOPPED", slot=_slot(wal_status="lost", active=False))], _at(0))
    assert sent == [("slot_wal_status", "s1", "critical", "firing")]
    (alert,) = alerts.list_alerts(VIEWER, "firing", pid)
    assert "lost" in alert.message and "resync" in alert.message
    # Gone altogether: the same identity (the slot) keeps firing, no second notification.
    alerts.evaluate(
        [_obs(pid, state="STOPPED", slot=SlotProbe(current_lsn=5, max_slot_wal_keep_size=None, present=False))], _at(30)
    )
    assert len(sent) == 1
    assert "gone" in alerts.list_alerts(VIEWER, "firing", pid)[0].message


def test_safe_wal_size_below_a_fifth_of_the_keep_size_is_critical(sent) -> None:
    pid = _pipeline()
    keep = 1000 * 1024**2
    alerts.evaluate([_obs(pid, slot=_slot(safe_wal_size=500 * 1024**2, max_slot_wal_keep_size=keep))], _at(0))
    assert sent == []
    alerts.evaluate([_obs(pid, slot=_slot(safe_wal_size=100 * 1024**2, max_slot_wal_keep_size=keep))], _at(30))
    assert sent == [("slot_wal_status", "s1", "critical", "firing")]
    alerts.evaluate(
        [_obs(pid, slot=_slot(wal_status="unreserved", safe_wal_size=-5, max_slot_wal_keep_size=keep))], _at(60)
    )
    assert len(sent) == 1 and "unreserved" in alerts.list_alerts(VIEWER, "firing", pid)[0].message


def test_unmeasured_kinds_are_left_alone_and_recovery_failing_escalates(sent) -> None:
    pid = _pipeline()
    alerts.evaluate([_obs(pid, slot=_slot(active=False))], _at(0))
    alerts.evaluate([_obs(pid, slot=_slot(active=False))], _at(301))
    assert sent == [("slot_inactive", "s1", "warning", "firing")]
    # The source could not be reached: the slot was not measured, its alert stays as it is.
    since = _at(400)
    failing = dict(
        state="ERROR", error_message="connection refused", failing_since=since, slot_measured=False, slot=None
    )
    alerts.evaluate([_obs(pid, **failing)], _at(400))
    assert _alerts(pid, "slot_inactive")[0].state == "firing"
    alerts.evaluate([_obs(pid, **failing)], _at(400 + 601))
    alerts.evaluate([_obs(pid, **failing)], _at(400 + 1801))
    recovery = [(sev, e) for kind, _, sev, e in sent if kind == "recovery_failing"]
    assert recovery == [("warning", "firing"), ("critical", "firing")]


def test_a_failed_connector_task_alerts_until_it_runs_again(sent) -> None:
    pid = _pipeline()
    trace = "org.apache.kafka.connect.errors.ConnectException: slot is lost\n\tat io.debezium..."
    tasks = dict(slot_measured=False, slot=None, tasks_measured=True)
    alerts.evaluate([_obs(pid, tasks=[(0, "RUNNING", None), (1, "FAILED", trace)], **tasks)], _at(0))
    assert sent == [("connector_task_failed", "task 1", "critical", "firing")]
    assert alerts.list_alerts(VIEWER, "firing", pid)[0].message.endswith("ConnectException: slot is lost")
    alerts.evaluate([_obs(pid, tasks=[(0, "RUNNING", None), (1, "FAILED", trace)], **tasks)], _at(30))
    alerts.evaluate([_obs(pid, tasks=[(0, "RUNNING", None), (1, "RUNNING", None)], **tasks)], _at(60))
    assert sent[1:] == [("connector_task_failed", "task 1", "critical", "resolved")]


def test_failed_runs_and_no_changes(sent) -> None:
    pid = _pipeline()
    alerts.evaluate([_obs(pid, last_run=(5, "FAILED", "disk full"), last_change_at=_at(-3 * 3600))], _at(0))
    assert sent == [("run_failed", "", "warning", "firing")]  # no_changes is off by default
    assert "disk full" in alerts.list_alerts(VIEWER, "firing", pid)[0].message
    alerts.evaluate([_obs(pid, last_run=(6, "COMPLETED", None))], _at(30))
    assert sent[1:] == [("run_failed", "", "warning", "resolved")]
    rule = next(r for r in rules.list_rules(VIEWER) if r.kind == "no_changes")
    rules.update_rule(ADMIN, rule.id, AlertRuleUpdate(enabled=True, threshold=2))
    alerts.evaluate([_obs(pid, last_change_at=_at(-1 * 3600))], _at(60))
    assert len(sent) == 2
    alerts.evaluate([_obs(pid, last_change_at=_at(-3 * 3600))], _at(90))
    assert sent[2:] == [("no_changes", "", "info", "firing")]


def test_one_pipelines_failure_does_not_stop_the_others(sent) -> None:
    pid = _pipeline()
    missing = 424242  # no such pipeline: its alert cannot be stored (foreign key)
    alerts.evaluate([_obs(missing, state="ERROR"), _obs(pid, state="ERROR")], _at(0))
    assert sent == []  # in ERROR for less than the default rule's minute
    alerts.evaluate([_obs(missing, state="ERROR"), _obs(pid, state="ERROR")], _at(60))
    assert [(k, e) for k, _, _, e in sent] == [("pipeline_error", "firing")]
    assert alerts.firing_counts() == {pid: 1}


def test_producer_conditions_and_schema_drift_from_the_engine(sent) -> None:
    pid = _pipeline()
    alerts.raise_condition(pid, "data_mismatch", "app.items", 3, "3 rows differ", now=_at(0))
    alerts.raise_condition(pid, "data_mismatch", "app.items", 4, "4 rows differ", now=_at(10))
    assert sent == [("data_mismatch", "app.items", "critical", "firing")]
    alerts.evaluate([_obs(pid)], _at(20))  # the health round keeps a producer's condition
    assert alerts.list_alerts(VIEWER, "firing", pid)[0].value == 4
    alerts.clear_condition(pid, "data_mismatch", "app.items", now=_at(30))
    assert sent[-1] == ("data_mismatch", "app.items", "critical", "resolved")

    bus.publish(Event("pipeline.schema", {"table": "app.items", "added": ["note"], "removed": [], "retyped": []}, pid))
    alerts.drain_events(_at(40))
    assert sent[-1] == ("schema_drift", "app.items", "warning", "firing")
    assert "added note" in alerts.list_alerts(VIEWER, "firing", pid)[0].message
    alerts.evaluate([_obs(pid)], _at(40 + 1800))
    assert sent[-1][3] == "firing"  # listed for the rule's threshold (1 h) after it was seen
    alerts.evaluate([_obs(pid)], _at(40 + 3601))
    assert sent[-1] == ("schema_drift", "app.items", "warning", "resolved")
