"""Pipelines: create/edit/delete with validation against the live source, preview, diff, status.

Every function takes the acting user and checks the role first; the API and the pages call
these same functions. Functions that reach a database block: call them off the event loop.
"""

from __future__ import annotations

import logging

from core import audit, lifecycle, pipeline_checks, runner, scheduler
from core.cdc import pg_source
from core.cdc.engine import drop_source_objects, forget_offsets
from core.config import get_settings
from core.connectors import get_connector
from core.connectors.base import ConnectionSpec
from core.errors import (
    TRANSIENT,
    Conflict,
    ConnectorError,
    NotFound,
    NotStartable,
    StudioError,
    ValidationFailed,
    error_kind,
)
from core.fullload import compare_columns
from core.fullload.model import FAILED as TABLE_FAILED
from core.kafka.debezium import JDBC_SINKS, connector_name
from core.kafka.engine import connect_client, delete_connector
from core.lifecycle import ACTIVE, CdcStatus, LoadStatus, Mode, State, allowed_actions
from core.monitoring import counters
from core.pipeline_schemas import (
    PipelineCreate,
    PipelineProgress,
    PipelinePublic,
    PipelineStatus,
    PipelineUpdate,
    PreviewRow,
    RetryInfo,
    RunPublic,
    TableMapping,
    TableProgress,
    TableStatus,
    ValidationReport,
)
from core.plans import Resolved, connection_for, load_plan, resolve, spec_in, stored_pipeline, stored_request
from core.security import Action, instance_tag, require
from core.users import Actor
from data import connections as conn_db
from data import pipelines as pipe_db
from data.db import session_scope
from data.models import Connection, Pipeline, utcnow

log = logging.getLogger(__name__)

EDITABLE_WHILE_RUNNING = {"name", "description", "schedule", "validation_schedule"}


# ---------------------------------------------------------------- reading


def _public(session, p: Pipeline) -> PipelinePublic:  # noqa: ANN001
    src = conn_db.get_connection(session=session, connection_id=p.source_connection_id)
    tgt = conn_db.get_connection(session=session, connection_id=p.target_connection_id)
    assert p.id is not None  # a stored pipeline
    last = next(iter(_newest_first(pipe_db.list_runs(session=session, pipeline_id=p.id, limit=2))), None)
    data = p.model_dump()
    data["table_mappings"] = [TableMapping(**m) for m in p.table_mappings or []]
    data["schema_change_policy"] = p.schema_drift
    return PipelinePublic(
        **data,
        next_validation_at=scheduler.next_validation_at(p.id) if p.validation_schedule else None,
        source_connection_name=src.name if src else None,
        target_connection_name=tgt.name if tgt else None,
        last_run=RunPublic.model_validate(last, from_attributes=True) if last else None,
        next_run_at=scheduler.next_run_at(p.id) if p.schedule else None,
    )


def list_pipelines(actor: Actor) -> list[PipelinePublic]:
    """Every pipeline with its state, last run and next scheduled run."""
    require(actor, Action.read)
    with session_scope() as session:
        return [_public(session, p) for p in pipe_db.list_pipelines(session=session)]


def get_pipeline(actor: Actor, pipeline_id: int) -> PipelinePublic:
    """One pipeline."""
    require(actor, Action.read)
    with session_scope() as session:
        return _public(session, stored_pipeline(session, pipeline_id))


def list_runs(actor: Actor, pipeline_id: int, limit: int = 50) -> list[RunPublic]:
    """Run history, newest first; the running run with its rows so far."""
    require(actor, Action.read)
    with session_scope() as session:
        stored_pipeline(session, pipeline_id)
        runs = [
            RunPublic.model_validate(r, from_attributes=True)
            for r in _newest_first(pipe_db.list_runs(session=session, pipeline_id=pipeline_id, limit=limit))
        ]
    live = runner.live_rows(pipeline_id)
    running = next((r for r in runs if r.status == LoadStatus.RUNNING), None)
    if live is not None and running is not None:  # the stored count is written at the end: show the live one
        running.rows_processed = live
    return runs


def _newest_first(runs: list) -> list:
    """Runs by start, newest first; the full load a CDC run did first (its own row, written when the stream
    began, with the CDC run's start) goes below its CDC run."""
    return sorted(runs, key=lambda r: (r.started_at, r.run_type == "CDC", r.id or 0), reverse=True)


def get_status(actor: Actor, pipeline_id: int) -> PipelineStatus:
    """State, load statuses, per-table progress (live while a load runs), health and automatic recovery."""
    require(actor, Action.read)
    with session_scope() as session:
        p = stored_pipeline(session, pipeline_id)
        stored = pipe_db.list_tables(session=session, pipeline_id=pipeline_id)
        tables = [TableStatus.model_validate(t, from_attributes=True) for t in stored]
        live = runner.live_tables(pipeline_id)
        if live:
            tables = [live.get(t.source, t) for t in tables] or list(live.values())
        failed = [t.source for t in tables if t.status == TABLE_FAILED]
        connector = runner.connector_status(pipeline_id)
        retry = _retry_info(session, p, connector)
        return PipelineStatus(
            id=p.id,
            state=p.state,
            full_load_status=p.full_load_status,
            cdc_status=p.cdc_status,
            error_message=p.error_message,
            tables=tables,
            engine=p.engine,
            connector=connector,
            health=_health(p, failed, retry),
            failed_tables=failed,
            retry=retry,
        )


