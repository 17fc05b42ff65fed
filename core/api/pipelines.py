"""Pipelines: CRUD, preview, schema diff, validation, start/stop, status and run history."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Response

from core import pipelines as svc
from core.api.deps import current_actor
from core.pipeline_schemas import (
    PipelineCreate,
    PipelineProgress,
    PipelinePublic,
    PipelineStatus,
    PipelineUpdate,
    PreviewRow,
    RunPublic,
    ValidationReport,
)
from core.users import Actor

router = APIRouter(prefix="/pipelines", tags=["pipelines"])


@router.get("", response_model=list[PipelinePublic])
def list_pipelines(actor: Actor = Depends(current_actor)) -> list[PipelinePublic]:
    """Every pipeline with state, last run and next scheduled run."""
    return svc.list_pipelines(actor)


@router.post("", response_model=PipelinePublic, status_code=201)
def create_pipeline(body: PipelineCreate, actor: Actor = Depends(current_actor)) -> PipelinePublic:
    """Create a pipeline; tables and schemas are checked against the live source first."""
    return svc.create_pipeline(actor, body)


@router.get("/{pipeline_id}", response_model=PipelinePublic)
def get_pipeline(pipeline_id: int, actor: Actor = Depends(current_actor)) -> PipelinePublic:
    return svc.get_pipeline(actor, pipeline_id)


@router.put("/{pipeline_id}", response_model=PipelinePublic)
def update_pipeline(pipeline_id: int, body: PipelineUpdate, actor: Actor = Depends(current_actor)) -> PipelinePublic:
    """Edit a pipeline that is not running."""
    return svc.update_pipeline(actor, pipeline_id, body)


@router.delete("/{pipeline_id}", status_code=204)
def delete_pipeline(pipeline_id: int, actor: Actor = Depends(current_actor)) -> Response:
    """Stop it if running, remove its schedule and delete it with its history."""
    svc.delete_pipeline(actor, pipeline_id)
    return Response(status_code=204)


@router.get("/{pipeline_id}/tables/preview", response_model=list[PreviewRow])
def preview(pipeline_id: int, actor: Actor = Depends(current_actor)) -> list[PreviewRow]:
    """Source -> target per table: will be created / exists / exists with different columns."""
    return svc.preview(actor, pipeline_id)


@router.get("/{pipeline_id}/schema/diff", response_model=list[PreviewRow])
def schema_diff(pipeline_id: int, actor: Actor = Depends(current_actor)) -> list[PreviewRow]:
    """Tables whose target is missing or differs from the source, with the differences."""
    return svc.schema_diff(actor, pipeline_id)


@router.post("/{pipeline_id}/validate", response_model=ValidationReport)
def validate(pipeline_id: int, actor: Actor = Depends(current_actor)) -> ValidationReport:
    """What would stop a start (errors) and what deserves a look (warnings)."""
    return svc.validate(actor, pipeline_id)


@router.post("/{pipeline_id}/start", response_model=PipelineStatus)
def start(pipeline_id: int, actor: Actor = Depends(current_actor)) -> PipelineStatus:
    """Start the pipeline now (409 if a run is in progress; 422 with the validation errors if it cannot start)."""
    return svc.start_pipeline(actor, pipeline_id)


@router.post("/{pipeline_id}/stop", response_model=PipelineStatus)
def stop(pipeline_id: int, actor: Actor = Depends(current_actor)) -> PipelineStatus:
    """Cancel a running load."""
    return svc.stop_pipeline(actor, pipeline_id)


@router.post("/{pipeline_id}/pause", response_model=PipelineStatus)
def pause(pipeline_id: int, actor: Actor = Depends(current_actor)) -> PipelineStatus:
    """Pause a running CDC pipeline (the slot keeps its changes)."""
    return svc.pause_pipeline(actor, pipeline_id)


@router.post("/{pipeline_id}/restart", response_model=PipelineStatus)
def restart(pipeline_id: int, only_failed: bool = True, actor: Actor = Depends(current_actor)) -> PipelineStatus:
    """Restart a kafka_connect pipeline's connector and tasks (`only_failed=true`: only what FAILED)."""
    return svc.restart_pipeline(actor, pipeline_id, only_failed=only_failed)


@router.post("/{pipeline_id}/resume", response_model=PipelineStatus)
def resume(pipeline_id: int, actor: Actor = Depends(current_actor)) -> PipelineStatus:
    """Resume a paused CDC pipeline."""
    return svc.resume_pipeline(actor, pipeline_id)


@router.post("/{pipeline_id}/recover", response_model=PipelineStatus)
def recover(pipeline_id: int, actor: Actor = Depends(current_actor)) -> PipelineStatus:
    """Restart a pipeline in ERROR now instead of at its planned retry (409 in any other state; 422 with the
    validation errors when it still cannot start — the attempt counts and the next one is planned)."""
    return svc.recover_pipeline(actor, pipeline_id)


@router.post("/{pipeline_id}/resync", response_model=PipelineStatus)
def resync(pipeline_id: int, actor: Actor = Depends(current_actor)) -> PipelineStatus:
    """Load every table again from a new replication slot and stream from it (a STOPPED or ERROR CDC pipeline of
    the embedded engine): after its slot was lost. The old slot is dropped, each target table emptied and copied
    under the new slot's snapshot. 409 while it runs, 422 for a pipeline it does not apply to."""
    return svc.resync_pipeline(actor, pipeline_id)


@router.get("/{pipeline_id}/progress", response_model=PipelineProgress)
def progress(pipeline_id: int, actor: Actor = Depends(current_actor)) -> PipelineProgress:
    """What the pipeline does now: phase (loading|streaming|retrying|idle), per-table load with %, CDC figures,
    retry information."""
    return svc.get_progress(actor, pipeline_id)


@router.post("/{pipeline_id}/tables/{source}/retry", response_model=PipelineStatus)
def retry_table(pipeline_id: int, source: str, actor: Actor = Depends(current_actor)) -> PipelineStatus:
    """Load one FAILED table (`schema.table`) again alone; the others keep streaming (422 if it still fails
    validation, 409 if it is not FAILED)."""
    return svc.retry_table(actor, pipeline_id, source)


@router.get("/{pipeline_id}/lag")
def lag(pipeline_id: int, actor: Actor = Depends(current_actor)) -> dict:
    """Events/s, counts by operation, WAL bytes behind, seconds behind, retained WAL of the slot."""
    return svc.lag(actor, pipeline_id)


@router.get("/{pipeline_id}/status", response_model=PipelineStatus)
def status(pipeline_id: int, actor: Actor = Depends(current_actor)) -> PipelineStatus:
    """State, full-load and CDC status, per-table progress, health and `retry` (automatic recovery)."""
    return svc.get_status(actor, pipeline_id)


@router.get("/{pipeline_id}/runs", response_model=list[RunPublic])
def runs(
    pipeline_id: int, limit: int = Query(50, ge=1, le=500), actor: Actor = Depends(current_actor)
) -> list[RunPublic]:
    """Run history, newest first."""
    return svc.list_runs(actor, pipeline_id, limit)
