"""Queries of the metrics history (metric_samples: 10 s points, 1 min and 1 h rollups by grain).

Every read is a range over the primary key (pipeline_id, grain, ts, table_name), so a chart reads only
its own rows. Plain SQLAlchemy core: the same statements run on SQLite and PostgreSQL app state.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Float,
    and_,
    case,
    cast,
    delete,
    func,
    insert,
    literal,
    select,
    union_all,
)
from sqlmodel import Session

from data.models import Alert, MetricMinute, MetricSample, Pipeline, PipelineTable

T = MetricSample.__table__  # type: ignore[attr-defined]  # SQLModel tables carry a Table
COLUMNS = tuple(c.name for c in T.columns)


def _rows(result: Any) -> list[dict]:
    keys = list(result.keys())
    return [dict(zip(keys, row, strict=True)) for row in result]


def points_at(*, session: Session, grain: int, ts: datetime, pipeline_ids: Iterable[int]) -> list[dict]:
    """The points of these pipelines in one bucket (every table), as dicts."""
    ids = list(pipeline_ids)
    if not ids:
        return []
    stmt = select(T).where(T.c.grain == grain, T.c.ts == ts, T.c.pipeline_id.in_(ids))
    return _rows(session.execute(stmt))


def replace_points(
    *,
    session: Session,
    grain: int,
    start: datetime,
    end: datetime,
    rows: Sequence[dict],
    pipeline_ids: Iterable[int] | None = None,
) -> None:
    """Replace the points of `grain` with ts in [start, end) (of these pipelines, or all) by `rows`: an upsert
    that stays idempotent because the buckets are always recomputed whole."""
    stmt = delete(T).where(T.c.grain == grain, T.c.ts >= start, T.c.ts < end)
    if pipeline_ids is not None:
        stmt = stmt.where(T.c.pipeline_id.in_(list(pipeline_ids)))
    session.execute(stmt)
    if rows:
        session.execute(insert(T), list(rows))


def insert_points(*, session: Session, rows: Sequence[dict]) -> None:
    """Bulk-insert points (dicts of metric_samples columns) in one executemany."""
    if rows:
        session.execute(insert(T), list(rows))


def points_between(*, session: Session, grain: int, start: datetime, end: datetime) -> list[dict]:
    """Every point of `grain` with ts in [start, end), all pipelines and tables (the rollup's children)."""
    stmt = select(T).where(T.c.grain == grain, T.c.ts >= start, T.c.ts < end)
    return _rows(session.execute(stmt))


def newest_ts(*, session: Session, grain: int) -> datetime | None:
    """The start of the newest bucket of `grain` (None when there is none)."""
    return session.execute(select(func.max(T.c.ts)).where(T.c.grain == grain)).scalar()


def oldest_ts(*, session: Session, grain: int) -> datetime | None:
    """The start of the oldest bucket of `grain` (None when there is none)."""
    return session.execute(select(func.min(T.c.ts)).where(T.c.grain == grain)).scalar()


def purge(*, session: Session, grain: int, before: datetime) -> int:
    """Delete the points of `grain` older than `before`; how many went."""
    result = session.execute(delete(T).where(T.c.grain == grain, T.c.ts < before))
    return int(getattr(result, "rowcount", 0) or 0)


def series(
    *,
    session: Session,
    pipeline_id: int,
    grain: int,
    start: datetime,
    end: datetime | None = None,
    columns: Sequence[str] = COLUMNS,
    tables: bool = False,
) -> list[dict]:
    """A pipeline's points of `grain` from `start` (to `end`), oldest first: the pipeline-wide ones, or with
    `tables` the per-table ones."""
    cols = [T.c[c] for c in dict.fromkeys(("ts", "table_name", "samples", *columns))]
    where = [T.c.pipeline_id == pipeline_id, T.c.grain == grain, T.c.ts >= start]
    if end is not None:
        where.append(T.c.ts < end)
    where.append(T.c.table_name != "" if tables else T.c.table_name == "")
    return _rows(session.execute(select(*cols).where(and_(*where)).order_by(T.c.ts)))


def _epoch(session: Session) -> ColumnElement:
    """The point's start in whole seconds since the epoch, in SQL (how each database reads a stored time)."""
    if session.get_bind().dialect.name == "sqlite":
        return cast(func.strftime("%s", T.c.ts), BigInteger)  # SQLite keeps UTC times as text
    return cast(func.floor(func.extract("epoch", T.c.ts)), BigInteger)


def bucketed(
    *,
    session: Session,
    pipeline_id: int,
    grain: int,
    start: datetime,
    step_s: int,
    sums: Sequence[str] = (),
    means: Sequence[str] = (),
    maxes: Sequence[str] = (),
    tables: bool = False,
) -> tuple[list[str], list[tuple]]:
    """A pipeline's points of `grain` from `start`, aggregated in SQL into buckets of `step_s` (per table with
    `tables`, else the pipeline-wide points), oldest first: (column names, rows). The columns: `b` (the bucket's
    start, epoch seconds), `last` (its newest point's start), `samples`, `table_name`, each sum column summed,
    each mean column's samples-weighted mean and its weight `<column>_w`, each max column's max."""
    epoch = _epoch(session)
    b = (epoch - epoch % step_s).label("b")
    cols: list = [b, func.max(epoch).label("last"), func.sum(T.c.samples).label("samples"), T.c.table_name]
    # Casts: PostgreSQL sums bigints as numeric, which arrives as Decimal (slow to build, and not an int).
    cols += [cast(func.sum(T.c[c]), BigInteger).label(c) for c in sums]
    for c in means:
        weight = func.sum(case((T.c[c].is_not(None), T.c.samples), else_=0))
        cols.append((cast(func.sum(T.c[c] * T.c.samples), Float) / func.nullif(weight, 0)).label(c))
        cols.append(weight.label(f"{c}_w"))
    cols += [func.max(T.c[c]).label(c) for c in maxes]
    where = [T.c.pipeline_id == pipeline_id, T.c.grain == grain, T.c.ts >= start]
    where.append(T.c.table_name != "" if tables else T.c.table_name == "")
    stmt = select(*cols).where(and_(*where)).group_by(T.c.table_name, b).order_by(b)
    result = session.execute(stmt)
    return list(result.keys()), [tuple(r) for r in result]


def pipelines_rows(*, session: Session, since: dict[int, tuple[datetime, int]]) -> list[tuple[int, int, int, int, int]]:
    """(pipeline_id, grain, bucket start, rows applied, newest point's start) of the pipelines' pipeline-wide
    points, for each grain in `since` ({grain: (start, bucket seconds)}) from its start, in one query (one
    index range per pipeline and grain: the pipelines' ids lead the primary key); times are epoch seconds."""
    ids = select(Pipeline.__table__.c.id).scalar_subquery()  # type: ignore[attr-defined]
    epoch = _epoch(session)
    parts = []
    for grain, (start, step_s) in since.items():
        b = (epoch - epoch % step_s).label("b")
        rows = cast(func.sum(T.c.inserts + T.c.updates + T.c.deletes), BigInteger).label("rows")
        where = and_(T.c.pipeline_id.in_(ids), T.c.grain == grain, T.c.ts >= start, T.c.table_name == "")
        cols = (T.c.pipeline_id, literal(grain).label("grain"), b, rows, func.max(epoch).label("last"))
        parts.append(select(*cols).where(where).group_by(T.c.pipeline_id, b))
    stmt = union_all(*parts) if len(parts) > 1 else parts[0]
    return [(int(p), int(g), int(b), int(n or 0), int(last)) for p, g, b, n, last in session.execute(stmt)]


def count_points(*, session: Session) -> dict[int, int]:
    """How many points each grain holds."""
    stmt = select(T.c.grain, func.count()).group_by(T.c.grain)
    return {int(g): int(n) for g, n in session.execute(stmt)}


def table_changes(*, session: Session, pipeline_id: int) -> dict[str, dict]:
    """Per table of a pipeline, from the per-minute change rollups: inserts, updates, deletes, last change."""
    m = MetricMinute.__table__  # type: ignore[attr-defined]
    stmt = (
        select(
            m.c.table_name,
            func.sum(m.c.inserts),
            func.sum(m.c.updates),
            func.sum(m.c.deletes),
            func.max(m.c.minute),
        )
        .where(m.c.pipeline_id == pipeline_id)
        .group_by(m.c.table_name)
    )
    out = {}
    for name, ins, upd, dele, last in session.execute(stmt):
        out[name] = {"inserts": int(ins or 0), "updates": int(upd or 0), "deletes": int(dele or 0), "last": last}
    return out


def pipeline_tables(*, session: Session, pipeline_id: int) -> list[PipelineTable]:
    """The pipeline's tables with their latest full-load figures."""
    t = PipelineTable.__table__  # type: ignore[attr-defined]
    stmt = select(PipelineTable).where(t.c.pipeline_id == pipeline_id).order_by(t.c.source)
    return list(session.scalars(stmt))


def firing_alerts(*, session: Session) -> dict[str, int]:
    """Firing alerts by severity."""
    a = Alert.__table__  # type: ignore[attr-defined]
    stmt = select(a.c.severity, func.count()).where(a.c.state == "firing").group_by(a.c.severity)
    return {str(s): int(n) for s, n in session.execute(stmt)}


def pipeline_states(*, session: Session) -> list[tuple[int, str, str]]:
    """(id, name, state) of every pipeline."""
    p = Pipeline.__table__  # type: ignore[attr-defined]
    return [(int(i), n, s) for i, n, s in session.execute(select(p.c.id, p.c.name, p.c.state).order_by(p.c.id))]
