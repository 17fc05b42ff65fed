"""Storage of the schema history: the detected changes of pipelines' source schemas."""

from __future__ import annotations

from sqlmodel import Session, col, func, select

from data.models import SchemaChange


def add_changes(*, session: Session, changes: list[SchemaChange]) -> list[SchemaChange]:
    for change in changes:
        session.add(change)
    session.flush()
    return changes


def list_changes(
    *, session: Session, pipeline_id: int, table: str | None = None, limit: int = 500
) -> list[SchemaChange]:
    """The pipeline's changes, newest first."""
    q = select(SchemaChange).where(SchemaChange.pipeline_id == pipeline_id)
    if table is not None:
        q = q.where(SchemaChange.table == table)
    return list(session.exec(q.order_by(col(SchemaChange.id).desc()).limit(limit)))


def counts_by_table(*, session: Session, pipeline_id: int) -> dict[str, int]:
    q = (
        select(SchemaChange.table, func.count())
        .where(SchemaChange.pipeline_id == pipeline_id)
        .group_by(col(SchemaChange.table))
    )
    return {table: int(n) for table, n in session.exec(q)}
