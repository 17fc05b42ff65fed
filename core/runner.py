"""Runs full loads and CDC streams on worker threads: one run per pipeline at a time, cancellable, observable.

It takes what core.plans resolves (a LoadPlan, a CdcPlan) and moves the pipeline through its states
with core.lifecycle; it also holds the scheduler's job body (`run_scheduled_load`, referred to by name).

Progress goes three ways: an in-memory table for the status API, the event bus for live pages,
and the app database (throttled) so history survives. Nothing here touches UI elements.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from core import lifecycle, schema_history
from core.cdc.engine import CdcWorker, lag_dict
from core.config import get_settings
from core.errors import TERMINAL, TRANSIENT, Conflict, NotFound, error_kind
from core.events import Event, bus
from core.fullload import run_full_load
from core.fullload.model import FAILED as TABLE_FAILED
from core.fullload.model import PENDING as TABLE_PENDING
from core.fullload.model import RUNNING as TABLE_RUNNING
from core.kafka.engine import KafkaCdcWorker
from core.lifecycle import CdcStatus, LoadStatus, Mode, State
from core.monitoring import counters
from core.pipeline_schemas import TableStatus
from core.plans import CdcPlan, cdc_plan, load_plan, pair
from data import pipelines as pipe_db
from data.db import session_scope
from data.models import PipelineRun, PipelineTable, utcnow

log = logging.getLogger(__name__)

PERSIST_EVERY_S = 2.0


class Worker(Protocol):
    """What the runner needs of a CDC engine (core.cdc.engine.CdcWorker, core.kafka.engine.KafkaCdcWorker)."""

    @property
    def full_load_status(self) -> str | None: ...

    @property
    def counters(self) -> Any: ...  # core.cdc.engine's counters: what lag_dict reads

    def run(self) -> None: ...

    def finish(self, paused: bool) -> None: ...


@dataclass
class ActiveRun:
    """A load in progress: its thread, its cancel flag and the live per-table progress."""

    pipeline_id: int
    run_id: int
    cancel: threading.Event = field(default_factory=threading.Event)
    tables: dict[str, TableStatus] = field(default_factory=dict)
    thread: threading.Thread | None = None
    kind: str = "FULL_LOAD"  # or CDC
    worker: Worker | None = None  # while CDC runs: a CdcWorker, a KafkaCdcWorker for kafka_connect
    pausing: bool = False
    stopping: bool = False  # a stop (or pause) was asked: it wins over an app stop that follows
    streaming: bool = False  # CDC reached its stream (after any full load)
    connector_failed: bool = False
    shutting_down: bool = False  # the app stops: CDC ends here but resumes at the next start
    refused: dict[str, str] = field(default_factory=dict)  # tables validation refused at this start -> reason
    reload: list[str] = field(default_factory=list)  # tables to load again alone (a retry)
    resync: bool = False  # CDC: every table loads again under a new slot's snapshot
    _persisted_at: dict[str, float] = field(default_factory=dict)

    def join(self, timeout: float | None = None) -> None:
        if self.thread is not None:
            self.thread.join(timeout)


_active: dict[int, ActiveRun] = {}
_lock = threading.Lock()
_app_stopping = threading.Event()  # set by stop_all: recovery starts nothing while the app stops
CONNECTOR_RESTARTS_PER_HOUR = 10
_connector_restarts: dict[int, list[datetime]] = {}  # pipeline -> its automatic task restarts in the last hour


def app_stopping() -> bool:
    """Whether the app is stopping (stop_all ran and no start since): nothing is to be started now."""
    return _app_stopping.is_set()


def services_starting() -> None:
    """The app's services start (again, in tests that start and stop them within one process): runs may start."""
    _app_stopping.clear()


def is_running(pipeline_id: int) -> bool:
    with _lock:
        return pipeline_id in _active


def live_tables(pipeline_id: int) -> dict[str, TableStatus]:
    """Per-table progress of the running load (empty when none runs)."""
    with _lock:
        run = _active.get(pipeline_id)
        return dict(run.tables) if run else {}


