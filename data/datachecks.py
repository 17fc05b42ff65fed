"""Storage of data checks, their tables' states and the confirmed mismatches."""

from __future__ import annotations

from sqlmodel import Session, col, select

from data.models import DataCheck, DataCheckTable, DataMismatch


def add_check(*, session: Session, check: DataCheck, tables: list[str]) -> DataCheck:
    session.add(check)
    session.flush()
    assert check.id is not None
    for table in tables:
        session.add(DataCheckTable(check_id=check.id, pipeline_id=check.pipeline_id, table=table))
    session.flush()
    return check


def get_check(*, session: Session, check_id: int) -> DataCheck | None:
    return session.get(DataCheck, check_id)


def running_check(*, session: Session, pipeline_id: int) -> DataCheck | None:
    q = select(DataCheck).where(DataCheck.pipeline_id == pipeline_id, DataCheck.status == "running")
    return session.exec(q).first()


def latest_check(*, session: Session, pipeline_id: int) -> DataCheck | None:
    q = select(DataCheck).where(DataCheck.pipeline_id == pipeline_id).order_by(col(DataCheck.id).desc())
    return session.exec(q.limit(1)).first()


def running_checks(*, session: Session) -> list[DataCheck]:
    return list(session.exec(select(DataCheck).where(DataCheck.status == "running")))


def tables_of(*, session: Session, check_id: int) -> list[DataCheckTable]:
    q = select(DataCheckTable).where(DataCheckTable.check_id == check_id).order_by(col(DataCheckTable.id))
    return list(session.exec(q))


def table_row(*, session: Session, check_id: int, table: str) -> DataCheckTable | None:
    q = select(DataCheckTable).where(DataCheckTable.check_id == check_id, DataCheckTable.table == table)
    return session.exec(q).first()


def latest_tables(*, session: Session, pipeline_id: int) -> list[DataCheckTable]:
    """Each table's row of the newest check that covered it."""
    q = (
        select(DataCheckTable)
        .where(DataCheckTable.pipeline_id == pipeline_id)
        .order_by(col(DataCheckTable.check_id).desc(), col(DataCheckTable.id))
    )
    seen: dict[str, DataCheckTable] = {}
    for row in session.exec(q):
        seen.setdefault(row.table, row)
    return sorted(seen.values(), key=lambda r: r.table)


def add_mismatches(*, session: Session, mismatches: list[DataMismatch]) -> None:
    session.add_all(mismatches)


def list_mismatches(*, session: Session, check_id: int, table: str | None, limit: int) -> list[DataMismatch]:
    q = select(DataMismatch).where(DataMismatch.check_id == check_id)
    if table:
        q = q.where(DataMismatch.table == table)
    return list(session.exec(q.order_by(col(DataMismatch.id)).limit(limit)))
