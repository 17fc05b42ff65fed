"""Start-up and shut-down of the app's services (no UI here)."""

from __future__ import annotations

import logging

from core import runner, scheduler
from core.config import get_settings
from core.users import bootstrap_admin
from data import db
from data import pipelines as pipe_db
from data.db import session_scope

log = logging.getLogger(__name__)


def prepare() -> None:
    """Migrate the app database and create the first admin from the environment if asked."""
    settings = get_settings()
    db.init(settings.resolved_database_url())
    bootstrap_admin(settings)


def start_services() -> None:
    """Close out runs a previous process left open, resume CDC it left running, start the scheduler."""
    resume = runner.interrupted_cdc_pipelines()
    runner.recover_interrupted()
    for pipeline_id in resume:
        runner.start_cdc(pipeline_id, trigger="recovery")
    scheduler.start(get_settings().resolved_database_url())
    with session_scope() as session:
        pipelines = pipe_db.list_pipelines(session=session)
    for p in pipelines:
        if p.id is not None:
            scheduler.set_schedule(p.id, p.schedule)


def stop_services() -> None:
    """Cancel running loads and stop the scheduler."""
    scheduler.shutdown()
    runner.stop_all()