def _set_state(active: ActiveRun, to: State, **fields: object) -> None:
    """Move the run's pipeline to `to` (see core.lifecycle). A pipeline deleted meanwhile is left alone;
    a move the state no longer allows because a stop was asked meanwhile (RUNNING once STOPPING) is
    skipped: the stop wins."""
    try:
        lifecycle.transition(active.pipeline_id, to, **fields)
    except NotFound:
        log.info("pipeline %s was deleted while it ran", active.pipeline_id)
    except Conflict as exc:
        if not (active.stopping or active.cancel.is_set()):
            raise
        log.info("pipeline %s: %s; its stop goes on", active.pipeline_id, exc)


def start_full_load(
    pipeline_id: int,
    trigger: str = "manual",
    actor_email: str | None = None,
    refused: dict[str, str] | None = None,
    only: list[str] | None = None,
) -> ActiveRun:
    """Begin a full load on a worker thread; Conflict if this pipeline already runs one.

    `refused` tables (validation said why) end FAILED without loading; `only`: load just these tables (a
    retry), keeping the others' last results.
    """
    active = _begin(pipeline_id, "FULL_LOAD", trigger, full_load_status=LoadStatus.RUNNING)
    active.refused, active.reload = dict(refused or {}), list(only or [])
    _launch(active, _execute, f"full-load-{pipeline_id}")
    log.info("full load of pipeline %s started (%s, by %s)", pipeline_id, trigger, actor_email or "-")
    return active


def _begin(pipeline_id: int, kind: str, trigger: str, **status: str) -> ActiveRun:
    """Register a run (Conflict if one is active), mark the pipeline STARTING and record the run."""
    with _lock:
        if pipeline_id in _active:
            raise Conflict(f"pipeline {pipeline_id} is already running; stop it or wait for the run to end")
        lifecycle.transition(pipeline_id, State.STARTING, error_message=None, retry_next_at=None, **status)
        with session_scope() as session:
            run = pipe_db.save(
                session=session, obj=PipelineRun(pipeline_id=pipeline_id, trigger=trigger, run_type=kind)
            )
        active = ActiveRun(pipeline_id=pipeline_id, run_id=run.id, kind=kind)
        _active[pipeline_id] = active
    return active


def _launch(active: ActiveRun, target, name: str) -> None:  # noqa: ANN001
    active.thread = threading.Thread(target=target, args=(active,), name=name, daemon=True)
    active.thread.start()


def stop(
    pipeline_id: int,
    wait: bool = False,
    actor_email: str | None = None,
    timeout: float = 60,
    pause: bool = False,
    restart: bool = False,
) -> None:
    """Ask a running load or CDC stream to end (optionally waiting); with `pause` it ends PAUSED; with
    `restart` a CDC stream ends as at an app stop (still RUNNING), to be started again at once."""
    with _lock:
        active = _active.get(pipeline_id)
    if active is None:
        return
    active.pausing = pause
    if restart:
        active.shutting_down = True
    else:
        active.stopping = True
        _set_state(active, State.STOPPING)  # skipped when the run ended meanwhile
    active.cancel.set()
    log.info("stop of pipeline %s requested by %s", pipeline_id, actor_email or "-")
    if wait:
        active.join(timeout)


def stop_all(timeout: float = 30) -> None:
    """Cancel every running load (app shutdown)."""
    _app_stopping.set()
    with _lock:
        runs = list(_active.values())
    for r in runs:
        r.shutting_down = True
        r.cancel.set()
    deadline = time.monotonic() + timeout
    for r in runs:
        r.join(max(0.1, deadline - time.monotonic()))
    with _lock:  # the process's record of automatic task restarts ends with it (a new app counts anew)
        _connector_restarts.clear()


def describe_failure(exc: BaseException) -> str:
    """The message a failed run leaves on the pipeline: the error's words and, for an error a retry does not
    cure, what a person does about it."""
    message = str(exc) or type(exc).__name__
    fix = getattr(exc, "fix", "")
    return f"{message} — {fix}" if fix and error_kind(exc) == TERMINAL else message


