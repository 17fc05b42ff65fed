"""Data checks: prove a pipeline's target equals its source, table by table, while CDC keeps running.

`start_check` validates the request and runs the check in a thread of its own (one per pipeline at a time).
Each table goes PENDING -> VALIDATING -> VALIDATED | MISMATCHED | SUSPENDED | NO_PRIMARY_KEY | ERROR. A CDC
pipeline must be streaming: each read takes the target, then the source (core.datacheck.engine), and the
differences found are read again `RECHECKS` times, spaced by `recheck_after_seconds` (by default the larger
of CDC_STUDIO_VALIDATION_RECHECK_S, 300 s, and twice the lag); only a difference that reads the same every
time counts: a row that was in flight has arrived or changed again by then. A check whose pipeline stops
streaming fails (nothing would arrive any more). A table is not validated while the pipeline is more than
LAG_LIMIT_S behind (it waits). Confirmed mismatches are kept (values of secret-looking columns masked) and
raise the pipeline's data_mismatch alert on that table; a table found equal resolves it.

PostgreSQL to PostgreSQL on the embedded engine for now (core.datacheck.engine).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from core import audit, pipelines, runner
from core.app_settings import can_see_data
from core.cdc import pg_source
from core.config import get_settings
from core.datacheck.engine import NoPrimaryKey, SideReader, Suspended, TableValidator
from core.datacheck.readers import open_reader
from core.datacheck.repair import resync_rows
from core.errors import Conflict, NotFound, StudioError, ValidationFailed
from core.fullload import TablePlan
from core.lifecycle import BUSY, CdcStatus, Mode, State
from core.monitoring import alerts
from core.plans import connection_for, load_plan, stored_pipeline
from core.security import Action, require
from core.users import Actor
from data import datachecks as store
from data import schema_history as schema_store
from data.db import session_scope
from data.models import DataCheck, DataMismatch, utcnow

log = logging.getLogger(__name__)

RECHECKS = 2
LAG_LIMIT_S = 60.0  # the lag_seconds rule's warning threshold: validation waits while the pipeline is behind more
LAG_WAIT_S = 1800.0

TableState = Literal["PENDING", "VALIDATING", "VALIDATED", "MISMATCHED", "SUSPENDED", "NO_PRIMARY_KEY", "ERROR"]


class DataCheckCreate(BaseModel):
    tables: list[str] | None = Field(None, description="source tables (schema.table or table); all when left out")
    mode: Literal["counts", "full"] = "full"
    recheck_after_seconds: float | None = Field(
        None, ge=0, le=86400, description="spacing of the rechecks of a difference (default max(300, 2 x lag))"
    )


class DataCheckCreated(BaseModel):
    id: int


class DataCheckTablePublic(BaseModel):
    table: str
    state: str
    source_rows: int | None
    target_rows: int | None
    mismatched_rows: int
    segments: int
    detail: str
    validated_at: datetime | None


class DataCheckPublic(BaseModel):
    id: int
    pipeline_id: int
    mode: str
    status: str  # running | completed | failed
    error: str | None
    recheck_after_seconds: float | None
    created_by: str | None
    started_at: datetime
    finished_at: datetime | None
    tables: list[DataCheckTablePublic]


class MismatchPublic(BaseModel):
    table: str
    key: dict[str, Any]
    kind: str  # missing | extra | different
    columns: list[str]
    source: dict[str, Any] | None
    target: dict[str, Any] | None
    data_withheld: bool = False  # row data is shown only to roles allowed to see it


class DataQualityRow(BaseModel):
    table: str
    state: str
    source_rows: int | None
    target_rows: int | None
    mismatched_rows: int
    last_validated_at: datetime | None
    schema_changes: int  # source schema changes detected on the table (its schema history)
    check_id: int | None = None  # the check these figures come from (its mismatches: .../data-checks/{id}/...)


SCHEDULE_ACTOR = Actor(id=0, email="scheduler", role="editor")  # who a validation_schedule's checks run as
_threads: dict[int, threading.Thread] = {}
_stop = threading.Event()


# ---------------------------------------------------------------- requests


def start_check(actor: Actor, pipeline_id: int, data: DataCheckCreate) -> DataCheckCreated:
    require(actor, Action.manage_pipelines)
    with session_scope() as session:
        p = stored_pipeline(session, pipeline_id)
        src = connection_for(session, "source_connection_id", p.source_connection_id, "source")
        tgt = connection_for(session, "target_connection_id", p.target_connection_id, "target")
        name, mode, engine, state, cdc_status = p.name, p.mode, p.engine, p.state, p.cdc_status
    if tgt.kind != "postgresql" or src.kind not in ("postgresql", "sqlserver"):
        raise ValidationFailed(
            "pipeline", "data checks compare a PostgreSQL or SQL Server source with a PostgreSQL target"
        )
    if mode != Mode.FULL_LOAD_ONLY:
        if engine != "embedded":
            raise ValidationFailed("engine", "data checks of a CDC pipeline need the embedded engine")
        if state != State.RUNNING or cdc_status != CdcStatus.RUNNING:
            raise Conflict(
                f"pipeline '{name}' is not streaming ({state}): its target is behind its source until it "
                "runs, so a check would only find the changes it has not applied yet; start or resume it first"
            )
    elif state in BUSY:
        raise Conflict(f"pipeline '{name}' is loading; check it when the load has finished")
    plans = load_plan(pipeline_id).tables
    chosen = _chosen(plans, data.tables)
    with session_scope() as session:
        if store.running_check(session=session, pipeline_id=pipeline_id) is not None:
            raise Conflict(f"a data check of pipeline '{name}' is already running")
        check = DataCheck(
            pipeline_id=pipeline_id,
            mode=data.mode,
            tables=[t.source for t in chosen] if data.tables else [],
            recheck_after_seconds=data.recheck_after_seconds,
            created_by=actor.email,
        )
        check = store.add_check(session=session, check=check, tables=[t.source for t in chosen])
        assert check.id is not None
        check_id = check.id
        audit.log(
            actor, "pipeline.data_check", object_type="pipeline", object_id=pipeline_id, target=name,
            detail=f"check {check_id}, {data.mode}, {len(chosen)} table(s)", session=session,
        )  # fmt: skip
    thread = threading.Thread(
        target=_run, args=(check_id, pipeline_id, chosen), name=f"data-check-{check_id}", daemon=True
    )
    _threads[check_id] = thread
    thread.start()
    return DataCheckCreated(id=check_id)


def _chosen(plans: list[TablePlan], wanted: list[str] | None) -> list[TablePlan]:
    if not wanted:
        return plans
    by_name = {t.source: t for t in plans} | {t.source_table: t for t in plans}
    unknown = [w for w in wanted if w not in by_name]
    if unknown:
        raise ValidationFailed("tables", f"not part of the pipeline: {', '.join(unknown)}")
    out: list[TablePlan] = []
    for w in wanted:
        if by_name[w] not in out:
            out.append(by_name[w])
    return out


def get_check(actor: Actor, pipeline_id: int, check_id: int) -> DataCheckPublic:
    require(actor, Action.read)
    with session_scope() as session:
        check = _check_of(session, pipeline_id, check_id)
        rows = store.tables_of(session=session, check_id=check_id)
        return DataCheckPublic(
            **check.model_dump(include=set(DataCheckPublic.model_fields) - {"tables"}),
            tables=[DataCheckTablePublic.model_validate(r, from_attributes=True) for r in rows],
        )


def mismatches(
    actor: Actor, pipeline_id: int, check_id: int, table: str | None = None, limit: int = 100
) -> list[MismatchPublic]:
    require(actor, Action.read)
    see = can_see_data(actor)
    with session_scope() as session:
        _check_of(session, pipeline_id, check_id)
        found = store.list_mismatches(session=session, check_id=check_id, table=table, limit=max(1, min(limit, 1000)))
        out = []
        for m in found:
            row = MismatchPublic.model_validate(m, from_attributes=True)
            if not see:
                row = row.model_copy(update={"source": None, "target": None, "data_withheld": True})
            out.append(row)
        return out


def data_quality(actor: Actor, pipeline_id: int) -> list[DataQualityRow]:
    """Per table of the pipeline: the state and counts of its newest check (NOT_VALIDATED when never checked)."""
    require(actor, Action.read)
    plans = load_plan(pipeline_id).tables
    with session_scope() as session:
        stored_pipeline(session, pipeline_id)
        latest = {r.table: r for r in store.latest_tables(session=session, pipeline_id=pipeline_id)}
        drift = schema_store.counts_by_table(session=session, pipeline_id=pipeline_id)
    out = []
    for t in plans:
        r = latest.get(t.source)
        out.append(
            DataQualityRow(
                table=t.source,
                state=r.state if r else "NOT_VALIDATED",
                source_rows=r.source_rows if r else None,
                target_rows=r.target_rows if r else None,
                mismatched_rows=r.mismatched_rows if r else 0,
                last_validated_at=r.validated_at if r else None,
                schema_changes=drift.get(t.source, 0),
                check_id=r.check_id if r else None,
            )
        )
    return out


class ResyncRequest(BaseModel):
    mode: Literal["reload", "rows", "validate_only"] = "rows"
    check_id: int | None = Field(None, description="rows: the check whose mismatched rows to fix (default: the newest)")


class ResyncResult(BaseModel):
    table: str
    mode: str
    check_id: int | None = None  # rows: the check whose rows were fixed; validate_only: the check started
    rows: int | None = None  # rows: how many keys were written from the source
    state: str | None = None  # reload: the pipeline's state after the restart around the reload


def resync_table(actor: Actor, pipeline_id: int, table: str, request: ResyncRequest) -> ResyncResult:
    """Repair one table: `rows` writes the mismatched rows of a check from the source (ordered against the
    stream, see core.datacheck.repair), `reload` copies the table again while the pipeline streams,
    `validate_only` starts a data check of just that table."""
    require(actor, Action.manage_pipelines)
    plan = load_plan(pipeline_id)
    try:
        (chosen,) = _chosen(plan.tables, [table])
    except ValidationFailed:
        raise NotFound(f"pipeline {pipeline_id} has no table {table}") from None
    if request.mode == "validate_only":
        created = start_check(actor, pipeline_id, DataCheckCreate(tables=[chosen.source]))
        return ResyncResult(table=chosen.source, mode=request.mode, check_id=created.id)
    if request.mode == "reload":
        status = pipelines.reload_table(actor, pipeline_id, chosen.source)
        return ResyncResult(table=chosen.source, mode=request.mode, state=str(status.state))
    with session_scope() as session:
        name = stored_pipeline(session, pipeline_id).name
        check_id = request.check_id
        if check_id is None:
            latest = {r.table: r for r in store.latest_tables(session=session, pipeline_id=pipeline_id)}
            row = latest.get(chosen.source)
            check_id = row.check_id if row is not None and row.mismatched_rows else None
        else:
            _check_of(session, pipeline_id, check_id)
        found = (
            store.list_mismatches(session=session, check_id=check_id, table=chosen.source, limit=1000)
            if check_id is not None
            else []
        )
        keys = [dict(m.key) for m in found]
    if not keys:
        raise Conflict(f"no mismatched rows of {chosen.source} to resync; validate the table first")
    written = resync_rows(
        plan.source, plan.target, (chosen.source_schema, chosen.source_table),
        (chosen.target_schema, chosen.target_table), keys,
    )  # fmt: skip
    audit.log(
        actor, "pipeline.resync_rows", object_type="pipeline", object_id=pipeline_id, target=name,
        detail=f"{chosen.source}: {written} row(s) from check {check_id}",
    )  # fmt: skip
    return ResyncResult(table=chosen.source, mode=request.mode, check_id=check_id, rows=written)


def latest_check(actor: Actor, pipeline_id: int) -> DataCheckPublic | None:
    """The pipeline's newest data check (running or done), None when it never had one."""
    require(actor, Action.read)
    with session_scope() as session:
        stored_pipeline(session, pipeline_id)
        check = store.latest_check(session=session, pipeline_id=pipeline_id)
        check_id = check.id if check else None
    return None if check_id is None else get_check(actor, pipeline_id, check_id)


