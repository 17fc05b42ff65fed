"""APScheduler jobs: scheduled full loads, persisted in the app database so they survive restarts.

A job stores only the pipeline id and the name of its body, `FULL_LOAD_JOB` (core.runner's
`run_scheduled_load`): this module imports nothing that runs pipelines, so nothing it imports
imports it back. The runner refuses a second concurrent run of a pipeline, and the job itself has
max_instances=1 and coalesces missed runs, so scheduled runs never overlap.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from core.errors import ValidationFailed

log = logging.getLogger(__name__)

JOBS_TABLE = "scheduler_jobs"
FULL_LOAD_JOB = "core.runner:run_scheduled_load"  # the job body, by name (APScheduler resolves it when it runs)
VALIDATION_JOB = "core.datachecks:run_scheduled_check"  # a pipeline's validation_schedule
SYSTEM = "system"  # the in-memory job store of the app's own periodic jobs (health checks, metrics ...)
BEAT_JOB = "core.scheduler:beat"
BEAT_EVERY_S = 10.0
_scheduler: BackgroundScheduler | None = None
_last_beat: float | None = None  # time.monotonic() of the heartbeat job's last run


def parse_cron(expr: str, field: str = "schedule") -> CronTrigger:
    """A trigger for a crontab line (`min hour dom mon dow`, or 6 fields with seconds first), in UTC;
    ValidationFailed naming `field` for anything else."""
    fields = expr.split()
    try:
        if len(fields) == 5:
            return CronTrigger.from_crontab(expr, timezone="UTC")
        if len(fields) == 6:
            second, minute, hour, day, month, dow = fields
            return CronTrigger(
                second=second, minute=minute, hour=hour, day=day, month=month, day_of_week=dow, timezone="UTC"
            )
    except ValueError as exc:
        raise ValidationFailed(field, f"'{expr}' is not a valid cron expression: {exc}") from None
    raise ValidationFailed(
        field, f"'{expr}' is not a valid cron expression: expected 5 fields (minute hour day month weekday)"
    )


def job_id(pipeline_id: int) -> str:
    return f"pipeline-{pipeline_id}-full-load"


def start(database_url: str) -> BackgroundScheduler:
    """Start the process's scheduler on the app database's job table."""
    global _scheduler
    if _scheduler is not None:
        shutdown()
    scheduler = BackgroundScheduler(
        jobstores={
            "default": SQLAlchemyJobStore(url=database_url, tablename=JOBS_TABLE),
            SYSTEM: MemoryJobStore(),
        },
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 300},
        timezone="UTC",
    )
    scheduler.start()
    _scheduler = scheduler
    every("scheduler-beat", BEAT_JOB, BEAT_EVERY_S)
    return scheduler


def every(job: str, func_ref: str, seconds: float, *args: object) -> None:
    """Run the function named `module:function` every `seconds` (an app job, not persisted: the app
    registers its own at every start). Runs never overlap; missed runs are coalesced."""
    if _scheduler is None:
        return
    _scheduler.add_job(
        func_ref,
        trigger="interval",
        seconds=seconds,
        args=list(args),
        id=job,
        name=job,
        jobstore=SYSTEM,
        replace_existing=True,
        misfire_grace_time=max(1, int(seconds)),
    )


def beat() -> None:
    """The heartbeat job: proves the scheduler runs its jobs (see seconds_since_beat)."""
    global _last_beat
    _last_beat = time.monotonic()


def seconds_since_beat() -> float | None:
    """Seconds since the heartbeat job last ran (None: the scheduler is not running or has not beaten yet)."""
    if _scheduler is None or not _scheduler.running:
        return None
    return None if _last_beat is None else time.monotonic() - _last_beat


def shutdown() -> None:
    """Stop the scheduler (running jobs are left to finish on their own threads)."""
    global _scheduler, _last_beat
    if _scheduler is not None:
        _scheduler.shutdown(wait=False)
        _scheduler = None
    _last_beat = None


def set_schedule(pipeline_id: int, expr: str | None) -> None:
    """Create, replace or remove the pipeline's scheduled full load."""
    if _scheduler is None:
        return
    if not expr:
        remove(pipeline_id)
        return
    _scheduler.add_job(
        FULL_LOAD_JOB,
        trigger=parse_cron(expr),
        args=[pipeline_id],
        id=job_id(pipeline_id),
        name=f"full load of pipeline {pipeline_id}",
        replace_existing=True,
    )


def validation_job_id(pipeline_id: int) -> str:
    return f"pipeline-{pipeline_id}-validation"


def set_validation_schedule(pipeline_id: int, expr: str | None) -> None:
    """Create, replace or remove the pipeline's scheduled data check (core.datachecks.run_scheduled_check)."""
    if _scheduler is None:
        return
    if not expr:
        try:
            _scheduler.remove_job(validation_job_id(pipeline_id))
        except JobLookupError:
            pass
        return
    _scheduler.add_job(
        VALIDATION_JOB,
        trigger=parse_cron(expr, field="validation_schedule"),
        args=[pipeline_id],
        id=validation_job_id(pipeline_id),
        name=f"data check of pipeline {pipeline_id}",
        replace_existing=True,
    )


def next_validation_at(pipeline_id: int) -> datetime | None:
    """When the pipeline's validation_schedule fires next (None without one or without a scheduler)."""
    if _scheduler is None:
        return None
    job = _scheduler.get_job(validation_job_id(pipeline_id))
    return job.next_run_time if job else None


def remove(pipeline_id: int) -> None:
    if _scheduler is None:
        return
    try:
        _scheduler.remove_job(job_id(pipeline_id))
    except JobLookupError:
        pass


def next_run_at(pipeline_id: int) -> datetime | None:
    """When the pipeline's schedule fires next (None without a schedule or scheduler)."""
    if _scheduler is None:
        return None
    job = _scheduler.get_job(job_id(pipeline_id))
    return job.next_run_time if job else None