def failure_fields(pipeline_id: int, kind: str, now: datetime | None = None) -> dict[str, object]:
    """The Pipeline fields a run that ended in ERROR with an error of `kind` sets: the kind, the start of the
    failing streak (kept from an earlier failure of it), and for a transient error the next automatic restart
    (core.recovery starts it then; none while the app stops — it resumes at the next start). Counts the error."""
    counters.note_error(pipeline_id)
    now = now or utcnow()
    with session_scope() as session:
        p = pipe_db.get_pipeline(session=session, pipeline_id=pipeline_id)
        since, attempt = (p.failing_since, p.retry_attempt) if p is not None else (None, 0)
    next_at = None
    if kind == TRANSIENT:
        settings = get_settings()
        delay = lifecycle.retry_delay(attempt, settings.retry_base_s, settings.retry_cap_s)
        next_at = now + timedelta(seconds=delay)
    return {"error_kind": kind, "failing_since": since or now, "retry_next_at": next_at}


def run_scheduled_load(pipeline_id: int) -> None:
    """The scheduler's job body (core.scheduler.FULL_LOAD_JOB): run the pipeline's full load now and wait
    for it (so the job's max_instances holds)."""
    try:
        handle = start_full_load(pipeline_id, trigger="schedule", actor_email="scheduler")
    except Exception as exc:  # noqa: BLE001 - a refused run (already running, pipeline gone) is logged, not fatal
        log.warning("scheduled full load of pipeline %s not started: %s", pipeline_id, exc)
        return
    handle.join()


def _execute(active: ActiveRun) -> None:
    pid = active.pipeline_id
    try:
        plan = load_plan(pid)
        plans = plan.tables
        if active.reload:
            plans = [p for p in plans if p.source in active.reload]
            _sync_tables(active, plans)
        else:
            _init_tables(active, plans)
        _refuse(active, plans)
        plans = [p for p in plans if p.source not in active.refused]
        _set_state(active, State.RUNNING)
        result = run_full_load(
            plan.source, plan.target, plans, plan.options, lambda tp: _on_progress(active, tp), active.cancel
        )
        if active.refused and result.status == LoadStatus.COMPLETED:
            result.status = LoadStatus.FAILED
        _finish(active, result.status, result.rows_copied, _failed_rows(active), _failure_summary(active))
    except Exception as exc:  # noqa: BLE001 - any failure must end the run in ERROR with its reason
        log.warning("full load of pipeline %s failed: %s", pid, exc)
        _finish(
            active,
            LoadStatus.FAILED,
            sum(t.rows_copied for t in active.tables.values()),
            0,
            describe_failure(exc),
            kind=error_kind(exc),
        )
    finally:
        with _lock:
            _active.pop(pid, None)


def _init_tables(active: ActiveRun, plans: list) -> None:  # noqa: ANN001
    rows = []
    for plan in plans:
        src, tgt = f"{plan.source_schema}.{plan.source_table}", f"{plan.target_schema}.{plan.target_table}"
        active.tables[src] = TableStatus(source=src, target=tgt, status=TABLE_PENDING)
        rows.append(PipelineTable(pipeline_id=active.pipeline_id, run_id=active.run_id, source=src, target=tgt))
    with session_scope() as session:
        pipe_db.replace_tables(session=session, pipeline_id=active.pipeline_id, tables=rows)


def _sync_tables(active: ActiveRun, plans: list) -> None:  # noqa: ANN001
    """A restart or a retry: keep each table's last result (status, error, apply-from position), add new ones."""
    with session_scope() as session:
        stored = {t.source: t for t in pipe_db.list_tables(session=session, pipeline_id=active.pipeline_id)}
        for plan in plans:
            src, tgt = f"{plan.source_schema}.{plan.source_table}", f"{plan.target_schema}.{plan.target_table}"
            row = stored.get(src)
            if row is None:
                row = PipelineTable(pipeline_id=active.pipeline_id, run_id=active.run_id, source=src, target=tgt)
                session.add(row)
            if src in active.reload:
                row.status, row.error, row.rows_copied, row.cdc_since_lsn = TABLE_PENDING, None, 0, None
                session.add(row)
            active.tables[src] = TableStatus.model_validate(row, from_attributes=True)


