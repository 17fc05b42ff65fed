"""Automatic recovery: pipelines that failed with a transient error start again by themselves.

The runner records how a run ended (`error_kind`, `failing_since`, and for a transient error the next
restart `retry_next_at`, see runner.failure_fields). `tick` (the app job `core.recovery:tick`, every
few seconds) starts the pipelines whose restart is due through the same start a user's goes through
(core.pipelines.recover_pipeline, validation included), restarts failed Kafka Connect tasks on the same
backoff (at most runner.CONNECTOR_RESTARTS_PER_HOUR an hour, then it leaves them FAILED), and forgets
a pipeline's streak once it has been RUNNING for `retry_reset_s`. A terminal error plans nothing.

Delays: exponential backoff with full jitter (core.lifecycle.retry_delay), `retry_base_s` doubling up
to `retry_cap_s`, forever. Clock and randomness are parameters so tests can drive them.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from core import lifecycle, pipelines, runner
from core.config import Settings, get_settings
from core.errors import TRANSIENT
from core.kafka.debezium import connector_name
from core.kafka.engine import connect_client
from core.lifecycle import State
from core.monitoring import counters
from core.users import Actor
from data import pipelines as pipe_db
from data.db import session_scope
from data.models import utcnow

log = logging.getLogger(__name__)

JOB_ID = "recovery"
JOB_FUNC = "core.recovery:tick"
TICK_S = 2.0
SYSTEM_ACTOR = Actor(id=0, email="recovery", role="editor")
"""Who automatic restarts are performed for (run history, audit, logs)."""

Rand = Callable[[], float]

_lock = threading.Lock()  # one tick at a time (the scheduler may overlap a slow one with the next)
_healthy_since: dict[int, datetime] = {}  # pipeline -> first tick that saw it RUNNING in its current spell


@dataclass(frozen=True)
class Seen:
    """What a tick reads of one pipeline."""

    id: int
    state: str
    engine: str
    error_kind: str | None
    attempt: int
    next_at: datetime | None
    failing_since: datetime | None


def tick(now: datetime | None = None, rand: Rand = random.random) -> None:
    """One round of recovery over every pipeline (the app job); nothing while the app is stopping."""
    if runner.app_stopping() or not _lock.acquire(blocking=False):
        return
    try:
        now = now or utcnow()
        settings = get_settings()
        for seen in _read():
            try:
                _one(seen, now, settings, rand)
            except Exception:  # noqa: BLE001 - one pipeline's trouble must not stop the others' recovery
                log.exception("recovery of pipeline %s failed", seen.id)
    finally:
        _lock.release()


def _read() -> list[Seen]:
    with session_scope() as session:
        return [
            Seen(
                p.id, p.state, p.engine, p.error_kind, p.retry_attempt, _aware(p.retry_next_at), _aware(p.failing_since)
            )
            for p in pipe_db.list_pipelines(session=session)
            if p.id is not None
        ]


def _one(seen: Seen, now: datetime, settings: Settings, rand: Rand) -> None:
    if seen.state == State.RUNNING:
        _note_healthy(seen, now, settings)
        return
    _healthy_since.pop(seen.id, None)
    if seen.state != State.ERROR or seen.error_kind != TRANSIENT or runner.app_stopping():
        return
    if runner.is_running(seen.id):  # kafka_connect: the consumer runs on while a connector task FAILED
        if seen.engine == "kafka_connect":
            _restart_tasks(seen, now, settings, rand)
        return
    if seen.next_at is None:  # e.g. the app stopped before it was planned
        plan(seen.id, seen.attempt, now, settings, rand)
    elif seen.next_at <= now:
        restart(seen.id)


def plan(pipeline_id: int, attempt: int, now: datetime, settings: Settings, rand: Rand = random.random) -> datetime:
    """Plan the pipeline's next automatic restart after `attempt` restarts (it must still be in ERROR)."""
    at = now + timedelta(seconds=lifecycle.retry_delay(attempt, settings.retry_base_s, settings.retry_cap_s, rand))
    lifecycle.update_if(pipeline_id, [State.ERROR], retry_next_at=at)
    return at