def _check_of(session, pipeline_id: int, check_id: int) -> DataCheck:  # noqa: ANN001
    check = store.get_check(session=session, check_id=check_id)
    if check is None or check.pipeline_id != pipeline_id:
        raise NotFound(f"pipeline {pipeline_id} has no data check {check_id}")
    return check


# ---------------------------------------------------------------- the run


def _update_table(check_id: int, table: str, **values: Any) -> None:
    with session_scope() as session:
        row = store.table_row(session=session, check_id=check_id, table=table)
        if row is None:
            return
        for k, v in values.items():
            setattr(row, k, v)
        session.add(row)


def _finish(check_id: int, status: str, error: str | None = None) -> None:
    with session_scope() as session:
        check = store.get_check(session=session, check_id=check_id)
        if check is None:
            return
        check.status, check.error, check.finished_at = status, error, utcnow()
        session.add(check)
    _threads.pop(check_id, None)


class _Context:
    """What a check's waits need: the pipeline, its source and slot, and how far behind it is."""

    def __init__(self, pipeline_id: int) -> None:
        self.pipeline_id = pipeline_id
        with session_scope() as session:
            p = stored_pipeline(session, pipeline_id)
            self.streaming = p.mode != Mode.FULL_LOAD_ONLY
            self.slot = p.slot_name or pg_source.slot_name(pipeline_id)
        self.plan = load_plan(pipeline_id)

    def lag_seconds(self) -> float:
        figures = runner.cdc_figures(self.pipeline_id) or {}
        return float(figures.get("seconds_behind") or 0.0)

    def spacing(self, asked: float | None) -> float:
        if asked is not None:
            return asked
        if not self.streaming:
            return 0.0  # nothing is in flight: one recheck at once filters a write that raced the read
        return max(get_settings().validation_recheck_s, 2 * self.lag_seconds())

    def still_streaming(self) -> None:
        if not self.streaming:
            return
        with session_scope() as session:
            p = stored_pipeline(session, self.pipeline_id)
            if p.state != State.RUNNING:
                raise StudioError(f"the pipeline stopped streaming during the check ({p.state})")

    def wait_lag(self, check_id: int, table: str) -> None:
        if not self.streaming:
            return
        deadline = time.monotonic() + LAG_WAIT_S
        while (lag := self.lag_seconds()) > LAG_LIMIT_S:
            _update_table(
                check_id, table, detail=f"waiting: the pipeline is {lag:.0f} s behind (more than {LAG_LIMIT_S:.0f} s)"
            )
            if time.monotonic() > deadline:
                raise StudioError(f"skipped: the pipeline stayed more than {LAG_LIMIT_S:.0f} s behind")
            if _stop.wait(5.0):
                raise StudioError("the app is stopping")

    def pause(self, seconds: float) -> None:
        if _stop.wait(seconds):
            raise StudioError("the app is stopping")