def _refuse(active: ActiveRun, plans: list) -> None:  # noqa: ANN001
    """Tables validation refused end FAILED with its reason, before anything runs."""
    for plan in plans:
        reason = active.refused.get(plan.source)
        if reason is not None:
            old = active.tables.get(plan.source)
            status = TableStatus(
                source=plan.source,
                target=plan.target,
                status=TABLE_FAILED,
                error=reason,
                rows_copied=old.rows_copied if old else 0,
                finished_at=utcnow(),
            )
            active.tables[plan.source] = status
            _persist_table(active, status)


def table_result(active: ActiveRun, source: str, status: str, error: str | None, since: int | None) -> None:
    """The engine set a table aside (FAILED) or loaded it again alone (COMPLETED, applying from `since`)."""
    old = active.tables.get(source)
    base = old.model_dump() if old else {"source": source, "target": source}
    current = TableStatus(**{**base, "status": status, "error": error, "finished_at": utcnow()})
    active.tables[source] = current
    _persist_table(active, current, cdc_since_lsn=since)
    bus.publish(Event("pipeline.progress", current.model_dump(mode="json"), active.pipeline_id))


def _on_progress(active: ActiveRun, tp) -> None:  # noqa: ANN001 - core.fullload.TableProgress
    status = TableStatus(**{f.name: getattr(tp, f.name) for f in dataclasses.fields(tp)})
    previous = active.tables.get(status.source)
    active.tables[status.source] = status
    bus.publish(Event("pipeline.progress", status.model_dump(mode="json"), active.pipeline_id))
    now = time.monotonic()
    changed = previous is None or previous.status != status.status
    if changed or now - active._persisted_at.get(status.source, 0) >= PERSIST_EVERY_S:
        active._persisted_at[status.source] = now
        # A table loading anew: changes apply from the new copy's slot on, not from an earlier reload's point.
        extra = {"cdc_since_lsn": None} if changed and status.status == TABLE_RUNNING else {}
        _persist_table(active, status, **extra)


def _persist_table(active: ActiveRun, status: TableStatus, **extra: object) -> None:
    """Save a table's status (a table new to the pipeline, picked up while streaming, gets its row)."""
    with session_scope() as session:
        rows = pipe_db.list_tables(session=session, pipeline_id=active.pipeline_id)
        row = next((r for r in rows if r.source == status.source), None)
        if row is None:
            row = PipelineTable(
                pipeline_id=active.pipeline_id, run_id=active.run_id, source=status.source, target=status.target
            )
        for k, v in {**status.model_dump(), **extra}.items():
            setattr(row, k, v)
        session.add(row)


def _failed_rows(active: ActiveRun) -> int:
    return sum(t.rows_expected for t in active.tables.values() if t.status == TABLE_FAILED)


def _failure_summary(active: ActiveRun) -> str | None:
    failed = [t for t in active.tables.values() if t.status == TABLE_FAILED]
    if not failed:
        return None
    first = failed[0]
    return f"{len(failed)} of {len(active.tables)} tables failed; {first.source}: {first.error}"


def _finish(
    active: ActiveRun, status: str, rows: int, rows_failed: int, error: str | None, kind: str = TERMINAL
) -> None:
    """End a full load; a FAILED one without an exception (tables failed, each with its reason) is terminal:
    those tables are retried one by one once their cause is fixed."""
    for t in active.tables.values():
        _persist_table(active, t)
    with session_scope() as session:
        run = session.get(PipelineRun, active.run_id)
        if run is not None:
            run.status, run.completed_at = status, utcnow()
            run.rows_processed, run.rows_failed, run.error_message = rows, rows_failed, error
            session.add(run)
    state = State.STOPPED if status in (LoadStatus.COMPLETED, LoadStatus.CANCELLED) else State.ERROR
    extra = failure_fields(active.pipeline_id, kind) if state == State.ERROR else {}
    _set_state(active, state, full_load_status=status, error_message=error, **extra)
    bus.publish(Event("pipeline.run", {"run_id": active.run_id, "status": status}, active.pipeline_id))


