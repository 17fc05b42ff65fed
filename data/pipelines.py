"""Queries for pipelines, their runs and per-table status."""

from __future__ import annotations

from sqlmodel import Session, col, delete, or_, select

from data.models import Pipeline, PipelineRun, PipelineTable


def list_pipelines(*, session: Session) -> list[Pipeline]:
    return list(session.exec(select(Pipeline).order_by(Pipeline.name)))


def get_pipeline(*, session: Session, pipeline_id: int) -> Pipeline | None:
    return session.get(Pipeline, pipeline_id)


def get_pipeline_by_name(*, session: Session, name: str) -> Pipeline | None:
    return session.exec(select(Pipeline).where(Pipeline.name == name)).first()


def pipelines_using_connection(*, session: Session, connection_id: int) -> list[Pipeline]:
    stmt = select(Pipeline).where(
        or_(Pipeline.source_connection_id == connection_id, Pipeline.target_connection_id == connection_id)
    )
    return list(session.exec(stmt))


def save(*, session: Session, obj: Pipeline | PipelineRun | PipelineTable):  # noqa: ANN201
    session.add(obj)
    session.flush()
    session.refresh(obj)
    return obj


def delete_pipeline(*, session: Session, pipeline: Pipeline) -> None:
    session.exec(delete(PipelineTable).where(col(PipelineTable.pipeline_id) == pipeline.id))
    session.exec(delete(PipelineRun).where(col(PipelineRun.pipeline_id) == pipeline.id))
    session.delete(pipeline)


def list_runs(*, session: Session, pipeline_id: int, limit: int = 50) -> list[PipelineRun]:
    stmt = select(PipelineRun).where(PipelineRun.pipeline_id == pipeline_id)
    return list(session.exec(stmt.order_by(col(PipelineRun.id).desc()).limit(limit)))


def last_run(*, session: Session, pipeline_id: int) -> PipelineRun | None:
    runs = list_runs(session=session, pipeline_id=pipeline_id, limit=1)
    return runs[0] if runs else None


def running_runs(*, session: Session) -> list[PipelineRun]:
    return list(session.exec(select(PipelineRun).where(PipelineRun.status == "RUNNING")))  # LoadStatus.RUNNING


def list_tables(*, session: Session, pipeline_id: int) -> list[PipelineTable]:
    stmt = select(PipelineTable).where(PipelineTable.pipeline_id == pipeline_id)
    return list(session.exec(stmt.order_by(col(PipelineTable.id))))


def replace_tables(*, session: Session, pipeline_id: int, tables: list[PipelineTable]) -> None:
    session.exec(delete(PipelineTable).where(col(PipelineTable.pipeline_id) == pipeline_id))
    session.add_all(tables)
