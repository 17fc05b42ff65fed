"""Data checks over the API: start one, follow it, read its mismatched rows; the data quality per table."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from core import datachecks as svc
from core import schema_history as history_svc
from core.api.deps import current_actor
from core.datachecks import (
    DataCheckCreate,
    DataCheckCreated,
    DataCheckPublic,
    DataQualityRow,
    MismatchPublic,
    ResyncRequest,
    ResyncResult,
)
from core.pipeline_schemas import SchemaChangePublic
from core.users import Actor

router = APIRouter(tags=["data checks"])


@router.get("/pipelines/{pipeline_id}/schema/history", response_model=list[SchemaChangePublic])
def schema_history(
    pipeline_id: int,
    table: str | None = Query(None, description="only this source table (schema.table)"),
    limit: int = Query(200, ge=1, le=history_svc.MAX_LIMIT),
    actor: Actor = Depends(current_actor),
) -> list[SchemaChangePublic]:
    """Every change of the pipeline's source schema that was detected (column added, dropped, renamed, type or
    nullability changed; table dropped; a new table matching the pipeline's tables), newest first, with the
    schema_change_policy in force and what it did."""
    return history_svc.history(actor, pipeline_id, table, limit)


@router.post("/pipelines/{pipeline_id}/data-checks", response_model=DataCheckCreated, status_code=201)
def start_data_check(
    pipeline_id: int, data: DataCheckCreate | None = None, actor: Actor = Depends(current_actor)
) -> DataCheckCreated:
    """Validate the pipeline's tables (all, or `tables`) while it keeps running: `counts`, or `full`
    (checksums of key segments down to the rows that differ). Runs in the background; follow it with GET
    .../data-checks/{check_id} until its `status` is `completed` or `failed`."""
    return svc.start_check(actor, pipeline_id, data or DataCheckCreate())


@router.get("/pipelines/{pipeline_id}/data-checks/{check_id}", response_model=DataCheckPublic)
def get_data_check(pipeline_id: int, check_id: int, actor: Actor = Depends(current_actor)) -> DataCheckPublic:
    """A check's progress and result, per table (PENDING, VALIDATING, VALIDATED, MISMATCHED, SUSPENDED,
    NO_PRIMARY_KEY, ERROR)."""
    return svc.get_check(actor, pipeline_id, check_id)


@router.get("/pipelines/{pipeline_id}/data-checks/{check_id}/mismatches", response_model=list[MismatchPublic])
def data_check_mismatches(
    pipeline_id: int,
    check_id: int,
    table: str | None = Query(None, description="schema.table of the source"),
    limit: int = Query(100, ge=1, le=1000),
    actor: Actor = Depends(current_actor),
) -> list[MismatchPublic]:
    """The rows that differ (confirmed by the rechecks): key, kind (missing, extra, different), the differing
    columns and both sides' values (withheld from roles that may not see row data)."""
    return svc.mismatches(actor, pipeline_id, check_id, table, limit)


@router.get("/monitoring/pipelines/{pipeline_id}/data-quality", response_model=list[DataQualityRow])
def data_quality(pipeline_id: int, actor: Actor = Depends(current_actor)) -> list[DataQualityRow]:
    """Per table of the pipeline: the state and counts of its newest data check."""
    return svc.data_quality(actor, pipeline_id)


@router.post("/pipelines/{pipeline_id}/tables/{table}/resync", response_model=ResyncResult)
def resync_table(
    pipeline_id: int, table: str, data: ResyncRequest | None = None, actor: Actor = Depends(current_actor)
) -> ResyncResult:
    """Repair one table (`schema.table`): `rows` (default) writes the rows a data check found different from
    the source now, ordered against the change stream; `reload` copies the table again while the pipeline
    streams (no gap, no duplicate); `validate_only` starts a data check of the table."""
    return svc.resync_table(actor, pipeline_id, table, data or ResyncRequest())