def recover_interrupted() -> None:
    """At start: runs the previous process left RUNNING end FAILED, their pipelines in ERROR."""
    services_starting()
    message = "the app stopped during this run; start it again"
    interrupted: set[int] = set()
    with session_scope() as session:
        for run in pipe_db.running_runs(session=session):
            run.status, run.completed_at, run.error_message = LoadStatus.FAILED, utcnow(), message
            session.add(run)
            p = pipe_db.get_pipeline(session=session, pipeline_id=run.pipeline_id)
            if p is not None and p.mode != Mode.FULL_LOAD_ONLY and p.state in _RESUMED:
                continue  # resumed by start_services from the target's stored position
            if p is not None and p.state in lifecycle.BUSY:
                interrupted.add(run.pipeline_id)
    for pipeline_id in sorted(interrupted):
        lifecycle.transition(pipeline_id, State.ERROR, full_load_status=LoadStatus.FAILED, error_message=message)


# ---------------------------------------------------------------------------------------- CDC

_RESUMED = frozenset({State.STARTING, State.RUNNING})  # a CDC pipeline the app stopped in these resumes
_RUN_END = {State.PAUSED: "PAUSED", State.STOPPED: "STOPPED"}  # how a CDC run that was asked to end ends


def start_cdc(
    pipeline_id: int,
    trigger: str = "manual",
    actor_email: str | None = None,
    refused: dict[str, str] | None = None,
    reload: list[str] | None = None,
    resync: bool = False,
) -> ActiveRun:
    """Start (or resume) a pipeline's CDC on a worker thread; Conflict if something already runs.

    `refused` tables (validation said why) are set aside (FAILED) from the start; `reload` tables are
    loaded again alone before streaming goes on (a retry of tables that failed).
    """
    active = _begin(pipeline_id, "CDC", trigger, cdc_status=CdcStatus.STARTING)
    active.refused, active.reload, active.resync = dict(refused or {}), list(reload or []), resync
    _launch(active, _execute_cdc, f"cdc-{pipeline_id}")
    log.info("CDC of pipeline %s started (%s, by %s)", pipeline_id, trigger, actor_email or "-")
    return active


def cdc_figures(pipeline_id: int) -> dict | None:
    """Live counts, rate and lag of a running CDC worker (None when none runs)."""
    with _lock:
        active = _active.get(pipeline_id)
    worker = active.worker if active else None
    return lag_dict(worker.counters) if worker is not None else None


def _execute_cdc(active: ActiveRun) -> None:
    pid = active.pipeline_id
    worker = None
    try:
        plan = cdc_plan(pid, reload=active.reload)
        if active.resync:  # every table loads again (from a new slot): their rows start over
            plan.resync, plan.reload = True, []
            active.reload = [t.source for t in plan.tables]
        _sync_tables(active, plan.tables)
        _refuse(active, plan.tables)
        plan.refused = {pair(s): r for s, r in active.refused.items()}
        worker = _worker(active, plan)
        active.worker = worker
        worker.run()
        if active.shutting_down and not active.stopping:
            # An app restart is not a stop: the pipeline stays RUNNING (a connector keeps capturing) and
            # start_services resumes it from the target's stored position.
            _finish_cdc(active, worker, LoadStatus.CANCELLED, None, State.RUNNING, CdcStatus.RUNNING)
            return
        worker.finish(paused=active.pausing)
        if active.pausing:
            _finish_cdc(active, worker, LoadStatus.CANCELLED, None, State.PAUSED, CdcStatus.PAUSED)
        else:
            _finish_cdc(active, worker, LoadStatus.CANCELLED, None, State.STOPPED, CdcStatus.STOPPED)
    except Exception as exc:  # noqa: BLE001 - any failure must end in ERROR with its reason
        kind = error_kind(exc)
        log.warning("CDC of pipeline %s failed (%s): %s", pid, kind, exc)
        extra = failure_fields(pid, kind)
        _finish_cdc(active, worker, LoadStatus.FAILED, describe_failure(exc), State.ERROR, CdcStatus.FAILED, extra)
    finally:
        with _lock:
            _active.pop(pid, None)


