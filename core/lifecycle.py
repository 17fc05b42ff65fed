"""Pipeline states and their transitions: the one writer of a pipeline's state.

`transition` checks the move against `TRANSITIONS`, saves it through `data/` and publishes
`pipeline.state` on the event bus; nothing else writes `Pipeline.state`. `allowed_actions` says
which actions a pipeline in a given state accepts: the API guards and the pages both ask it.
The values are the API contract (strings in JSON); the enums are `StrEnum`s so they compare equal
to those strings.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import Any

from core.errors import Conflict, NotFound
from core.events import Event, bus
from data import pipelines as pipe_db
from data.db import session_scope
from data.models import utcnow


class State(StrEnum):
    """A pipeline's state (`Pipeline.state`)."""

    NOT_STARTED = "NOT_STARTED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"
    ERROR = "ERROR"


class LoadStatus(StrEnum):
    """The outcome of a pipeline's full load (`Pipeline.full_load_status`, a run's status)."""

    NOT_STARTED = "NOT_STARTED"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class CdcStatus(StrEnum):
    """Where a pipeline's change stream is (`Pipeline.cdc_status`)."""

    NOT_STARTED = "NOT_STARTED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    STOPPED = "STOPPED"
    FAILED = "FAILED"


class Mode(StrEnum):
    """What a pipeline does (`Pipeline.mode`)."""

    FULL_LOAD_ONLY = "FULL_LOAD_ONLY"
    FULL_LOAD_AND_CDC = "FULL_LOAD_AND_CDC"
    CDC_ONLY = "CDC_ONLY"


BUSY: frozenset[State] = frozenset({State.STARTING, State.RUNNING, State.STOPPING})
"""A run is under way: a second start is refused, stop is what it accepts."""

ACTIVE: frozenset[State] = BUSY | {State.PAUSED}
"""A run is under way or paused: its tables and connections are not edited."""

TRANSITIONS: dict[State, frozenset[State]] = {
    # Staying in a state (to update other fields) is always allowed and not listed here.
    State.NOT_STARTED: frozenset({State.STARTING}),
    # STARTING -> STARTING/RUNNING -> STARTING: the app's start-up resumes an interrupted CDC run,
    # and retrying a table restarts a running CDC pipeline around the reload.
    State.STARTING: frozenset({State.RUNNING, State.STOPPING, State.STOPPED, State.ERROR}),
    State.RUNNING: frozenset({State.STARTING, State.STOPPING, State.STOPPED, State.ERROR}),
    # Stop on a paused pipeline: nothing runs, it ends STOPPED (the slot keeps its changes for a start).
    State.PAUSED: frozenset({State.STARTING, State.STOPPED}),
    # A stop ends STOPPED, or PAUSED when it was a pause; a failing stop ends in ERROR. A stale
    # STOPPING (the process ended mid-stop) may be started again.
    State.STOPPING: frozenset({State.STOPPED, State.PAUSED, State.ERROR, State.STARTING}),
    State.STOPPED: frozenset({State.STARTING}),
    # A kafka_connect pipeline is in ERROR while its connector's task FAILED and its consumer still
    # runs: it can be stopped, and goes back to RUNNING once the connector is restarted.
    State.ERROR: frozenset({State.STARTING, State.RUNNING, State.STOPPING, State.STOPPED}),
}

ACTIONS: tuple[str, ...] = (
    "start",
    "stop",
    "pause",
    "resume",
    "restart_failed",
    "recover",
    "retry_table",
    "resync",
    "edit",
    "delete",
    "validate",
)

_STATUS_FIELDS: dict[str, type[StrEnum]] = {
    "state": State,
    "full_load_status": LoadStatus,
    "cdc_status": CdcStatus,
}

_lock = threading.Lock()  # read, check and write one transition at a time


def can_transition(current: str, to: str) -> bool:
    """Whether a pipeline in `current` may move to `to` (staying put is always allowed)."""
    start, end = State(current), State(to)
    return start == end or end in TRANSITIONS[start]


def check_transition(current: str, to: str) -> None:
    """Raise Conflict, saying what is allowed instead, unless `current` -> `to` is a transition."""
    if can_transition(current, to):
        return
    allowed = ", ".join(sorted(TRANSITIONS[State(current)])) or "nothing"
    raise Conflict(f"a pipeline cannot go from {current} to {to} (from {current} it can go to: {allowed})")