def _retry_info(session, p: Pipeline, connector: dict | None) -> RetryInfo | None:  # noqa: ANN001
    """The pipeline's recovery, None when it has no error and nothing was retried since it was last healthy.
    `last_error`: the pipeline's error, or once running again the error of its last failed run."""
    restarts = (connector or {}).get("restarts")
    restarted = bool(restarts and restarts["count"])
    if p.state != State.ERROR and not p.retry_attempt and p.failing_since is None and not restarted:
        return None
    last_error = p.error_message
    if last_error is None:
        assert p.id is not None  # a stored pipeline
        runs = pipe_db.list_runs(session=session, pipeline_id=p.id, limit=20)
        last_error = next((r.error_message for r in runs if r.status == LoadStatus.FAILED and r.error_message), None)
    return RetryInfo(
        attempt=p.retry_attempt,
        next_at=p.retry_next_at,
        last_error=last_error,
        error_kind=p.error_kind,
        failing_since=p.failing_since,
        connector_restarts=restarts,
    )


def _health(p: Pipeline, failed: list[str], retry: RetryInfo | None) -> str:
    """ok | degraded (tables set aside) | recovering (ERROR, a transient one: it restarts by itself) | failed."""
    if p.state == State.ERROR:
        gave_up = bool(retry and retry.connector_restarts and retry.connector_restarts["gave_up"])
        return "recovering" if p.error_kind == TRANSIENT and not gave_up else "failed"
    return "degraded" if failed else "ok"


def get_progress(actor: Actor, pipeline_id: int) -> PipelineProgress:
    """What the pipeline is doing now: loading (rows and % per table), streaming (live CDC figures),
    retrying (in ERROR with an automatic restart to come) or idle."""
    status = get_status(actor, pipeline_id)
    tables = [
        TableProgress(**t.model_dump(include=set(TableProgress.model_fields)), percent=_percent(t))
        for t in status.tables
    ]
    copied, expected = sum(t.rows_copied for t in tables), sum(t.rows_expected for t in tables)
    return PipelineProgress(
        id=status.id,
        state=status.state,
        phase=_phase(status),
        full_load_status=status.full_load_status,
        cdc_status=status.cdc_status,
        tables=tables,
        rows_copied=copied,
        rows_expected=expected,
        percent=round(min(100.0, 100.0 * copied / expected), 1) if expected else None,
        cdc=runner.cdc_figures(pipeline_id),
        retry=status.retry,
    )


def _percent(t: TableStatus) -> float | None:
    if t.rows_expected > 0:
        return round(min(100.0, 100.0 * t.rows_copied / t.rows_expected), 1)
    return 100.0 if t.status in ("COMPLETED", "STREAMING") else None


def _phase(status: PipelineStatus) -> str:
    if status.state == State.ERROR:
        return "retrying" if status.health == "recovering" else "idle"
    if status.state not in (State.STARTING, State.RUNNING):
        return "idle"
    if status.full_load_status == LoadStatus.RUNNING or any(t.status == "RUNNING" for t in status.tables):
        return "loading"
    return "streaming" if status.cdc_status == CdcStatus.RUNNING else "loading"


# ---------------------------------------------------------------- validation


def _check_fields(data: PipelineCreate) -> None:
    if data.schedule:
        if data.mode != Mode.FULL_LOAD_ONLY:
            raise ValidationFailed("schedule", "only FULL_LOAD_ONLY pipelines run on a schedule")
        scheduler.parse_cron(data.schedule)
    if data.validation_schedule:
        scheduler.parse_cron(data.validation_schedule, field="validation_schedule")
    if data.schema_drift == "propagate_fully" and data.engine != "embedded":
        raise ValidationFailed(
            "schema_change_policy", "propagate_fully (load and stream new tables) needs the embedded engine"
        )
    if data.engine == "kafka_connect":
        if data.mode == Mode.FULL_LOAD_ONLY:
            raise ValidationFailed(
                "engine",
                "the kafka_connect engine streams changes: choose CDC_ONLY or "
                "FULL_LOAD_AND_CDC, or the embedded engine for FULL_LOAD_ONLY",
            )
        settings = get_settings()
        if not settings.kafka_connect_url or not settings.kafka_bootstrap_servers:
            raise ValidationFailed(
                "engine",
                "the kafka_connect engine needs KAFKA_CONNECT_URL and "
                "KAFKA_BOOTSTRAP_SERVERS set for the app; set them and restart, or use embedded",
            )
        if data.sink == "connect":
            _check_jdbc_sink()
    elif data.sink != "studio":
        raise ValidationFailed(
            "sink", "sink 'connect' (a JDBC sink connector on Kafka Connect) needs the kafka_connect engine"
        )