def _worker(active: ActiveRun, plan: CdcPlan) -> Worker:
    """The plan's engine, reporting to this run."""
    if plan.engine == "kafka_connect":
        return KafkaCdcWorker(
            plan,
            active.cancel,
            on_progress=lambda tp: _on_progress(active, tp),
            on_streaming=lambda: _streaming(active),
            on_table=lambda source, status, error, since: table_result(active, source, status, error, since),
            on_connector=lambda s: _connector_state(active, s),
        )
    return CdcWorker(
        plan,
        active.cancel,
        on_progress=lambda tp: _on_progress(active, tp),
        on_streaming=lambda: _streaming(active),
        on_table=lambda source, status, error, since: table_result(active, source, status, error, since),
        on_schema=lambda changes, action, by: schema_history.record(active.pipeline_id, changes, action, by),
    )


def load_while_streaming(pipeline_id: int, source: str) -> bool:
    """Ask the pipeline's running embedded PostgreSQL stream to copy `source` again while the other tables
    stream on (core.cdc.tableload); False when no such stream runs (the caller restarts the pipeline instead)."""
    with _lock:
        active = _active.get(pipeline_id)
    worker = active.worker if active is not None else None
    if active is None or not isinstance(worker, CdcWorker) or not active.streaming or worker.loads is None:
        return False
    worker.load_table(source)
    return True


def _streaming(active: ActiveRun) -> None:
    active.streaming = True
    values: dict[str, object] = {"cdc_status": CdcStatus.RUNNING}
    worker = active.worker
    if worker is not None and worker.full_load_status:
        values["full_load_status"] = worker.full_load_status
        _record_load_run(active, worker.full_load_status)
    _set_state(active, State.RUNNING, **values)
    for status in list(active.tables.values()):
        if status.status == "PENDING":  # CDC_ONLY: no load for it, its changes now apply
            table_result(active, status.source, "STREAMING", None, None)


def _record_load_run(active: ActiveRun, status: str) -> None:
    """The full load a CDC run did before streaming (FULL_LOAD_AND_CDC, first start) gets its own history row:
    from the CDC run's start to now, with the rows it copied."""
    tables = list(active.tables.values())
    with session_scope() as session:
        cdc_run = session.get(PipelineRun, active.run_id)
        if cdc_run is None:
            return
        pipe_db.save(
            session=session,
            obj=PipelineRun(
                pipeline_id=active.pipeline_id,
                run_type="FULL_LOAD",
                trigger=cdc_run.trigger,
                status=status,
                started_at=cdc_run.started_at,
                completed_at=utcnow(),
                rows_processed=sum(t.rows_copied for t in tables),
                rows_failed=sum(t.rows_expected for t in tables if t.status == TABLE_FAILED),
            ),
        )
    bus.publish(Event("pipeline.run", {"run_id": active.run_id, "status": status}, active.pipeline_id))


def live_rows(pipeline_id: int) -> int | None:
    """Rows the running run has handled so far: rows copied by a full load, changes applied by CDC (None when
    nothing runs)."""
    with _lock:
        active = _active.get(pipeline_id)
    if active is None:
        return None
    worker = active.worker
    if active.kind == "CDC" and worker is not None:
        return int(worker.counters.events)
    return sum(t.rows_copied for t in active.tables.values()) if active.kind == "FULL_LOAD" else 0


def _connector_state(active: ActiveRun, status) -> None:  # noqa: ANN001 - core.kafka.connect_client.ConnectorStatus
    """A kafka_connect pipeline follows its connector: a FAILED task puts it in ERROR with the trace."""
    if active.cancel.is_set():
        return
    failed = [t for t in status.tasks if t.state == "FAILED"]
    if failed or status.state == "FAILED":
        active.connector_failed = True
        trace = (failed[0].trace if failed else status.trace) or ""
        first = trace.strip().splitlines()[0] if trace.strip() else "no trace given"
        where = f"task {failed[0].id}" if failed else "connector"
        # Transient: recovery restarts the failed tasks on its backoff, up to CONNECTOR_RESTARTS_PER_HOUR;
        # past that they stay FAILED for a person (terminal).
        done = connector_restarts(active.pipeline_id)
        if done["gave_up"]:
            kind, then = TERMINAL, f"restarted {done['count']} times in the last hour, giving up: use Restart failed"
        else:
            kind, then = TRANSIENT, "it is restarted automatically; or use Restart failed"
        counters.note_error(active.pipeline_id)
        _set_state(
            active,
            State.ERROR,
            cdc_status=CdcStatus.FAILED,
            error_kind=kind,
            retry_next_at=None,
            error_message=f"Debezium {where} FAILED: {first} ({then})",
        )
    elif active.connector_failed and status.healthy:  # restarted: back to RUNNING
        active.connector_failed = False
        if active.streaming:
            _set_state(active, State.RUNNING, cdc_status=CdcStatus.RUNNING, error_message=None)


