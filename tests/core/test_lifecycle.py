"""core.lifecycle: the transition table, `transition` (saves and publishes), `allowed_actions`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core import lifecycle
from core.errors import Conflict, NotFound
from core.events import bus
from core.lifecycle import ACTIONS, CdcStatus, LoadStatus, State, allowed_actions, can_transition, transition
from data import db
from data import pipelines as pipe_db
from data.db import session_scope
from data.models import Connection, Pipeline

S = State


@pytest.fixture
def app_db(tmp_path) -> Iterator[None]:
    previous = db._current_url
    db.init(f"sqlite:///{tmp_path / 'app.db'}")
    yield
    db._current_url = previous


def _pipeline(state: str = "NOT_STARTED", mode: str = "FULL_LOAD_AND_CDC") -> int:
    with session_scope() as session:
        c = Connection(name="c", kind="postgresql", host="h", port=5432, database="d", username="u")
        session.add(c)
        session.flush()
        p = Pipeline(
            name="p",
            source_connection_id=c.id,
            target_connection_id=c.id,
            source_database="d",
            source_schema="s",
            target_database="d",
            target_schema="t",
            mode=mode,
            state=state,
        )
        p = pipe_db.save(session=session, obj=p)
        assert p.id is not None
        return p.id


def _stored(pipeline_id: int) -> Pipeline:
    with session_scope() as session:
        p = pipe_db.get_pipeline(session=session, pipeline_id=pipeline_id)
        assert p is not None
        return p


# ------------------------------------------------------------------------------ the enums


def test_the_values_are_the_contract() -> None:
    assert [s.value for s in State] == ["NOT_STARTED", "STARTING", "RUNNING", "PAUSED", "STOPPING", "STOPPED", "ERROR"]
    assert [s.value for s in LoadStatus] == ["NOT_STARTED", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"]
    assert [s.value for s in CdcStatus] == ["NOT_STARTED", "STARTING", "RUNNING", "PAUSED", "STOPPED", "FAILED"]
    assert State.RUNNING == "RUNNING" and f"{State.PAUSED}" == "PAUSED"  # they are the strings


# ------------------------------------------------------------------------------ the table

ALLOWED = [
    (S.NOT_STARTED, S.STARTING),  # a first start
    (S.STARTING, S.RUNNING),  # the load or the stream is under way
    (S.STARTING, S.STOPPING),
    (S.STARTING, S.STOPPED),  # a load cancelled by an app stop before it ran
    (S.STARTING, S.ERROR),
    (S.RUNNING, S.STOPPING),
    (S.RUNNING, S.STOPPED),  # a full load completed
    (S.RUNNING, S.ERROR),
    (S.RUNNING, S.STARTING),  # start-up resumes an interrupted CDC run; a retry restarts the stream
    (S.STARTING, S.STARTING),
    (S.STOPPING, S.STOPPED),
    (S.STOPPING, S.PAUSED),  # a pause is a stop that ends PAUSED
    (S.STOPPING, S.ERROR),
    (S.STOPPING, S.STARTING),  # stale after the process ended mid-stop
    (S.PAUSED, S.STARTING),  # resume
    (S.PAUSED, S.STOPPED),  # stop while paused
    (S.STOPPED, S.STARTING),
    (S.ERROR, S.STARTING),
    (S.ERROR, S.RUNNING),  # kafka_connect: the connector was restarted
    (S.ERROR, S.STOPPING),  # kafka_connect: stopping a consumer whose connector FAILED
    (S.ERROR, S.STOPPED),
    (S.RUNNING, S.RUNNING),  # staying put (other fields change) is always allowed
    (S.ERROR, S.ERROR),
]

REFUSED = [
    (S.NOT_STARTED, S.RUNNING),
    (S.NOT_STARTED, S.STOPPED),
    (S.NOT_STARTED, S.PAUSED),
    (S.NOT_STARTED, S.ERROR),
    (S.RUNNING, S.PAUSED),  # only through STOPPING
    (S.RUNNING, S.NOT_STARTED),
    (S.STOPPING, S.RUNNING),  # a stop is not undone by the run reaching its stream
    (S.PAUSED, S.RUNNING),  # resume goes through STARTING
    (S.PAUSED, S.STOPPING),
    (S.PAUSED, S.ERROR),
    (S.STOPPED, S.RUNNING),
    (S.STOPPED, S.STOPPING),  # a stop that comes after the run ended
    (S.STOPPED, S.PAUSED),
    (S.ERROR, S.PAUSED),
]


@pytest.mark.parametrize(("current", "to"), ALLOWED)
def test_allowed_transitions(current: State, to: State) -> None:
    assert can_transition(current, to)
    lifecycle.check_transition(current, to)


@pytest.mark.parametrize(("current", "to"), REFUSED)
def test_refused_transitions(current: State, to: State) -> None:
    assert not can_transition(current, to)
    with pytest.raises(Conflict) as refused:
        lifecycle.check_transition(current, to)
    assert str(refused.value).startswith(f"a pipeline cannot go from {current} to {to} (from {current} it can go to: ")


def test_the_refusal_says_what_is_possible() -> None:
    with pytest.raises(Conflict) as refused:
        lifecycle.check_transition("PAUSED", "RUNNING")
    assert str(refused.value) == (
        "a pipeline cannot go from PAUSED to RUNNING (from PAUSED it can go to: STARTING, STOPPED)"
    )


def test_no_state_is_a_dead_end_and_nothing_returns_to_not_started() -> None:
    for state in State:
        assert state in lifecycle.TRANSITIONS
        assert State.STARTING in lifecycle.TRANSITIONS[state] or state == State.STARTING
        assert State.NOT_STARTED not in lifecycle.TRANSITIONS[state]


def test_unknown_values_are_refused() -> None:
    with pytest.raises(ValueError):
        can_transition("RUNNING", "SLEEPING")


# ------------------------------------------------------------------------------ transition


def test_transition_saves_and_publishes(app_db: None) -> None:
    pid = _pipeline()
    sub = bus.subscribe(("pipeline.state",), pipeline_id=pid)
    try:
        before = _stored(pid).updated_at
        payload = transition(pid, State.STARTING, cdc_status=CdcStatus.STARTING, error_message=None)
        assert payload == {"state": "STARTING", "cdc_status": "STARTING", "error_message": None}
        transition(pid, "RUNNING", full_load_status="COMPLETED")
        events = sub.drain()
    finally:
        sub.close()
    assert [(e.topic, e.pipeline_id, e.data) for e in events] == [
        ("pipeline.state", pid, {"state": "STARTING", "cdc_status": "STARTING", "error_message": None}),
        ("pipeline.state", pid, {"state": "RUNNING", "full_load_status": "COMPLETED"}),
    ]
    assert all(type(v) is str for e in events for v in e.data.values() if v is not None)  # JSON as ever
    p = _stored(pid)
    assert (p.state, p.cdc_status, p.full_load_status) == ("RUNNING", "STARTING", "COMPLETED")
    assert p.updated_at >= before


def test_a_refused_transition_writes_and_publishes_nothing(app_db: None) -> None:
    pid = _pipeline(state="PAUSED")
    sub = bus.subscribe(("pipeline.state",), pipeline_id=pid)
    try:
        with pytest.raises(Conflict, match="cannot go from PAUSED to RUNNING"):
            transition(pid, State.RUNNING, error_message="should not be saved")
        assert sub.drain() == []
    finally:
        sub.close()
    p = _stored(pid)
    assert (p.state, p.error_message) == ("PAUSED", None)


def test_transition_refuses_unknown_status_values_and_pipelines(app_db: None) -> None:
    pid = _pipeline()
    with pytest.raises(ValueError):
        transition(pid, State.STARTING, full_load_status="HALF_DONE")
    assert _stored(pid).state == "NOT_STARTED"
    with pytest.raises(NotFound):
        transition(pid + 1, State.STARTING)


# ------------------------------------------------------------------------------ allowed_actions

ALWAYS = {"delete", "validate"}


@pytest.mark.parametrize(
    ("state", "mode", "engine", "expected"),
    [
        ("NOT_STARTED", "FULL_LOAD_ONLY", "embedded", {"start", "retry_table", "edit"}),
        ("STARTING", "FULL_LOAD_ONLY", "embedded", {"stop", "retry_table"}),
        ("RUNNING", "FULL_LOAD_ONLY", "embedded", {"stop", "retry_table"}),  # a full load is not paused
        ("STOPPING", "FULL_LOAD_ONLY", "embedded", {"stop", "retry_table"}),
        ("STOPPED", "FULL_LOAD_ONLY", "embedded", {"start", "retry_table", "edit"}),
        ("ERROR", "FULL_LOAD_ONLY", "embedded", {"start", "recover", "retry_table", "edit"}),
        ("NOT_STARTED", "CDC_ONLY", "embedded", {"start", "retry_table", "edit"}),
        ("STARTING", "FULL_LOAD_AND_CDC", "embedded", {"stop", "retry_table"}),  # paused only once RUNNING
        ("RUNNING", "CDC_ONLY", "embedded", {"stop", "pause", "retry_table"}),
        ("RUNNING", "FULL_LOAD_AND_CDC", "embedded", {"stop", "pause", "retry_table"}),
        ("PAUSED", "FULL_LOAD_AND_CDC", "embedded", {"stop", "resume", "retry_table"}),  # no start, no edit
        ("STOPPING", "CDC_ONLY", "embedded", {"stop", "retry_table"}),
        ("STOPPED", "CDC_ONLY", "embedded", {"start", "retry_table", "resync", "edit"}),
        ("ERROR", "FULL_LOAD_AND_CDC", "embedded", {"start", "recover", "retry_table", "resync", "edit"}),
        ("NOT_STARTED", "CDC_ONLY", "kafka_connect", {"start", "restart_failed", "edit"}),
        ("RUNNING", "CDC_ONLY", "kafka_connect", {"stop", "pause", "restart_failed"}),  # no one-table retry
        ("PAUSED", "FULL_LOAD_AND_CDC", "kafka_connect", {"stop", "resume", "restart_failed"}),
        ("ERROR", "CDC_ONLY", "kafka_connect", {"start", "recover", "restart_failed", "edit"}),
        ("STOPPED", "FULL_LOAD_AND_CDC", "kafka_connect", {"start", "restart_failed", "edit"}),
    ],
)
def test_allowed_actions(state: str, mode: str, engine: str, expected: set[str]) -> None:
    assert allowed_actions(state, mode, engine) == frozenset(expected | ALWAYS)


def test_a_running_worker_can_always_be_stopped() -> None:
    """A kafka_connect consumer goes on while its connector's task FAILED (the pipeline is in ERROR)."""
    assert "stop" not in allowed_actions("ERROR", "CDC_ONLY", "kafka_connect")
    assert "stop" in allowed_actions("ERROR", "CDC_ONLY", "kafka_connect", running=True)
    # in ERROR with an automatic restart planned, Stop cancels it
    assert "stop" not in allowed_actions("ERROR", "CDC_ONLY", "embedded")
    assert "stop" in allowed_actions("ERROR", "CDC_ONLY", "embedded", retrying=True)
    assert allowed_actions("RUNNING", "CDC_ONLY", "embedded", running=True) == allowed_actions(
        "RUNNING", "CDC_ONLY", "embedded"
    )


def test_the_rules_hold_for_every_combination() -> None:
    """The rules as stated in allowed_actions' docstring, over every state, mode and engine."""
    for state in State:
        for mode in lifecycle.Mode:
            for engine in ("embedded", "kafka_connect"):
                actions = allowed_actions(state, mode, engine)
                assert actions <= set(ACTIONS)
                busy = state in (S.STARTING, S.RUNNING, S.STOPPING)
                assert ("start" in actions) == (not busy and state != S.PAUSED)
                assert ("stop" in actions) == (busy or state == S.PAUSED)
                assert ("pause" in actions) == (state == S.RUNNING and mode != "FULL_LOAD_ONLY")
                assert ("resume" in actions) == (state == S.PAUSED)
                assert ("restart_failed" in actions) == (engine == "kafka_connect")
                assert ("retry_table" in actions) == (mode == "FULL_LOAD_ONLY" or engine == "embedded")
                assert ("edit" in actions) == (state not in lifecycle.ACTIVE)
                cdc_embedded = mode != "FULL_LOAD_ONLY" and engine == "embedded"
                assert ("resync" in actions) == (cdc_embedded and state in (S.STOPPED, S.ERROR))
                assert ALWAYS <= actions
