"""Start-up and shut-down of the app's services (no UI here)."""

from __future__ import annotations

import logging

from core import datachecks, keys, runner, scheduler
from core.config import Settings, get_settings
from core.monitoring import recorder
from core.security import master_secret
from core.users import bootstrap_admin
from data import db
from data import pipelines as pipe_db
from data.db import session_scope

log = logging.getLogger(__name__)


def app_jobs(settings: Settings) -> list[tuple[str, str, float]]:
    """The app's own periodic jobs: (job id, `module:function`, seconds between runs), registered at every
    start in the scheduler's in-memory store (core.scheduler.every)."""
    return [
        ("metrics-sample", "core.monitoring.metrics:sample", settings.metrics_sample_s),
        ("metrics-rollup", "core.monitoring.metrics:rollup", 60.0),
        ("alert-deliveries", "core.monitoring.channels:retry_due", 15.0),
        ("health-checks", "core.monitoring.health:run_checks", settings.health_interval_s),
        ("recovery", "core.recovery:tick", 2.0),
    ]


def prepare() -> None:
    """Check the secret key opens the app database (keys.KeyProblem, before anything is written), migrate it,
    remember the key, and create the first admin from the environment if asked."""
    settings = get_settings()
    keys.verify(settings)
    db.init(settings.resolved_database_url())
    keys.remember_key(settings, master_secret(settings))
    bootstrap_admin(settings)


def start_services() -> None:
    """Close out runs a previous process left open, resume CDC it left running, start the scheduler."""
    resume = runner.interrupted_cdc_pipelines()
    runner.recover_interrupted()
    datachecks.fail_interrupted()
    for pipeline_id in resume:
        runner.start_cdc(pipeline_id, trigger="recovery")
    scheduler.start(get_settings().resolved_database_url())
    for job, func_ref, seconds in app_jobs(get_settings()):
        scheduler.every(job, func_ref, seconds)
    with session_scope() as session:
        pipelines = pipe_db.list_pipelines(session=session)
    for p in pipelines:
        if p.id is not None:
            scheduler.set_schedule(p.id, p.schedule)


def stop_services() -> None:
    """Cancel running loads and stop the scheduler."""
    scheduler.shutdown()
    datachecks.stop_all()
    runner.stop_all()
    # the changes the stopped engines applied last are recorded now, while their app database is still there
    if not recorder.flush(10.0):
        log.warning("the last applied changes were not all recorded before the app stopped")
