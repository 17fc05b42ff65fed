"""Alert rules: the defaults every pipeline gets, per-pipeline overrides, and their validation.

A rule says when a condition of its `kind` alerts: the measured value passes `threshold` and stays
past it for `for_seconds`, at `severity`. Rules with `pipeline_id` NULL are the defaults; a
pipeline's own rule(s) of a kind replace every default of that kind for that pipeline.

How the issue's conditions map onto kinds and thresholds (the units are the kind's):
- retained_wal_bytes: bytes of WAL the slot holds (two defaults: 1 GiB for 300 s warning, 5 GiB critical).
- slot_wal_status: the slot's `wal_status`: `unreserved` alerts at once; `lost`, or the slot gone, is
  terminal (the message says the fix is a resync). The threshold is the `safe_wal_size` fraction of
  `max_slot_wal_keep_size` below which it alerts too (0.2 = 20%); so all three are one critical rule.
- slot_inactive: the slot has no reader while the pipeline runs (no threshold; for_seconds 300).
- stalled: bytes the server's WAL is ahead of a confirmed position that did not move (16 MiB, 900 s).
- lag_seconds: seconds the confirmed position is behind the server (60 s for 300 s, 300 s for 600 s).
- pipeline_error: the pipeline is in ERROR. recovery_failing: seconds since `failing_since` (600/1800).
- connector_task_failed: a Kafka Connect task FAILED. run_failed: the latest full load run FAILED.
- no_changes: hours without an applied change while running (info, off by default).
- data_mismatch, schema_drift: raised by their producers (core.monitoring.alerts.raise_condition);
  schema_drift's threshold is the hours a drift stays listed (default 1).
"""

from __future__ import annotations

import threading
from datetime import datetime

from pydantic import BaseModel, Field

from core import audit
from core.errors import NotFound, ValidationFailed
from core.security import Action, require
from core.users import Actor
from data import alerts as store
from data import db
from data import pipelines as pipe_db
from data.db import session_scope
from data.models import AlertRule, utcnow

GiB = 1024**3
MiB = 1024**2

KINDS: tuple[str, ...] = (
    "retained_wal_bytes",
    "slot_wal_status",
    "slot_inactive",
    "stalled",
    "lag_seconds",
    "pipeline_error",
    "recovery_failing",
    "connector_task_failed",
    "run_failed",
    "no_changes",
    "data_mismatch",
    "schema_drift",
)
SEVERITIES: tuple[str, ...] = ("info", "warning", "critical")
SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITIES)}

# (kind, threshold, for_seconds, severity, enabled)
DEFAULT_RULES: tuple[tuple[str, float | None, int, str, bool], ...] = (
    ("retained_wal_bytes", 1 * GiB, 300, "warning", True),
    ("retained_wal_bytes", 5 * GiB, 0, "critical", True),
    ("slot_wal_status", 0.2, 0, "critical", True),
    ("slot_inactive", None, 300, "warning", True),
    ("stalled", 16 * MiB, 900, "warning", True),
    ("lag_seconds", 60, 300, "warning", True),
    ("lag_seconds", 300, 600, "critical", True),
    # In ERROR for a minute: a transient error automatic recovery clears within seconds pages nobody.
    ("pipeline_error", None, 60, "critical", True),
    ("recovery_failing", 600, 0, "warning", True),
    ("recovery_failing", 1800, 0, "critical", True),
    ("connector_task_failed", None, 0, "critical", True),
    ("run_failed", None, 0, "warning", True),
    ("no_changes", 24, 0, "info", False),
    ("data_mismatch", None, 0, "critical", True),
    ("schema_drift", 1, 0, "warning", True),
)


class AlertRuleCreate(BaseModel):
    pipeline_id: int | None = None
    kind: str
    threshold: float | None = None
    for_seconds: int = Field(0, ge=0)
    severity: str = "warning"
    enabled: bool = True


class AlertRuleUpdate(BaseModel):
    """The fields to change (PUT may send the whole rule: its id is ignored)."""

    pipeline_id: int | None = None
    kind: str | None = None
    threshold: float | None = None
    for_seconds: int | None = Field(None, ge=0)
    severity: str | None = None
    enabled: bool | None = None


class AlertRulePublic(BaseModel):
    id: int
    pipeline_id: int | None
    kind: str
    threshold: float | None
    for_seconds: int
    severity: str
    enabled: bool
    created_at: datetime
    updated_at: datetime


def _public(r: AlertRule) -> AlertRulePublic:
    assert r.id is not None
    return AlertRulePublic(**r.model_dump())


def _check(kind: str | None, severity: str | None) -> None:
    if kind is not None and kind not in KINDS:
        raise ValidationFailed("kind", f"unknown rule kind '{kind}' (expected one of {', '.join(KINDS)})")
    if severity is not None and severity not in SEVERITIES:
        raise ValidationFailed("severity", f"unknown severity '{severity}' (expected one of {', '.join(SEVERITIES)})")


_seeding = threading.Lock()