def _check_engine_source(data: PipelineCreate, src: Connection) -> None:
    if data.engine == "kafka_connect" and src.kind not in ("postgresql", "sqlserver"):
        raise ValidationFailed(
            "engine",
            f"the kafka_connect engine takes PostgreSQL and SQL Server sources; "
            f"'{src.name}' is {src.kind}: use the embedded engine",
        )


def _check_jdbc_sink() -> None:
    """Sink `connect` only when the cluster has a JDBC sink plugin; otherwise say which plugins it has."""
    try:
        with connect_client() as client:
            plugins = client.plugins()
    except StudioError as exc:
        raise ValidationFailed("sink", f"cannot list the Connect cluster's plugins: {exc}") from None
    if not any(p.class_name in JDBC_SINKS for p in plugins):
        sinks = [p.class_name for p in plugins if p.type == "sink"] or ["none"]
        raise ValidationFailed(
            "sink",
            "the Kafka Connect cluster has no JDBC sink connector plugin (sink plugins: "
            f"{', '.join(sinks)}); install the Debezium JDBC sink on the workers, or use sink "
            "'studio' (the app applies the changes)",
        )


# ---------------------------------------------------------------- writing


def create_pipeline(actor: Actor, data: PipelineCreate) -> PipelinePublic:
    """Validate against the live source and save; nothing is saved when anything is wrong."""
    require(actor, Action.manage_pipelines)
    _check_fields(data)
    with session_scope() as session:
        if pipe_db.get_pipeline_by_name(session=session, name=data.name):
            raise Conflict(f"a pipeline named '{data.name}' already exists")
        src = connection_for(session, "source_connection_id", data.source_connection_id, "source")
        tgt = connection_for(session, "target_connection_id", data.target_connection_id, "target")
    _check_engine_source(data, src)
    resolved = resolve(data, src, tgt)
    with session_scope() as session:
        if pipe_db.get_pipeline_by_name(session=session, name=data.name):
            raise Conflict(f"a pipeline named '{data.name}' already exists")
        values = data.stored()
        values.update(
            source_database=resolved.source.database,
            target_database=resolved.target.database,
            schedule=data.schedule or None,
            validation_schedule=data.validation_schedule or None,
            created_by=actor.email,
        )
        p = pipe_db.save(session=session, obj=Pipeline(**values))
        p.slot_name = pg_source.new_slot_name(p.id, instance_tag())
        p = pipe_db.save(session=session, obj=p)
        audit.log(
            actor, "pipeline.create", object_type="pipeline", object_id=p.id, target=p.name,
            after=audit.fields(p), session=session,
        )  # fmt: skip
    # After the commit: the job store writes the same SQLite file through its own engine.
    scheduler.set_schedule(p.id, p.schedule)
    scheduler.set_validation_schedule(p.id, p.validation_schedule)
    return get_pipeline(actor, p.id)


def update_pipeline(actor: Actor, pipeline_id: int, data: PipelineUpdate) -> PipelinePublic:
    """Edit a pipeline that is not running; the result is validated like a new one."""
    require(actor, Action.manage_pipelines)
    given = data.model_dump(exclude_unset=True)
    if given.get("schema_change_policy") is not None:  # the API's name of schema_drift
        policy = given.pop("schema_change_policy")
        if given.get("schema_drift") not in (None, policy):
            raise ValidationFailed("schema_change_policy", "schema_change_policy and schema_drift are one setting")
        given["schema_drift"] = policy
    given.pop("schema_change_policy", None)
    with session_scope() as session:
        p = stored_pipeline(session, pipeline_id)
        editable = "edit" in allowed_actions(p.state, p.mode, p.engine) and not runner.is_running(pipeline_id)
        if not editable and set(given) - EDITABLE_WHILE_RUNNING:
            raise Conflict(f"pipeline '{p.name}' is {p.state}; stop it before editing its tables or connections")
        merged = p.model_dump(include=set(PipelineCreate.model_fields)) | given
        if (
            "name" in given
            and given["name"] != p.name
            and pipe_db.get_pipeline_by_name(session=session, name=given["name"])
        ):
            raise Conflict(f"a pipeline named '{given['name']}' already exists")
        candidate = PipelineCreate.model_validate(merged)
        _check_fields(candidate)
        src = connection_for(session, "source_connection_id", candidate.source_connection_id, "source")
        tgt = connection_for(session, "target_connection_id", candidate.target_connection_id, "target")
    _check_engine_source(candidate, src)
    resolve(candidate, src, tgt)
    with session_scope() as session:
        p = stored_pipeline(session, pipeline_id)
        before = audit.fields(p)
        for key, value in candidate.stored().items():
            setattr(p, key, value)
        p.schedule = candidate.schedule or None
        p.validation_schedule = candidate.validation_schedule or None
        p.updated_at = utcnow()
        p = pipe_db.save(session=session, obj=p)
        audit.log(
            actor, "pipeline.update", object_type="pipeline", object_id=p.id, target=p.name, before=before,
            after=audit.fields(p), detail=",".join(sorted(given)), session=session,
        )  # fmt: skip
    scheduler.set_schedule(p.id, p.schedule)
    scheduler.set_validation_schedule(p.id, p.validation_schedule)
    return get_pipeline(actor, p.id)