def _run(check_id: int, pipeline_id: int, tables: list[TablePlan]) -> None:
    try:
        with session_scope() as session:
            check = store.get_check(session=session, check_id=check_id)
            assert check is not None
            mode, asked = check.mode, check.recheck_after_seconds
        ctx = _Context(pipeline_id)
        failed = 0
        for plan in tables:
            if not _check_table(ctx, check_id, plan, mode, asked):
                failed += 1
        if failed:
            _finish(check_id, "failed", f"{failed} of {len(tables)} table(s) could not be validated")
        else:
            _finish(check_id, "completed")
    except Exception as exc:  # noqa: BLE001 - recorded on the check
        log.exception("data check %s of pipeline %s failed", check_id, pipeline_id)
        _finish(check_id, "failed", str(exc) if isinstance(exc, StudioError) else "unexpected error (see the log)")


def _check_table(ctx: _Context, check_id: int, plan: TablePlan, mode: str, asked: float | None) -> bool:
    """Validate one table; False when it ended in ERROR."""
    table = plan.source
    source: SideReader | None = None
    target: SideReader | None = None
    validator: TableValidator | None = None
    try:
        ctx.wait_lag(check_id, table)
        _update_table(check_id, table, state="VALIDATING", detail="counting")
        source = open_reader(ctx.plan.source, is_source=True, streaming=ctx.streaming)
        target = open_reader(ctx.plan.target, is_source=False, streaming=ctx.streaming)
        validator = TableValidator(
            source,
            target,
            (plan.source_schema, plan.source_table),
            (plan.target_schema, plan.target_table),
            on_segment=lambda r: _update_table(check_id, table, segments=r.segments),
        )
        counted = mode == "counts" or not validator.one_pass()  # else the checksums' scan counts them too
        if counted:
            s_rows, t_rows = validator.counts()
            _update_table(check_id, table, source_rows=s_rows, target_rows=t_rows)
        spacing = ctx.spacing(asked)
        rechecks = RECHECKS if ctx.streaming else 1
        if mode == "counts":
            _counts_only(ctx, check_id, table, validator, (s_rows, t_rows), spacing, rechecks)
            return True
        _update_table(check_id, table, detail="comparing checksums of key segments")
        suspended = False
        try:
            result = validator.find_differences()
        except Suspended:
            suspended, result = True, validator.result
        if not counted:
            s_rows, t_rows = result.source_rows, result.target_rows
            _update_table(check_id, table, source_rows=s_rows, target_rows=t_rows)
        candidates = dict(list(result.candidates.items())[:1000])
        for n in range(rechecks):
            if not candidates:
                break
            _update_table(
                check_id,
                table,
                detail=f"{len(candidates)} row(s) differ: recheck {n + 1} of {rechecks} in {spacing:.0f} s",
            )
            ctx.pause(spacing)
            ctx.still_streaming()  # a stopped stream leaves its in-flight changes as stable differences
            candidates = validator.recheck(candidates)
        state = "SUSPENDED" if suspended else ("MISMATCHED" if candidates else "VALIDATED")
        _settle(ctx, check_id, table, state, len(candidates), s_rows, t_rows, list(candidates.values()), validator)
        return True
    except NoPrimaryKey as exc:
        _update_table(check_id, table, state="NO_PRIMARY_KEY", detail=str(exc), validated_at=utcnow())
        return True
    except StudioError as exc:
        _update_table(check_id, table, state="ERROR", detail=str(exc))
        return False
    finally:
        if validator is not None:
            validator.close()
        for reader in (source, target):
            if reader is not None:
                reader.close()


