"""Queries of alert rules and alerts (core.monitoring.rules and core.monitoring.alerts decide, this stores)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, or_, text
from sqlmodel import Session, col, select

from data.models import Alert, AlertRule, MetricMinute, Pipeline

OPEN_STATES = ("pending", "firing")


def list_rules(*, session: Session, pipeline_id: int | None = None, with_defaults: bool = True) -> list[AlertRule]:
    """Rules of one pipeline (and the defaults, unless `with_defaults` is off); every rule without a pipeline."""
    stmt = select(AlertRule)
    if pipeline_id is not None:
        own = col(AlertRule.pipeline_id) == pipeline_id
        stmt = stmt.where(or_(own, col(AlertRule.pipeline_id).is_(None)) if with_defaults else own)
    return list(session.exec(stmt.order_by(col(AlertRule.pipeline_id).is_not(None), col(AlertRule.id))))


def default_rules(*, session: Session) -> list[AlertRule]:
    """The rules for every pipeline (pipeline_id NULL)."""
    return list(session.exec(select(AlertRule).where(col(AlertRule.pipeline_id).is_(None))))


def get_rule(*, session: Session, rule_id: int) -> AlertRule | None:
    return session.get(AlertRule, rule_id)


def save(*, session: Session, obj: AlertRule | Alert) -> AlertRule | Alert:
    """Insert or update a rule or an alert (flushed, so it has its id)."""
    session.add(obj)
    session.flush()
    return obj


def delete_rule(*, session: Session, rule: AlertRule) -> None:
    session.delete(rule)


def open_alert(*, session: Session, pipeline_id: int | None, kind: str, obj: str) -> Alert | None:
    """The pending or firing alert of an identity (rule kind + pipeline + object), if any."""
    stmt = select(Alert).where(
        col(Alert.pipeline_id) == pipeline_id if pipeline_id is not None else col(Alert.pipeline_id).is_(None),
        Alert.kind == kind,
        Alert.object == obj,
        col(Alert.state).in_(OPEN_STATES),
    )
    return session.exec(stmt.order_by(col(Alert.id).desc())).first()


def open_alerts(*, session: Session, pipeline_id: int | None = None) -> list[Alert]:
    """Pending and firing alerts (of one pipeline)."""
    stmt = select(Alert).where(col(Alert.state).in_(OPEN_STATES))
    if pipeline_id is not None:
        stmt = stmt.where(Alert.pipeline_id == pipeline_id)
    return list(session.exec(stmt))


def list_alerts(*, session: Session, state: str, pipeline_id: int | None, limit: int) -> list[Alert]:
    """Newest first. `state` firing | resolved | all; resolved alerts that never fired are left out."""
    stmt = select(Alert)
    if state == "firing":
        stmt = stmt.where(Alert.state == "firing")
    elif state == "resolved":
        stmt = stmt.where(Alert.state == "resolved", col(Alert.fired_at).is_not(None))
    else:
        stmt = stmt.where(or_(col(Alert.state) != "resolved", col(Alert.fired_at).is_not(None)))
    if pipeline_id is not None:
        stmt = stmt.where(Alert.pipeline_id == pipeline_id)
    return list(session.exec(stmt.order_by(col(Alert.id).desc()).limit(limit)))


def get_alert(*, session: Session, alert_id: int) -> Alert | None:
    return session.get(Alert, alert_id)


def firing_counts(*, session: Session) -> dict[int, int]:
    """Firing alerts per pipeline."""
    stmt = (
        select(Alert.pipeline_id, func.count())
        .where(Alert.state == "firing", col(Alert.pipeline_id).is_not(None))
        .group_by(col(Alert.pipeline_id))
    )
    return {int(pid): int(n) for pid, n in session.exec(stmt) if pid is not None}


def last_change_minute(*, session: Session, pipeline_id: int) -> datetime | None:
    """The newest minute with applied changes of a pipeline (None: none recorded)."""
    stmt = select(func.max(MetricMinute.minute)).where(MetricMinute.pipeline_id == pipeline_id)
    return session.exec(stmt).first()


def pipeline_names(*, session: Session) -> dict[int, str]:
    """Every pipeline's name by id."""
    return {pid: name for pid, name in session.exec(select(Pipeline.id, Pipeline.name)) if pid is not None}


def probe_write(*, session: Session) -> None:
    """Take the database's write lock with a statement that changes nothing (fails when it is read-only)."""
    session.execute(text("UPDATE alert_rules SET id = id WHERE 1 = 0"))
    session.rollback()


def count_by_object(*, session: Session, pipeline_id: int, kind: str) -> dict[str, int]:
    """How many alerts of a kind a pipeline had, per object (e.g. schema_drift per table)."""
    stmt = (
        select(Alert.object, func.count())
        .where(Alert.pipeline_id == pipeline_id, Alert.kind == kind)
        .group_by(col(Alert.object))
    )
    return {str(obj): int(n) for obj, n in session.exec(stmt)}