def delete_pipeline(actor: Actor, pipeline_id: int) -> None:
    """Stop a running load, remove the schedule and delete the pipeline with its history."""
    require(actor, Action.manage_pipelines)
    with session_scope() as session:
        stored_pipeline(session, pipeline_id)
    runner.stop(pipeline_id, wait=True)
    scheduler.remove(pipeline_id)
    scheduler.set_validation_schedule(pipeline_id, None)
    _drop_cdc_objects(pipeline_id)
    runner.forget_pipeline(pipeline_id)
    _forget_offsets(pipeline_id)
    with session_scope() as session:
        p = stored_pipeline(session, pipeline_id)
        name, before = p.name, audit.fields(p)
        pipe_db.delete_pipeline(session=session, pipeline=p)
        audit.log(
            actor, "pipeline.delete", object_type="pipeline", object_id=pipeline_id, target=name, before=before,
            session=session,
        )  # fmt: skip


def _drop_cdc_objects(pipeline_id: int) -> None:
    """Delete the pipeline's connector (kafka_connect) and drop its slot and publication on the source.

    Debezium leaves the slot and publication behind when its connector is deleted; a slot left
    behind makes the source keep WAL forever. If either cannot be removed, the delete is refused.
    """
    with session_scope() as session:
        p = stored_pipeline(session, pipeline_id)
        src = conn_db.get_connection(session=session, connection_id=p.source_connection_id)
    if p.engine == "kafka_connect":
        try:
            delete_connector(pipeline_id)
        except StudioError as exc:
            raise Conflict(
                f"cannot delete the pipeline's connector on Kafka Connect ({exc}); the pipeline is kept: "
                "make the Connect cluster reachable and delete again"
            ) from None
    if src is None or src.kind != "postgresql":
        return
    try:
        drop_source_objects(spec_in(src, p.source_database), pipeline_id, p.slot_name)
    except ConnectorError as exc:
        raise Conflict(
            f"cannot drop the replication slot and publication on the source ({exc}); a slot left "
            "behind makes the source keep WAL forever, so the pipeline is kept: fix the source and "
            "delete again"
        ) from None


def _forget_offsets(pipeline_id: int) -> None:
    """Remove the deleted pipeline's applied positions from its PostgreSQL target (best effort: logged)."""
    with session_scope() as session:
        p = stored_pipeline(session, pipeline_id)
        tgt = conn_db.get_connection(session=session, connection_id=p.target_connection_id)
    if p.mode == Mode.FULL_LOAD_ONLY or tgt is None or tgt.kind != "postgresql":
        return
    try:
        forget_offsets(spec_in(tgt, p.target_database), pipeline_id)
    except StudioError as exc:
        log.warning("pipeline %s: its offsets row on the target was not removed: %s", pipeline_id, exc)


def start_pipeline(actor: Actor, pipeline_id: int, trigger: str = "manual") -> PipelineStatus:
    """Start the pipeline now: its full load, or its CDC (after the full load for FULL_LOAD_AND_CDC).

    Validation runs first: a pipeline that does not validate does not start (422 with its errors; when a
    database could not be reached the refusal is raised from that error, so recovery sees it transient).
    With on_table_error `continue`, tables with errors are refused alone (they end FAILED with the reason).
    `trigger` names who started it in the run history (manual, recovery, recover).
    """
    require(actor, Action.manage_pipelines)
    with session_scope() as session:
        p = stored_pipeline(session, pipeline_id)
        mode, source_kind = (
            p.mode,
            connection_for(session, "source_connection_id", p.source_connection_id, "source").kind,
        )
        engine, name, state = p.engine, p.name, p.state
    if mode != Mode.FULL_LOAD_ONLY and source_kind not in ("postgresql", "sqlserver"):
        raise ValidationFailed("mode", f"CDC from {source_kind} sources ({engine} engine) is not available")
    if runner.is_running(pipeline_id):
        raise Conflict(f"pipeline {pipeline_id} is already running; stop it or wait for the run to end")
    if "start" not in allowed_actions(state, mode, engine):
        hint = "resume it" if state == State.PAUSED else "stop it or wait for the run to end"
        raise Conflict(f"pipeline '{name}' is {state}; {hint}")
    report, cause = _validation(actor, pipeline_id)
    if not report.startable:
        raise NotStartable(report.errors) from cause
    refused = {r.source: "; ".join(r.errors) for r in report.tables if r.errors}
    if mode == Mode.FULL_LOAD_ONLY:
        runner.start_full_load(pipeline_id, trigger=trigger, actor_email=actor.email, refused=refused)
    else:
        runner.start_cdc(pipeline_id, trigger=trigger, actor_email=actor.email, refused=refused)
    action = "pipeline.recover" if trigger in ("recover", "recovery") else "pipeline.start"
    detail = f"{trigger}; refused: {', '.join(sorted(refused))}" if refused else trigger
    return _acted(actor, action, pipeline_id, name, state, detail)


