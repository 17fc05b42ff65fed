"""The schema history of a pipeline: every change of its source schema the engine detected (from a relation
message or the scheduled catalog scan), with the policy in force and what it did. Kept in the app database,
shown on the pipeline page and served by GET /api/v1/pipelines/{id}/schema/history."""

from __future__ import annotations

import logging

from core.cdc.schema_watch import Change
from core.pipeline_schemas import SchemaChangePublic
from core.plans import stored_pipeline
from core.security import Action, require
from core.users import Actor
from data import schema_history as store
from data.db import session_scope
from data.models import SchemaChange

log = logging.getLogger(__name__)

MAX_LIMIT = 1000


def record(pipeline_id: int, changes: list[Change], action: str, detected_by: str) -> None:
    """Keep the changes (a failure to write is logged: the stream must not stop for its history)."""
    if not changes:
        return
    try:
        with session_scope() as session:
            p = stored_pipeline(session, pipeline_id)
            store.add_changes(
                session=session,
                changes=[
                    SchemaChange(
                        pipeline_id=pipeline_id,
                        table=c.table,
                        kind=c.kind,
                        column=c.column,
                        before=c.before,
                        after=c.after,
                        detected_by=detected_by,
                        policy=p.schema_drift,
                        action=action[:1000],
                    )
                    for c in changes
                ],
            )
    except Exception:  # noqa: BLE001 - history is a record, not a reason to stop replicating
        log.exception("pipeline %s: the schema history could not be written", pipeline_id)


def history(actor: Actor, pipeline_id: int, table: str | None = None, limit: int = 200) -> list[SchemaChangePublic]:
    """The pipeline's detected schema changes, newest first."""
    require(actor, Action.read)
    with session_scope() as session:
        stored_pipeline(session, pipeline_id)
        rows = store.list_changes(
            session=session, pipeline_id=pipeline_id, table=table, limit=max(1, min(limit, MAX_LIMIT))
        )
        return [SchemaChangePublic.model_validate(r, from_attributes=True) for r in rows]