def restart(pipeline_id: int) -> bool:
    """Start the pipeline again now (one recovery attempt); False when the start failed (the failure is
    recorded on the pipeline and, when transient, the next attempt planned)."""
    try:
        pipelines.recover_pipeline(SYSTEM_ACTOR, pipeline_id, trigger="recovery")
    except Exception as exc:  # noqa: BLE001 - a failed attempt is recorded by recover_pipeline
        log.warning("pipeline %s: automatic restart failed: %s", pipeline_id, exc)
        return False
    return True


def _note_healthy(seen: Seen, now: datetime, settings: Settings) -> None:
    """A RUNNING pipeline with a recovery streak: forget the streak after `retry_reset_s` of running."""
    if not seen.attempt and seen.failing_since is None and seen.error_kind is None:
        _healthy_since.pop(seen.id, None)
        return
    since = _healthy_since.setdefault(seen.id, now)
    if (now - since).total_seconds() >= settings.retry_reset_s:
        reset = {"retry_attempt": 0, "failing_since": None, "error_kind": None, "retry_next_at": None}
        if lifecycle.update_if(seen.id, [State.RUNNING], **reset):
            log.info("pipeline %s healthy for %ss: its recovery streak is reset", seen.id, settings.retry_reset_s)
        _healthy_since.pop(seen.id, None)


def _restart_tasks(seen: Seen, now: datetime, settings: Settings, rand: Rand) -> None:
    """A running kafka_connect pipeline whose connector task FAILED: restart the failed tasks on the backoff,
    at most runner.CONNECTOR_RESTARTS_PER_HOUR an hour; then leave them FAILED and say so."""
    done = runner.connector_restarts(seen.id, now)
    if done["gave_up"]:  # the runner marked it terminal when the task failed again; nothing more to plan
        lifecycle.update_if(seen.id, [State.ERROR], retry_next_at=None, error_kind="terminal")
        return
    if not _tasks_failed(seen.id):  # restarting already (Connect said so): a second restart would only count
        return
    if seen.next_at is None:
        at = now + timedelta(
            seconds=lifecycle.retry_delay(done["count"], settings.retry_base_s, settings.retry_cap_s, rand)
        )
        lifecycle.update_if(seen.id, [State.ERROR], retry_next_at=at, failing_since=seen.failing_since or now)
        return
    if seen.next_at > now:
        return
    with connect_client(settings) as client:
        client.restart(connector_name(seen.id), include_tasks=True, only_failed=True)
    runner.note_connector_restart(seen.id, utcnow())  # after the call: a status read before it is stale
    counters.note_retry(seen.id)
    # The worker may already have seen the tasks RUNNING again and put the pipeline back to RUNNING: the
    # attempt is counted either way (it was dropped when the restart came back first).
    lifecycle.update_if(seen.id, [State.ERROR, State.RUNNING], retry_attempt=seen.attempt + 1, retry_next_at=None)
    log.info("pipeline %s: restarted its connector's failed tasks (%s in the last hour)", seen.id, done["count"] + 1)


def _tasks_failed(pipeline_id: int) -> bool:
    """Whether the connector state the worker last saw has it or one of its tasks FAILED, seen after the last
    automatic restart (a state read before it says nothing of the restarted tasks: acting on it restarted
    them twice and counted both against the hourly limit)."""
    status = runner.connector_status(pipeline_id)
    if status is None:
        return False
    last_restart, seen_at = status["restarts"]["last_at"], status.get("seen_at")
    if last_restart is not None and (seen_at is None or seen_at <= last_restart):
        return False
    return status["state"] == "FAILED" or any(t["state"] == "FAILED" for t in status["tasks"])


def _aware(value: datetime | None) -> datetime | None:
    """SQLite gives datetimes back without their zone: they were written in UTC."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value
