"""run_full_load: prepare every table, then load them in parallel, parents before children.

The calling thread is the controller: it submits tables whose foreign-key parents are done to a
thread pool, reports progress of running tables about every 0.5 s, and on cancel interrupts
the running COPYs (conn.cancel) and waits a bounded time for them to roll back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime

from core.connectors import get_connector
from core.connectors.base import ConnectionSpec, ForeignKeyInfo, load_order
from core.errors import StudioError, ValidationFailed
from core.fullload import paths, prepare
from core.fullload.job import Job, Reporter
from core.fullload.model import (
    CANCELLED,
    COMPLETED,
    FAILED,
    POLICIES,
    RUNNING,
    FullLoadResult,
    LoadOptions,
    TablePlan,
    TableProgress,
    TableSpec,
)

log = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 0.5
POLL_S = 0.1
CANCEL_GRACE_S = 20.0
_FINAL = (COMPLETED, FAILED, CANCELLED)


def run_full_load(
    source: ConnectionSpec,
    target: ConnectionSpec,
    tables: list[TablePlan],
    options: LoadOptions,
    on_progress: Callable[[TableProgress], None],
    cancel: threading.Event,
) -> FullLoadResult:
    """Copy `tables` from source to target; per-table progress goes to `on_progress` (from worker threads)."""
    _check_options(source, target, options)
    reporter = Reporter(on_progress)
    jobs = [Job(plan, cancel, reporter) for plan in tables]
    for job in jobs:
        job.update()
    try:
        ready = _prepare(jobs, source, target, options)
        parents = _parents(ready, source)
    except StudioError as exc:
        for job in jobs:
            _finish(job, FAILED, error=str(exc))
        return _result(jobs)
    _schedule(parents, source, target, options, cancel)
    return _result(jobs)


def _check_options(source: ConnectionSpec, target: ConnectionSpec, options: LoadOptions) -> None:
    prepare.check_kinds(source, target)
    if options.target_table_policy not in POLICIES:
        raise ValidationFailed(
            "target_table_policy",
            f"unknown policy '{options.target_table_policy}' (expected one of {', '.join(POLICIES)})",
        )


def _prepare(jobs: list[Job], source: ConnectionSpec, target: ConnectionSpec, options: LoadOptions) -> list[Job]:
    """Map every table's columns and create target schemas and enums; tables that cannot load fail here."""
    for job in jobs:
        if prepare.same_table(source, target, job.plan):
            _finish(job, FAILED, error=f"source and target are the same table ({job.plan.source}); pick another target")
    todo = [j for j in jobs if j.progress.status != FAILED]
    specs = prepare.source_specs(source, target.kind, [j.plan for j in todo])
    ready: list[Job] = []
    ready_specs: list[TableSpec] = []
    for job, spec in zip(todo, specs, strict=True):
        if isinstance(spec, StudioError):
            _finish(job, FAILED, error=_message(spec))
        else:
            job.spec = spec
            ready.append(job)
            ready_specs.append(spec)
    if not ready:
        return []
    errors = prepare.target_objects(target, ready_specs, options.auto_create, options.target_table_policy)
    for i, message in errors.items():
        _finish(ready[i], FAILED, error=message)
    return [j for i, j in enumerate(ready) if i not in errors]


def _parents(jobs: list[Job], source: ConnectionSpec) -> dict[Job, list[Job]]:
    """For each job, the jobs of the tables it references that sit on an earlier load level."""
    if len(jobs) < 2:
        return {j: [] for j in jobs}
    by_key: dict[str, list[Job]] = {}
    for job in jobs:
        by_key.setdefault(job.plan.source, []).append(job)
    connector = get_connector(source)
    fks: list[ForeignKeyInfo] = []
    for schema in sorted({j.plan.source_schema for j in jobs}):
        fks += [_qualified(fk) for fk in connector.foreign_keys(source.database, schema)]
    deps = load_order(list(by_key), fks)
    level = {t: i for i, names in enumerate(deps.levels) for t in names}
    parents: dict[Job, list[Job]] = {j: [] for j in jobs}
    for edge in deps.edges:
        child, parent = edge["table"], edge["references"]
        if level[parent] < level[child]:
            for job in by_key[child]:
                parents[job] += by_key[parent]
    order = {t: i for i, t in enumerate(deps.order)}
    return dict(sorted(parents.items(), key=lambda item: order[item[0].plan.source]))


