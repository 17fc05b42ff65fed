"""Queries for per-minute change rollups and the capped raw event log."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import insert
from sqlmodel import Session, col, delete, func, select

from data.db import get_engine
from data.models import EventLogEntry, MetricMinute

# (minute, "schema.table") -> op -> count
Rollups = Mapping[tuple[datetime, str], Mapping[str, int]]


def add_counts(
    *, session: Session, pipeline_id: int, minute: datetime, table_name: str, counts: Mapping[str, int]
) -> None:
    """Add change counts to the (pipeline, minute, table) rollup row."""
    row = session.get(MetricMinute, (pipeline_id, minute, table_name))
    if row is None:
        row = MetricMinute(pipeline_id=pipeline_id, minute=minute, table_name=table_name)
    row.inserts += counts.get("insert", 0)
    row.updates += counts.get("update", 0)
    row.deletes += counts.get("delete", 0)
    row.truncates += counts.get("truncate", 0)
    session.add(row)


def add_event_rows(*, session: Session, rows: list[dict]) -> None:
    """Append log rows (EventLogEntry columns as dicts) in one executemany, without ORM objects."""
    if rows:
        session.execute(insert(EventLogEntry), rows)


def record_applied(*, url: str, pipelines: Mapping[int, tuple[Rollups, list[dict]]], keep: int) -> None:
    """In one transaction on the app database at `url`: each pipeline's rollups added, its log rows
    appended and its log trimmed to the newest `keep` entries."""
    with Session(get_engine(url)) as session, session.begin():
        for pipeline_id, (rollups, rows) in pipelines.items():
            for (minute, table_name), counts in rollups.items():
                add_counts(
                    session=session, pipeline_id=pipeline_id, minute=minute, table_name=table_name, counts=counts
                )
            add_event_rows(session=session, rows=rows[-keep:])
            trim_events(session=session, pipeline_id=pipeline_id, keep=keep)


def totals(*, session: Session, since: datetime | None = None, pipeline_id: int | None = None) -> dict[str, int]:
    """Summed counts by operation over the rollups (optionally since a time, of one pipeline)."""
    stmt = select(
        func.coalesce(func.sum(MetricMinute.inserts), 0),
        func.coalesce(func.sum(MetricMinute.updates), 0),
        func.coalesce(func.sum(MetricMinute.deletes), 0),
    )
    if since is not None:
        stmt = stmt.where(MetricMinute.minute >= since)
    if pipeline_id is not None:
        stmt = stmt.where(MetricMinute.pipeline_id == pipeline_id)
    inserts, updates, deletes = session.exec(stmt).one()
    return {"insert": int(inserts), "update": int(updates), "delete": int(deletes)}


def trim_events(*, session: Session, pipeline_id: int, keep: int) -> None:
    """Keep only the newest `keep` log entries of a pipeline."""
    newest = select(EventLogEntry.id).where(EventLogEntry.pipeline_id == pipeline_id)
    newest = newest.order_by(col(EventLogEntry.id).desc()).offset(keep).limit(1)
    cutoff = session.exec(newest).first()
    if cutoff is not None:
        session.exec(
            delete(EventLogEntry).where(col(EventLogEntry.pipeline_id) == pipeline_id, col(EventLogEntry.id) <= cutoff)
        )


def recent_events(
    *,
    session: Session,
    pipeline_id: int | None = None,
    op: str | None = None,
    table_name: str | None = None,
    limit: int = 100,
) -> list[EventLogEntry]:
    """The newest logged events, newest first, filtered."""
    stmt = select(EventLogEntry)
    if pipeline_id is not None:
        stmt = stmt.where(EventLogEntry.pipeline_id == pipeline_id)
    if op:
        stmt = stmt.where(EventLogEntry.op == op)
    if table_name:
        stmt = stmt.where(EventLogEntry.table_name == table_name)
    return list(session.exec(stmt.order_by(col(EventLogEntry.id).desc()).limit(limit)))