def forget_pipeline(pipeline_id: int) -> None:
    """A deleted pipeline: drop what this process remembers of it (its automatic task restarts)."""
    with _lock:
        _connector_restarts.pop(pipeline_id, None)


def note_connector_restart(pipeline_id: int, at: datetime) -> None:
    """Recovery restarted the pipeline's failed connector tasks at `at`."""
    with _lock:
        _connector_restarts.setdefault(pipeline_id, []).append(at)


def connector_restarts(pipeline_id: int, now: datetime | None = None) -> dict[str, Any]:
    """The automatic task restarts of the last hour: {count, last_at, limit, gave_up} (gave_up: the limit is
    reached, failed tasks stay FAILED until a person restarts them)."""
    now = now or utcnow()
    with _lock:
        recent = [t for t in _connector_restarts.get(pipeline_id, []) if now - t < timedelta(hours=1)]
        _connector_restarts[pipeline_id] = recent
    return {
        "count": len(recent),
        "last_at": recent[-1] if recent else None,
        "limit": CONNECTOR_RESTARTS_PER_HOUR,
        "gave_up": len(recent) >= CONNECTOR_RESTARTS_PER_HOUR,
    }


def connector_status(pipeline_id: int) -> dict | None:
    """The connector state a running kafka_connect worker last saw (None when none runs), with its automatic
    task restarts (`restarts`, see connector_restarts)."""
    with _lock:
        active = _active.get(pipeline_id)
    worker = active.worker if active else None
    status = worker.connector_status if isinstance(worker, KafkaCdcWorker) else None
    if status is None or not isinstance(worker, KafkaCdcWorker):
        return None
    return {
        "name": status.name,
        "state": status.state,
        "tasks": [{"id": t.id, "state": t.state, "worker_id": t.worker_id, "trace": t.trace} for t in status.tasks],
        "warning": worker.source_warning(),
        "restarts": connector_restarts(pipeline_id),
        "seen_at": worker.connector_status_at,
    }


def _finish_cdc(
    active: ActiveRun,
    worker: Worker | None,
    status: LoadStatus,
    error: str | None,
    state: State,
    cdc_status: CdcStatus,
    extra: dict[str, object] | None = None,
) -> None:
    for t in active.tables.values():
        _persist_table(active, t)
    events = worker.counters.events if worker is not None else 0
    with session_scope() as session:
        run = session.get(PipelineRun, active.run_id)
        if run is not None:
            # A stream has no natural end: it ends PAUSED or STOPPED (an app restart: STOPPED, resumed anew).
            run.status = _RUN_END.get(state, "STOPPED") if status == LoadStatus.CANCELLED else status
            run.completed_at, run.rows_processed, run.error_message = utcnow(), events, error
            session.add(run)
    fields: dict[str, object] = {"cdc_status": cdc_status, **(extra or {})}
    if worker is not None and worker.full_load_status:
        fields["full_load_status"] = worker.full_load_status
    _set_state(active, state, error_message=error, **fields)
    bus.publish(Event("pipeline.run", {"run_id": active.run_id, "status": status}, active.pipeline_id))


def interrupted_cdc_pipelines() -> list[int]:
    """CDC pipelines the previous process left running: start_services resumes them."""
    with session_scope() as session:
        return [
            p.id
            for p in pipe_db.list_pipelines(session=session)
            if p.id is not None and p.mode != Mode.FULL_LOAD_ONLY and p.state in _RESUMED
        ]