def resync_pipeline(actor: Actor, pipeline_id: int) -> PipelineStatus:
    """Load every table again from a new replication slot, then stream from it (STOPPED or ERROR pipelines of
    the embedded engine on PostgreSQL): what a pipeline whose slot was lost needs, since the changes the slot
    lost cannot be streamed. The old slot is dropped; each target table is emptied and copied under the new
    slot's snapshot (its publication and the target's stored position stay), so nothing is missed or doubled."""
    require(actor, Action.manage_pipelines)
    with session_scope() as session:
        p = stored_pipeline(session, pipeline_id)
        src = connection_for(session, "source_connection_id", p.source_connection_id, "source")
        name, state, mode, engine, slot = p.name, p.state, p.mode, p.engine, p.slot_name
    if mode == Mode.FULL_LOAD_ONLY or engine != "embedded" or src.kind != "postgresql":
        raise ValidationFailed(
            "pipeline", "resync from a new slot is for CDC pipelines of the embedded engine on a PostgreSQL source"
        )
    if runner.is_running(pipeline_id) or "resync" not in allowed_actions(state, mode, engine):
        raise Conflict(f"pipeline '{name}' is {state}; stop it first, then resync")
    spec = load_plan(pipeline_id).source
    dropped = pg_source.drop_slot(spec, slot or pg_source.slot_name(pipeline_id))
    report, cause = _validation(actor, pipeline_id, retrying=True)  # validated as it loads: truncate
    if not report.startable:
        raise NotStartable(report.errors) from cause
    refused = {r.source: "; ".join(r.errors) for r in report.tables if r.errors}
    lifecycle.update_if(pipeline_id, list(State), retry_next_at=None, retry_attempt=0, failing_since=None)
    runner.start_cdc(pipeline_id, trigger="resync", actor_email=actor.email, refused=refused, resync=True)
    detail = f"old slot {'dropped' if dropped else 'was gone'}; every table loads again"
    return _acted(actor, "pipeline.resync", pipeline_id, name, state, detail)


def recover_pipeline(actor: Actor, pipeline_id: int, trigger: str = "recover") -> PipelineStatus:
    """Restart a pipeline in ERROR now, as its planned automatic restart would (409 in any other state).

    One attempt of recovery: it counts (`retry_attempt`, counters.note_retry) and goes through the same
    start as a user's, validation included. A start that fails again is a failed attempt: the error is
    recorded and, when transient, the next restart planned on the backoff; the error is raised. A
    kafka_connect pipeline whose consumer still runs gets its connector's failed tasks restarted instead.
    """
    require(actor, Action.manage_pipelines)
    with session_scope() as session:
        p = stored_pipeline(session, pipeline_id)
        state, name, attempt, mode, engine = p.state, p.name, p.retry_attempt + 1, p.mode, p.engine
    if "recover" not in allowed_actions(state, mode, engine):
        raise Conflict(f"pipeline '{name}' is {state}; only a pipeline in ERROR is recovered")
    if runner.is_running(pipeline_id):  # kafka_connect: the consumer goes on while a connector task FAILED
        return restart_pipeline(actor, pipeline_id, only_failed=True)
    if not lifecycle.update_if(pipeline_id, [State.ERROR], retry_attempt=attempt, retry_next_at=None):
        raise Conflict(f"pipeline '{name}' is no longer in ERROR")
    counters.note_retry(pipeline_id)
    log.info("pipeline %s: recovery attempt %s (%s, by %s)", pipeline_id, attempt, trigger, actor.email)
    try:
        return start_pipeline(actor, pipeline_id, trigger=trigger)
    except Exception as exc:
        if not isinstance(exc, Conflict):  # a Conflict: someone else started or stopped it meanwhile
            fields = runner.failure_fields(pipeline_id, error_kind(exc))
            lifecycle.update_if(pipeline_id, [State.ERROR], error_message=runner.describe_failure(exc), **fields)
        raise


def retry_table(actor: Actor, pipeline_id: int, source: str) -> PipelineStatus:
    """Load one FAILED table again alone, once its cause is fixed; the other tables keep streaming.

    A running CDC pipeline is restarted around the reload (its stream resumes where it was); a stopped
    one reloads the table when it starts; a FULL_LOAD_ONLY pipeline runs a load of just that table.
    """
    require(actor, Action.manage_pipelines)
    with session_scope() as session:
        p = stored_pipeline(session, pipeline_id)
        row = next(
            (t for t in pipe_db.list_tables(session=session, pipeline_id=pipeline_id) if t.source == source), None
        )
        if row is None:
            raise NotFound(f"pipeline '{p.name}' has no table {source}")
        if row.status != TABLE_FAILED:
            raise Conflict(f"table {source} is {row.status}; only a FAILED table is retried")
        mode, state = p.mode, p.state
        if "retry_table" not in allowed_actions(state, mode, p.engine):
            raise Conflict(
                f"retrying one table is available on the embedded engine; pipeline '{p.name}' runs on "
                f"{p.engine}: stop it and start it again to load every table"
            )
    report = validate(actor, pipeline_id, retrying=True)
    table = next((r for r in report.tables if r.source == source), None)
    if table is None:
        raise ValidationFailed("source", f"{source} is no longer part of the pipeline")
    if table.errors or report.errors:
        raise NotStartable(report.errors + table.errors)
    if mode == Mode.FULL_LOAD_ONLY:
        runner.start_full_load(pipeline_id, trigger="retry", actor_email=actor.email, only=[source])
        return _acted(actor, "pipeline.retry_table", pipeline_id, p.name, state, source)
    if state in ACTIVE:
        runner.stop(pipeline_id, wait=True, actor_email=actor.email, restart=True)
    runner.start_cdc(pipeline_id, trigger="retry", actor_email=actor.email, reload=[source])
    return _acted(actor, "pipeline.retry_table", pipeline_id, p.name, state, source)