def _counts_only(
    ctx: _Context,
    check_id: int,
    table: str,
    validator: TableValidator,
    counts: tuple[int, int],
    spacing: float,
    rechecks: int,
) -> None:
    """Mode `counts`: counts that differ are read again (spaced like rechecks) before they count."""
    s_rows, t_rows = counts
    for _ in range(rechecks):
        if s_rows == t_rows:
            break
        _update_table(check_id, table, detail=f"counts differ: reading again in {spacing:.0f} s")
        ctx.pause(spacing)
        ctx.still_streaming()
        s_rows, t_rows = validator.counts()
    differ = abs(s_rows - t_rows)
    state = "MISMATCHED" if differ else "VALIDATED"
    _settle(ctx, check_id, table, state, differ, s_rows, t_rows, [], validator)


def _settle(
    ctx: _Context,
    check_id: int,
    table: str,
    state: str,
    differ: int,
    s_rows: int,
    t_rows: int,
    found: list,
    validator: TableValidator,
) -> None:
    """Record the table's outcome, its mismatched rows, and raise or resolve its data_mismatch alert."""
    with session_scope() as session:
        store.add_mismatches(
            session=session,
            mismatches=[
                DataMismatch(
                    check_id=check_id,
                    table=table,
                    key=validator.key_dict(d.key),
                    kind=d.kind,
                    columns=d.columns,
                    source=d.source,
                    target=d.target,
                )
                for d in found
            ],
        )
    detail = {
        "VALIDATED": "the target equals the source",
        "MISMATCHED": f"{differ} row(s) differ from the source",
        "SUSPENDED": f"suspended: more than 1000 rows differ ({differ} kept)",
    }[state]
    _update_table(
        check_id, table, state=state, mismatched_rows=differ, source_rows=s_rows, target_rows=t_rows,
        detail=detail, validated_at=utcnow(),
    )  # fmt: skip
    if state == "VALIDATED":
        alerts.clear_condition(ctx.pipeline_id, "data_mismatch", table)
    else:
        message = f"{table}: {detail} (data check {check_id})"
        alerts.raise_condition(ctx.pipeline_id, "data_mismatch", table, float(differ), message)


def fail_interrupted() -> None:
    """Checks a previous process left running end failed (their threads are gone)."""
    with session_scope() as session:
        for check in store.running_checks(session=session):
            if check.id not in _threads:
                check.status, check.error, check.finished_at = "failed", "interrupted: the app stopped", utcnow()
                session.add(check)


def stop_all(timeout: float = 10.0) -> None:
    """Stop the running checks (they end failed) and wait for their threads."""
    _stop.set()
    for thread in list(_threads.values()):
        thread.join(timeout)
    _stop.clear()


def run_scheduled_check(pipeline_id: int) -> None:
    """The scheduler's job body (core.scheduler.VALIDATION_JOB): a full data check of every table of the
    pipeline, started as the system; one that cannot start now (not streaming, a check already running, the
    pipeline gone) is logged and skipped until the next time the schedule fires."""
    try:
        created = start_check(SCHEDULE_ACTOR, pipeline_id, DataCheckCreate(mode="full"))
    except (Conflict, NotFound, ValidationFailed) as exc:
        log.info("scheduled data check of pipeline %s skipped: %s", pipeline_id, exc)
        return
    log.info("scheduled data check %s of pipeline %s started", created.id, pipeline_id)