def _qualified(fk: ForeignKeyInfo) -> ForeignKeyInfo:
    return ForeignKeyInfo(
        name=fk.name,
        schema=fk.schema,
        table=f"{fk.schema}.{fk.table}",
        columns=fk.columns,
        referenced_schema=fk.referenced_schema,
        referenced_table=f"{fk.referenced_schema}.{fk.referenced_table}",
        referenced_columns=fk.referenced_columns,
    )


def _schedule(
    deps: dict[Job, list[Job]],
    source: ConnectionSpec,
    target: ConnectionSpec,
    options: LoadOptions,
    cancel: threading.Event,
) -> None:
    """Run ready tables on a pool of `options.parallelism` threads until all are done or cancelled."""
    pending = list(deps)
    running: dict[Future, Job] = {}
    pool = ThreadPoolExecutor(max_workers=max(1, options.parallelism), thread_name_prefix="fullload")
    last_tick = time.monotonic()
    try:
        while pending or running:
            if cancel.is_set():
                _cancel_all(pending, running)
                return
            _submit_ready(pool, pending, running, deps, source, target, options)
            done, _ = wait(running, timeout=POLL_S, return_when=FIRST_COMPLETED)
            for future in done:
                running.pop(future)
            if time.monotonic() - last_tick >= PROGRESS_INTERVAL_S:
                last_tick = time.monotonic()
                for job in running.values():
                    job.reporter.tick(job)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _submit_ready(
    pool: ThreadPoolExecutor,
    pending: list[Job],
    running: dict[Future, Job],
    deps: dict[Job, list[Job]],
    source: ConnectionSpec,
    target: ConnectionSpec,
    options: LoadOptions,
) -> None:
    limit = max(1, options.parallelism)
    for job in list(pending):
        if len(running) >= limit:
            return
        if all(p.progress.status in _FINAL for p in deps[job]):
            pending.remove(job)
            running[pool.submit(_run_job, job, source, target, options)] = job


def _cancel_all(pending: list[Job], running: dict[Future, Job]) -> None:
    """Stop: pending tables end CANCELLED, running COPYs are interrupted and given time to roll back."""
    for job in pending:
        _finish(job, CANCELLED)
    pending.clear()
    for job in running.values():
        job.abort()
    wait(running, timeout=CANCEL_GRACE_S)
    for future, job in running.items():
        if not future.done():
            log.warning("table %s did not stop within %.0f s", job.plan.source, CANCEL_GRACE_S)
            _finish(job, CANCELLED)


def _run_job(job: Job, source: ConnectionSpec, target: ConnectionSpec, options: LoadOptions) -> None:
    """Load one table in this worker thread; its outcome goes into its progress record."""
    if job.cancel.is_set():
        _finish(job, CANCELLED)
        return
    job.update(status=RUNNING, started_at=datetime.now(UTC))
    try:
        rows = paths.load_table(job, source, target, options)
    except BaseException as exc:  # noqa: BLE001 - every failure is reported on its table
        if job.cancel.is_set():
            _finish(job, CANCELLED)
        else:
            log.warning("full load of %s -> %s failed: %s", job.plan.source, job.plan.target, _message(exc))
            _finish(job, FAILED, error=_message(exc))
        return
    _finish(job, COMPLETED, rows_copied=rows, rows_expected=rows)


def _finish(job: Job, status: str, **changes: object) -> None:
    """The table's final state, once (a straggler reporting after a cancel timeout is ignored)."""
    job.reporter.emit(job, {"status": status, "finished_at": datetime.now(UTC), **changes}, final=True)


def _message(exc: BaseException) -> str:
    if isinstance(exc, ValidationFailed):
        return exc.message
    if isinstance(exc, StudioError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _result(jobs: list[Job]) -> FullLoadResult:
    statuses = [j.progress.status for j in jobs]
    status = CANCELLED if CANCELLED in statuses else FAILED if FAILED in statuses else COMPLETED
    tables = [j.progress for j in jobs]
    return FullLoadResult(
        status=status,
        tables=[TableProgress(**vars(t)) for t in tables],
        rows_copied=sum(t.rows_copied for t in tables if t.status == COMPLETED),
        rows_failed_tables=statuses.count(FAILED),
    )
