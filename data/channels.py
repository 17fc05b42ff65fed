"""Queries for notification channels and their delivery log."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, delete, select, update

from data.models import Channel, Delivery, Pipeline


def list_channels(*, session: Session, enabled_only: bool = False) -> list[Channel]:
    """Every channel by name (only the enabled ones if asked)."""
    stmt = select(Channel)
    if enabled_only:
        stmt = stmt.where(col(Channel.enabled).is_(True))
    return list(session.exec(stmt.order_by(Channel.name)))


def get_channel(*, session: Session, channel_id: int) -> Channel | None:
    """The channel with this id, or None."""
    return session.get(Channel, channel_id)


def get_channel_by_name(*, session: Session, name: str) -> Channel | None:
    """The channel with this name, or None."""
    return session.exec(select(Channel).where(Channel.name == name)).first()


def save_channel(*, session: Session, channel: Channel) -> Channel:
    """Insert or update a channel and return it with its id."""
    session.add(channel)
    session.flush()
    session.refresh(channel)
    return channel


def delete_channel(*, session: Session, channel: Channel) -> None:
    """Delete a channel and its delivery log."""
    session.exec(delete(Delivery).where(col(Delivery.channel_id) == channel.id))
    session.delete(channel)


def add_deliveries(*, session: Session, deliveries: list[Delivery]) -> list[Delivery]:
    """Insert delivery rows and return them with their ids."""
    session.add_all(deliveries)
    session.flush()
    for delivery in deliveries:
        session.refresh(delivery)
    return deliveries


def get_delivery(*, session: Session, delivery_id: int) -> Delivery | None:
    """The delivery with this id, or None."""
    return session.get(Delivery, delivery_id)


def save_delivery(*, session: Session, delivery: Delivery) -> Delivery:
    """Store a delivery's new state."""
    session.add(delivery)
    session.flush()
    return delivery


def due_deliveries(*, session: Session, now: datetime, limit: int = 100) -> list[Delivery]:
    """Pending deliveries whose next attempt is due (no next time = due now), oldest first."""
    stmt = select(Delivery).where(Delivery.status == "pending", Delivery.event != "test")
    stmt = stmt.where((col(Delivery.next_attempt_at).is_(None)) | (col(Delivery.next_attempt_at) <= now))
    return list(session.exec(stmt.order_by(col(Delivery.id)).limit(limit)))


def list_deliveries(
    *, session: Session, alert_id: int | None = None, channel_id: int | None = None, limit: int = 100
) -> list[Delivery]:
    """The delivery log, newest first, optionally of one alert and/or one channel."""
    stmt = select(Delivery)
    if alert_id is not None:
        stmt = stmt.where(Delivery.alert_id == alert_id)
    if channel_id is not None:
        stmt = stmt.where(Delivery.channel_id == channel_id)
    return list(session.exec(stmt.order_by(col(Delivery.id).desc()).limit(limit)))


def channels_notified_of(*, session: Session, alert_id: int) -> list[int]:
    """Ids of the channels that were given the alert's firing (or a reminder of it)."""
    stmt = select(Delivery.channel_id).where(
        Delivery.alert_id == alert_id, col(Delivery.event).in_(["firing", "reminder"])
    )
    return sorted(set(session.exec(stmt)))


def claim(*, session: Session, delivery_id: int, now: datetime, lease_until: datetime) -> bool:
    """Take a due pending delivery for one attempt: its next attempt moves to `lease_until`, so the
    sender thread and the retry job never both send it (and a crash mid-send is retried after it)."""
    stmt = (
        update(Delivery)
        .where(col(Delivery.id) == delivery_id, col(Delivery.status) == "pending")
        .where(col(Delivery.next_attempt_at).is_(None) | (col(Delivery.next_attempt_at) <= now))
        .values(next_attempt_at=lease_until)
    )
    return session.exec(stmt).rowcount == 1


def missing_pipelines(*, session: Session, pipeline_ids: list[int]) -> list[int]:
    """Those of the ids that name no pipeline."""
    if not pipeline_ids:
        return []
    found = set(session.exec(select(Pipeline.id).where(col(Pipeline.id).in_(pipeline_ids))))
    return [i for i in pipeline_ids if i not in found]


def pipeline_name(*, session: Session, pipeline_id: int | None) -> str | None:
    """The pipeline's name, or None when there is no such pipeline."""
    if pipeline_id is None:
        return None
    pipeline = session.get(Pipeline, pipeline_id)
    return pipeline.name if pipeline is not None else None