def ensure_default_rules() -> int:
    """Insert the default rules that are missing (by kind and severity); returns how many were added.

    Idempotent: a default someone edited (threshold, duration, on/off) is kept as it is. Callers take turns
    (a lock in the process, an advisory lock on a PostgreSQL app database): two seeding at once, e.g. the
    health round and a page, would otherwise both find a default missing and add it twice.
    """
    with _seeding, session_scope() as session:
        db.serialize(session)
        have = {(r.kind, r.severity) for r in store.default_rules(session=session)}
        added = 0
        for kind, threshold, for_seconds, severity, enabled in DEFAULT_RULES:
            if (kind, severity) in have:
                continue
            rule = AlertRule(
                kind=kind, threshold=threshold, for_seconds=for_seconds, severity=severity, enabled=enabled
            )
            store.save(session=session, obj=rule)
            added += 1
        return added


def list_rules(actor: Actor, pipeline_id: int | None = None) -> list[AlertRulePublic]:
    """The defaults and, with `pipeline_id`, that pipeline's own rules (defaults first)."""
    require(actor, Action.read)
    ensure_default_rules()  # before the first health round too (a deleted default comes back: disable it)
    with session_scope() as session:
        rules = store.list_rules(session=session, pipeline_id=pipeline_id)
        if pipeline_id is None:
            rules = [r for r in rules if r.pipeline_id is None] + [r for r in rules if r.pipeline_id is not None]
        return [_public(r) for r in rules]


def create_rule(actor: Actor, data: AlertRuleCreate) -> AlertRulePublic:
    """Add a rule (a default with pipeline_id None, else the pipeline's own override of that kind)."""
    require(actor, Action.manage_pipelines)
    _check(data.kind, data.severity)
    with session_scope() as session:
        if data.pipeline_id is not None and pipe_db.get_pipeline(session=session, pipeline_id=data.pipeline_id) is None:
            raise ValidationFailed("pipeline_id", f"pipeline {data.pipeline_id} does not exist")
        rule = AlertRule(**data.model_dump())
        store.save(session=session, obj=rule)
        audit.log(
            actor, "rule.create", object_type="rule", object_id=rule.id, target=_label(rule),
            after=audit.fields(rule), session=session,
        )  # fmt: skip
        return _public(rule)


def update_rule(actor: Actor, rule_id: int, data: AlertRuleUpdate) -> AlertRulePublic:
    """Change a rule's threshold, duration, severity or on/off (only the fields given)."""
    require(actor, Action.manage_pipelines)
    _check(data.kind, data.severity)
    with session_scope() as session:
        rule = store.get_rule(session=session, rule_id=rule_id)
        if rule is None:
            raise NotFound(f"alert rule {rule_id} does not exist")
        before = audit.fields(rule)
        changes = data.model_dump(exclude_unset=True)
        if changes.get("pipeline_id") is not None and not pipe_db.get_pipeline(
            session=session, pipeline_id=changes["pipeline_id"]
        ):
            raise ValidationFailed("pipeline_id", f"pipeline {changes['pipeline_id']} does not exist")
        for name, value in changes.items():
            if value is None and name not in ("threshold", "pipeline_id"):
                continue
            setattr(rule, name, value)
        rule.updated_at = utcnow()
        store.save(session=session, obj=rule)
        audit.log(
            actor, "rule.update", object_type="rule", object_id=rule_id, target=_label(rule), before=before,
            after=audit.fields(rule), session=session,
        )  # fmt: skip
        return _public(rule)


def delete_rule(actor: Actor, rule_id: int) -> None:
    """Remove a rule (its alerts stay, with rule_id cleared)."""
    require(actor, Action.manage_pipelines)
    with session_scope() as session:
        rule = store.get_rule(session=session, rule_id=rule_id)
        if rule is None:
            raise NotFound(f"alert rule {rule_id} does not exist")
        label, before = _label(rule), audit.fields(rule)
        store.delete_rule(session=session, rule=rule)
        audit.log(
            actor, "rule.delete", object_type="rule", object_id=rule_id, target=label, before=before,
            session=session,
        )  # fmt: skip


def _label(rule: AlertRule) -> str:
    """How the audit trail names a rule: its kind, and whose it is."""
    return f"{rule.kind} ({'default' if rule.pipeline_id is None else f'pipeline {rule.pipeline_id}'})"


def effective_rules(pipeline_id: int) -> dict[str, list[AlertRule]]:
    """The enabled rules that apply to a pipeline, by kind: its own where it has any, else the defaults."""
    with session_scope() as session:
        return effective_rules_in(store.list_rules(session=session, pipeline_id=pipeline_id), pipeline_id)


def effective_rules_in(rules: list[AlertRule], pipeline_id: int) -> dict[str, list[AlertRule]]:
    """`effective_rules` over an already loaded list of rules (defaults and the pipeline's own)."""
    own_kinds = {r.kind for r in rules if r.pipeline_id == pipeline_id}
    out: dict[str, list[AlertRule]] = {}
    for r in rules:
        if r.pipeline_id is None and r.kind in own_kinds:
            continue  # overridden by the pipeline's own rule(s) of the kind
        if r.pipeline_id not in (None, pipeline_id) or not r.enabled:
            continue
        out.setdefault(r.kind, []).append(r)
    return out