def transition(pipeline_id: int, to: str, **fields: Any) -> dict[str, Any]:
    """Move pipeline `pipeline_id` to state `to`, also setting `fields` (e.g. full_load_status,
    cdc_status, error_message); save it and publish `pipeline.state` with the changed fields
    (including "state"). Returns that payload.

    Raises Conflict when the pipeline's current state cannot go to `to` (nothing is written then),
    NotFound when the pipeline does not exist, ValueError for a status value outside its enum.
    """
    values = _coerce({"state": to, **fields})
    with _lock:
        with session_scope() as session:
            p = pipe_db.get_pipeline(session=session, pipeline_id=pipeline_id)
            if p is None:
                raise NotFound(f"pipeline {pipeline_id} not found")
            check_transition(p.state, values["state"])
            for key, value in values.items():
                setattr(p, key, value)
            p.updated_at = utcnow()
            pipe_db.save(session=session, obj=p)
    bus.publish(Event("pipeline.state", dict(values), pipeline_id))
    return values


def update_if(pipeline_id: int, states: Iterable[str], **fields: Any) -> bool:
    """Set `fields` (not the state) on the pipeline only while it is in one of `states`; publish them as a
    `pipeline.state` payload. False (nothing written) when it is in another state or gone: recovery's
    bookkeeping never overwrites what a start or stop wrote meanwhile."""
    wanted = {State(s).value for s in states}
    with _lock:
        with session_scope() as session:
            p = pipe_db.get_pipeline(session=session, pipeline_id=pipeline_id)
            if p is None or p.state not in wanted:
                return False
            for key, value in fields.items():
                setattr(p, key, value)
            p.updated_at = utcnow()
            pipe_db.save(session=session, obj=p)
            state = p.state
    bus.publish(Event("pipeline.state", {"state": state, **fields}, pipeline_id))
    return True


def retry_delay(attempt: int, base_s: float, cap_s: float, rand: Callable[[], float] = random.random) -> float:
    """Seconds before automatic restart number `attempt` + 1: exponential backoff with full jitter,
    uniform in [0, min(cap, base * 2**attempt)) — the jitter spreads pipelines that failed together."""
    ceiling = cap_s if attempt >= 63 else min(cap_s, base_s * 2**attempt)
    return rand() * ceiling


def _coerce(values: dict[str, Any]) -> dict[str, Any]:
    """Status fields as plain strings of their enum (ValueError for a value outside it)."""
    out = dict(values)
    for key, enum in _STATUS_FIELDS.items():
        if key in out and out[key] is not None:
            out[key] = enum(out[key]).value
    return out


def allowed_actions(
    state: str, mode: str, engine: str, *, running: bool = False, retrying: bool = False
) -> frozenset[str]:
    """The actions (names from ACTIONS) a pipeline in `state` with this `mode` and `engine` accepts.

    - start: not busy (STARTING, RUNNING, STOPPING) and not PAUSED (a paused pipeline resumes)
    - stop: busy or PAUSED; also whenever `running` (a worker runs for it, e.g. a kafka_connect
      consumer that goes on while its connector's task FAILED and the pipeline is in ERROR) or
      `retrying` (in ERROR with an automatic restart planned: a stop cancels it)
    - recover: ERROR (restart now instead of waiting for the planned retry)
    - pause: a RUNNING CDC pipeline (not FULL_LOAD_ONLY)
    - resume: PAUSED
    - restart_failed: kafka_connect pipelines (restarts the connector's failed tasks)
    - retry_table: FULL_LOAD_ONLY pipelines and the embedded engine (one FAILED table loads again)
    - resync: a CDC pipeline of the embedded engine that is STOPPED or in ERROR (every table loads again
      from a new slot: after the slot was lost)
    - edit: tables and connections only when not active (STARTING, RUNNING, PAUSED, STOPPING);
      name, description and schedule can be edited in any state
    - delete, validate: always
    """
    current = State(state)
    actions = {"delete", "validate"}
    if current not in BUSY and current != State.PAUSED:
        actions.add("start")
    if current in BUSY or current == State.PAUSED or running or (retrying and current == State.ERROR):
        actions.add("stop")
    if current == State.ERROR:
        actions.add("recover")
    if current == State.RUNNING and mode != Mode.FULL_LOAD_ONLY:
        actions.add("pause")
    if current == State.PAUSED:
        actions.add("resume")
    if engine == "kafka_connect":
        actions.add("restart_failed")
    if mode == Mode.FULL_LOAD_ONLY or engine == "embedded":
        actions.add("retry_table")
    if mode != Mode.FULL_LOAD_ONLY and engine == "embedded" and current in (State.STOPPED, State.ERROR):
        actions.add("resync")
    if current not in ACTIVE:
        actions.add("edit")
    return frozenset(actions)


def refuse_unless(action: str, state: str, mode: str, engine: str, message: str) -> None:
    """Raise Conflict(`message`) unless `action` is among the pipeline's allowed actions."""
    if action not in allowed_actions(state, mode, engine):
        raise Conflict(message)