def reload_table(actor: Actor, pipeline_id: int, source: str) -> PipelineStatus:
    """Copy one table of a streaming pipeline again (e.g. after a data check found it different).

    A PostgreSQL source's stream goes on for the other tables while that one is copied under a fresh snapshot;
    its changes are held meanwhile and those after the snapshot's point applied once the copy is done (none
    lost, none twice: core.cdc.tableload). Other sources restart the stream around the table's load.
    """
    require(actor, Action.manage_pipelines)
    with session_scope() as session:
        p = stored_pipeline(session, pipeline_id)
        names = {t.source for t in pipe_db.list_tables(session=session, pipeline_id=pipeline_id)}
        if source not in names:
            raise NotFound(f"pipeline '{p.name}' has no table {source}")
        name, mode, state, engine = p.name, p.mode, p.state, p.engine
    if mode == Mode.FULL_LOAD_ONLY:
        raise ValidationFailed("mode", "a FULL_LOAD_ONLY pipeline reloads its tables when its load runs again (Start)")
    if engine != "embedded":
        raise ValidationFailed("engine", "reloading one table is available on the embedded engine")
    if state != State.RUNNING:
        raise Conflict(f"pipeline '{name}' is {state}; a table is reloaded while the pipeline streams")
    report = validate(actor, pipeline_id, retrying=True)
    table = next((r for r in report.tables if r.source == source), None)
    if table is None:
        raise ValidationFailed("source", f"{source} is no longer part of the pipeline")
    if table.errors or report.errors:
        raise NotStartable(report.errors + table.errors)
    if not runner.load_while_streaming(pipeline_id, source):
        # Not a PostgreSQL stream (SQL Server): the stream restarts around the table's load.
        runner.stop(pipeline_id, wait=True, actor_email=actor.email, restart=True)
        runner.start_cdc(pipeline_id, trigger="reload", actor_email=actor.email, reload=[source])
    return _acted(actor, "pipeline.reload_table", pipeline_id, name, state, source)


def stop_pipeline(actor: Actor, pipeline_id: int) -> PipelineStatus:
    """Cancel a running load or stream; the pipeline ends STOPPED (a CDC slot is kept for the next start)."""
    require(actor, Action.manage_pipelines)
    with session_scope() as session:
        p = stored_pipeline(session, pipeline_id)
    # A person took over: no automatic restart is planned any more, and the next failure starts a new streak.
    recovery_reset = {"retry_next_at": None, "retry_attempt": 0, "failing_since": None}
    if p.state in (State.PAUSED, State.ERROR) and not runner.is_running(pipeline_id):
        # Nothing runs while paused or in ERROR: the pipeline ends STOPPED at once (a start resumes from its slot).
        cdc = {"cdc_status": CdcStatus.STOPPED} if p.mode != Mode.FULL_LOAD_ONLY else {}
        lifecycle.transition(pipeline_id, State.STOPPED, **cdc, **recovery_reset)
        return _acted(actor, "pipeline.stop", pipeline_id, p.name, p.state)
    lifecycle.update_if(pipeline_id, list(State), **recovery_reset)
    runner.stop(pipeline_id, wait=False, actor_email=actor.email)
    return _acted(actor, "pipeline.stop", pipeline_id, p.name, p.state)


def pause_pipeline(actor: Actor, pipeline_id: int) -> PipelineStatus:
    """Pause a running CDC pipeline: reading stops, the slot keeps the changes for resume."""
    require(actor, Action.manage_pipelines)
    with session_scope() as session:
        p = stored_pipeline(session, pipeline_id)
        if "pause" not in allowed_actions(p.state, p.mode, p.engine):
            raise Conflict(f"only a RUNNING CDC pipeline can be paused ('{p.name}' is {p.state}, {p.mode})")
    runner.stop(pipeline_id, wait=True, actor_email=actor.email, pause=True)
    return _acted(actor, "pipeline.pause", pipeline_id, p.name, p.state)


def resume_pipeline(actor: Actor, pipeline_id: int) -> PipelineStatus:
    """Resume a paused CDC pipeline from where it stopped."""
    require(actor, Action.manage_pipelines)
    with session_scope() as session:
        p = stored_pipeline(session, pipeline_id)
        if "resume" not in allowed_actions(p.state, p.mode, p.engine):
            raise Conflict(f"pipeline '{p.name}' is {p.state}, not PAUSED")
    runner.start_cdc(pipeline_id, trigger="resume", actor_email=actor.email)
    return _acted(actor, "pipeline.resume", pipeline_id, p.name, p.state)


def lag(actor: Actor, pipeline_id: int) -> dict:
    """Events/s, counts and lag: live from the worker while CDC runs, else from the source's slot."""
    p, src, _tgt = _with_connections(actor, pipeline_id)
    figures = runner.cdc_figures(pipeline_id)
    if figures is None:
        figures = {
            "events": 0,
            "insert_count": 0,
            "update_count": 0,
            "delete_count": 0,
            "events_per_second": 0.0,
            "seconds_behind": None,
            "last_commit_time": None,
        }
        slot = None
        if p.mode != Mode.FULL_LOAD_ONLY and src.kind == "postgresql":
            slot = pg_source.slot_status(
                spec_in(src, p.source_database), p.slot_name or pg_source.slot_name(pipeline_id)
            )
        figures.update(
            lag_bytes=slot["lag_bytes"] if slot else None,
            retained_wal_bytes=slot["retained_wal_bytes"] if slot else None,
            slot_active=slot["active"] if slot else None,
            slot_warning=slot_warning(p.state, p.slot_name or pg_source.slot_name(pipeline_id), slot),
        )
    out = {"pipeline_id": pipeline_id, "state": p.state, "cdc_status": p.cdc_status, "engine": p.engine, **figures}
    if p.engine == "kafka_connect":
        connector = runner.connector_status(pipeline_id)
        out["connector"] = connector
        # Connect keeps a connector RUNNING while it quietly retries a source that is down: the worker
        # watches the source side (slot inactive, source unreachable) and says so.
        if connector and connector.get("warning"):
            out["warning"] = connector["warning"]
    return out


def slot_warning(state: str, slot_name: str, slot: dict | None) -> str | None:
    """What a slot nobody reads costs the source, and how to drop it (None: no slot, or it is being read)."""
    if slot is None or slot.get("active") or state in (State.RUNNING, State.STARTING):
        return None
    retained = slot.get("retained_wal_bytes") or 0
    return (
        f"The pipeline is {state} and its replication slot {slot_name} is not read: the source keeps "
        f"{_size(retained)} of WAL for it, and more with every change. Resume or start it to catch up; Delete "
        f"drops the slot, or on the source: SELECT pg_drop_replication_slot('{slot_name}')"
    )


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def restart_pipeline(actor: Actor, pipeline_id: int, only_failed: bool = True) -> PipelineStatus:
    """Restart a kafka_connect pipeline's connector and tasks (by default only what FAILED)."""
    require(actor, Action.manage_pipelines)
    with session_scope() as session:
        p = stored_pipeline(session, pipeline_id)
        if "restart_failed" not in allowed_actions(p.state, p.mode, p.engine):
            raise Conflict(
                f"pipeline '{p.name}' runs on the embedded engine; restart is for kafka_connect pipelines "
                "(stop and start it instead)"
            )
        name, state = p.name, p.state
    with connect_client() as client:
        client.restart(connector_name(pipeline_id), include_tasks=True, only_failed=only_failed)
    return _acted(actor, "pipeline.restart", pipeline_id, name, state, "only_failed" if only_failed else "all")


def _acted(actor: Actor, action: str, pipeline_id: int, name: str, state: str, detail: str = "") -> PipelineStatus:
    """Audit a lifecycle action that was carried out (the state before it and the one it led to), and
    return the pipeline's status."""
    status = get_status(actor, pipeline_id)
    audit.log(
        actor, action, object_type="pipeline", object_id=pipeline_id, target=name, before={"state": str(state)},
        after={"state": str(status.state)}, detail=detail,
    )  # fmt: skip
    return status


# ---------------------------------------------------------------- preview, diff, validate


def _preview_rows(
    p: PipelineCreate, src: Connection, tgt: Connection, resolved: Resolved | None = None, policy: str | None = None
) -> tuple[list[PreviewRow], list[str]]:
    """The preview rows, with what each table's columns will become (generated columns, type fallbacks,
    defaults) as warnings and what would fail as errors; and the problems of checking them at all."""
    resolved = resolved or resolve(p, src, tgt)
    source_conn, target_conn = get_connector(resolved.source), get_connector(resolved.target)
    try:
        existing = {t.name: t for t in target_conn.list_tables(resolved.target.database, p.target_schema)}
    except ConnectorError:
        existing = {}  # the schema does not exist yet: everything will be created
    rows = []
    for info, target_name in resolved.pairs:
        src_detail = source_conn.table_detail(resolved.source.database, p.source_schema, info.name)
        tgt_detail = None
        if target_name in existing:
            tgt_detail = target_conn.table_detail(resolved.target.database, p.target_schema, target_name)
        diff = compare_columns(src_detail, tgt_detail, resolved.target.kind)
        status = {
            "missing": "will_be_created" if p.auto_create else "missing",
            "same": "exists",
            "different": "exists_different",
        }[diff["status"]]
        rows.append(
            PreviewRow(
                source=f"{p.source_schema}.{info.name}",
                target=f"{p.target_schema}.{target_name}",
                target_status=status,
                row_count=info.row_count,
                has_primary_key=info.has_primary_key,
                size_bytes=info.size_bytes,
                differences=diff if diff["status"] == "different" else None,
            )
        )
    return rows, pipeline_checks.add_findings(_setup(p, resolved, policy), rows)


def _setup(p: PipelineCreate | Pipeline, resolved: Resolved, policy: str | None = None) -> pipeline_checks.Setup:
    return pipeline_checks.Setup(
        source=resolved.source,
        target=resolved.target,
        source_schema=p.source_schema,
        target_schema=p.target_schema,
        mode=p.mode,
        policy=policy or p.target_table_policy,
        auto_create=p.auto_create,
        schema_drift=p.schema_drift,
        slot=getattr(p, "slot_name", None),
    )


def _with_connections(actor: Actor, pipeline_id: int) -> tuple[Pipeline, Connection, Connection]:
    require(actor, Action.read)
    with session_scope() as session:
        p = stored_pipeline(session, pipeline_id)
        src = connection_for(session, "source_connection_id", p.source_connection_id, "source")
        tgt = connection_for(session, "target_connection_id", p.target_connection_id, "target")
        return p, src, tgt


def preview(actor: Actor, pipeline_id: int) -> list[PreviewRow]:
    """Source table -> target table, whether it will be created / exists / differs, rows, PK."""
    p, src, tgt = _with_connections(actor, pipeline_id)
    request = stored_request(p)
    resolved = resolve(request, src, tgt)
    policy = p.target_table_policy if _will_load(p, resolved.source) else "append"  # judged where a load runs
    return _preview_rows(request, src, tgt, resolved, policy)[0]


def preview_request(actor: Actor, data: PipelineCreate) -> list[PreviewRow]:
    """The preview of a pipeline not saved yet (the wizard's mapping step)."""
    require(actor, Action.read)
    with session_scope() as session:
        src = connection_for(session, "source_connection_id", data.source_connection_id, "source")
        tgt = connection_for(session, "target_connection_id", data.target_connection_id, "target")
    return _preview_rows(data, src, tgt)[0]


def schema_diff(actor: Actor, pipeline_id: int) -> list[PreviewRow]:
    """The tables whose target is missing (to be created) or has different columns, with the differences."""
    return [r for r in preview(actor, pipeline_id) if r.target_status != "exists"]


def validate(actor: Actor, pipeline_id: int, retrying: bool = False) -> ValidationReport:
    """Everything that would make a run fail, per table and for the pipeline, as errors; what deserves a
    look as warnings. `startable` says whether a start is accepted (see ValidationReport).

    The target table policy is judged only where a load will run: not for CDC_ONLY, nor for a CDC
    pipeline that resumes from its slot; a retried table is loaded again with `truncate`.
    """
    return _validation(actor, pipeline_id, retrying)[0]


def _validation(actor: Actor, pipeline_id: int, retrying: bool = False) -> tuple[ValidationReport, StudioError | None]:
    """validate(), with the error that stopped it from checking the tables at all (None when it checked them)."""
    p, src, tgt = _with_connections(actor, pipeline_id)
    request = stored_request(p)
    try:
        resolved = resolve(request, src, tgt)
        policy = "truncate" if retrying else p.target_table_policy if _will_load(p, resolved.source) else "append"
        rows, problems = _preview_rows(request, src, tgt, resolved, policy)
    except (ValidationFailed, ConnectorError) as exc:
        return ValidationReport(ok=False, errors=[str(exc)], warnings=[], startable=False), exc
    checked = pipeline_checks.check(_setup(p, resolved, policy), rows)
    checked.errors += problems
    for r in rows:
        if r.target_status == "exists_different" and p.target_table_policy != "drop_recreate":
            r.warnings.insert(0, f"{r.target} exists with different columns: {describe_differences(r.differences)}")
    errors = checked.errors + [e for r in rows for e in r.errors]
    warnings = checked.warnings + [w for r in rows for w in r.warnings]
    report = ValidationReport(
        ok=not errors,
        errors=errors,
        warnings=warnings,
        tables=rows,
        startable=pipeline_checks.startable(checked.errors, rows, p.on_table_error),
    )
    return report, None


def _will_load(p: Pipeline, source: ConnectionSpec) -> bool:
    """Whether a start runs a full load: FULL_LOAD_ONLY always, FULL_LOAD_AND_CDC unless it resumes its slot."""
    if p.mode == Mode.FULL_LOAD_ONLY:
        return True
    if p.mode == Mode.CDC_ONLY or source.kind != "postgresql":
        return p.mode == Mode.FULL_LOAD_AND_CDC and p.full_load_status != LoadStatus.COMPLETED
    assert p.id is not None  # a stored pipeline
    return pg_source.slot_status(source, p.slot_name or pg_source.slot_name(p.id)) is None


def describe_differences(diff: dict | None) -> str:
    """Column differences of a preview row in words."""
    if not diff:
        return ""
    parts = []
    if diff.get("added"):
        parts.append("missing in target: " + ", ".join(diff["added"]))
    if diff.get("removed"):
        parts.append("only in target: " + ", ".join(diff["removed"]))
    for c in diff.get("changed", []):
        parts.append(f"{c['name']} {c['source_type']} -> {c['target_type']}")
    return "; ".join(parts)
