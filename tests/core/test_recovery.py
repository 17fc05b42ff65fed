"""Automatic recovery without a database server: error classification at the driver boundary, the backoff
(full jitter, cap), and core.recovery's tick on a real SQLite app database with an injected clock."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg2
import pytest

from core import lifecycle, pipelines, recovery, runner
from core.cdc.prepare import CdcFailed
from core.config import get_settings
from core.connectors.base import ConnectionSpec
from core.connectors.postgres import translate_error
from core.errors import (
    TERMINAL,
    TRANSIENT,
    AuthFailed,
    ConnectionLost,
    ConnectionRefused,
    NotFound,
    NotStartable,
    PrivilegeMissing,
    QueryFailed,
    SerializationFailure,
    ServerUnavailable,
    SlotInvalidated,
    SnapshotUnavailable,
    ValidationFailed,
    error_kind,
)
from core.kafka.connect_client import KafkaConnectError
from core.lifecycle import State, allowed_actions, retry_delay
from core.monitoring import counters
from data import db
from data import pipelines as pipe_db
from data.db import session_scope
from data.models import Connection, Pipeline

SPEC = ConnectionSpec(kind="postgresql", host="db.example", port=5432, database="d", username="u", password="s3cret")


class FakePgError(Exception):
    """What psycopg2 raises, reduced to what translate_error reads (psycopg2's own pgcode is read-only)."""

    def __init__(self, pgcode: str | None, pgerror: str) -> None:
        super().__init__(pgerror)
        self.pgcode, self.pgerror = pgcode, pgerror


# ------------------------------------------------------------------------ classification


@pytest.mark.parametrize(
    ("exc", "cls", "kind"),
    [
        # mid-stream on the replication connection: libpq's words, no SQLSTATE
        (
            psycopg2.OperationalError("server closed the connection unexpectedly\n\tThis probably means"),
            ConnectionLost,
            TRANSIENT,
        ),
        (psycopg2.OperationalError("terminating connection due to administrator command\n"), ConnectionLost, TRANSIENT),
        (psycopg2.InterfaceError("connection already closed"), ConnectionLost, TRANSIENT),
        (
            psycopg2.OperationalError("could not receive data from server: Connection reset by peer"),
            ConnectionLost,
            TRANSIENT,
        ),
        (psycopg2.OperationalError("SSL SYSCALL error: EOF detected"), ConnectionLost, TRANSIENT),
        (psycopg2.DatabaseError("no COPY in progress\n"), ConnectionLost, TRANSIENT),  # the walsender ended
        (
            psycopg2.OperationalError('connection to server at "db.example" failed: Connection refused'),
            ConnectionRefused,
            TRANSIENT,
        ),
        (psycopg2.OperationalError("FATAL:  the database system is starting up"), ServerUnavailable, TRANSIENT),
        (psycopg2.OperationalError("FATAL:  the database system is shutting down"), ServerUnavailable, TRANSIENT),
        (psycopg2.OperationalError("FATAL:  the database system is in recovery mode"), ServerUnavailable, TRANSIENT),
        (psycopg2.OperationalError("FATAL:  sorry, too many clients already"), ServerUnavailable, TRANSIENT),
        (psycopg2.OperationalError("FATAL:  password authentication failed for user"), AuthFailed, TERMINAL),
        # with a SQLSTATE
        (
            FakePgError("57P01", "FATAL:  terminating connection due to administrator command"),
            ConnectionLost,
            TRANSIENT,
        ),
        (
            FakePgError("57P03", "FATAL:  the database system is not yet accepting connections"),
            ServerUnavailable,
            TRANSIENT,
        ),
        (FakePgError("53300", "FATAL:  remaining connection slots are reserved"), ServerUnavailable, TRANSIENT),
        (FakePgError("08006", "server closed the connection"), ConnectionLost, TRANSIENT),
        (
            FakePgError("40001", "ERROR:  could not serialize access due to concurrent update"),
            SerializationFailure,
            TRANSIENT,
        ),
        (FakePgError("40P01", "ERROR:  deadlock detected"), SerializationFailure, TRANSIENT),
        (FakePgError("55006", 'ERROR:  replication slot "s" is active for PID 42'), ServerUnavailable, TRANSIENT),
        (FakePgError("28P01", "FATAL:  password authentication failed"), AuthFailed, TERMINAL),
        (FakePgError("42501", "ERROR:  permission denied for table items"), PrivilegeMissing, TERMINAL),
        (
            FakePgError("55000", 'ERROR:  can no longer get changes from replication slot "s"'),
            SlotInvalidated,
            TERMINAL,
        ),
        (FakePgError("42704", 'ERROR:  replication slot "s" does not exist'), SlotInvalidated, TERMINAL),
        (
            FakePgError("58P01", "ERROR:  requested WAL segment 000000010000000000000001 has already been removed"),
            SlotInvalidated,
            TERMINAL,
        ),
        (FakePgError("22023", 'ERROR:  invalid snapshot identifier: "0000-1"'), SnapshotUnavailable, TERMINAL),
        (FakePgError("42P07", 'ERROR:  relation "x" already exists'), QueryFailed, TERMINAL),
    ],
)
def test_driver_errors_are_translated_with_their_kind(exc: Exception, cls: type | None, kind: str) -> None:
    err = translate_error(exc, SPEC)
    if cls is not None:
        assert type(err) is cls, (type(err), str(err))
    assert error_kind(err) == kind, str(err)
    assert "s3cret" not in str(err)


def test_error_kind_of_anything() -> None:
    # our errors: a person must act, unless a transient one is their cause (raise ... from)
    assert error_kind(CdcFailed("the full load before CDC did not complete")) == TERMINAL
    assert error_kind(ValidationFailed("tables", "no such table")) == TERMINAL
    assert error_kind(NotFound("gone")) == TERMINAL
    for wrapper in (CdcFailed("x"), NotStartable(["source: connection refused"])):
        try:
            raise wrapper from ConnectionRefused("refused")
        except Exception as exc:  # noqa: BLE001
            assert error_kind(exc) == TRANSIENT
    try:  # raised while handling the refusal, its context hidden (`from None`) as core.plans.resolve does
        try:
            raise ConnectionRefused("connection refused")
        except ConnectionRefused:
            raise ValidationFailed("source_connection_id", "cannot read the source") from None
    except ValidationFailed as exc:
        assert error_kind(exc) == TRANSIENT
    try:
        raise NotStartable(["tables: no key"]) from ValidationFailed("tables", "no key")
    except NotStartable as exc:
        assert error_kind(exc) == TERMINAL
    # a translated error is authoritative even when it keeps the driver's exception as its cause
    try:
        raise AuthFailed("password authentication failed") from psycopg2.OperationalError("boom")
    except AuthFailed as exc:
        assert error_kind(exc) == TERMINAL
    # untranslated errors from a broken stream or the runtime: transient (retried, alerted if it persists)
    assert error_kind(OSError("Bad file descriptor")) == TRANSIENT
    assert error_kind(ValueError("I/O operation on closed file")) == TRANSIENT
    # Kafka Connect: a rebalance (409), a worker failing or restarting (5xx), timeouts
    assert error_kind(KafkaConnectError("rebalancing", status_code=409)) == TRANSIENT
    assert error_kind(KafkaConnectError("boom", status_code=503)) == TRANSIENT
    assert error_kind(KafkaConnectError("bad config", status_code=400)) == TERMINAL


def test_a_terminal_failure_says_what_to_do() -> None:
    message = runner.describe_failure(SlotInvalidated('can no longer get changes from replication slot "s"'))
    assert message.startswith("can no longer get changes") and "load the target again" in message
    assert runner.describe_failure(ConnectionLost("the connection broke")) == "the connection broke"


# ------------------------------------------------------------------------ backoff


def test_backoff_is_full_jitter_under_an_exponential_ceiling_with_a_cap() -> None:
    def top() -> float:
        return 1.0 - 1e-12

    assert retry_delay(0, 5, 300, rand=lambda: 0.0) == 0.0
    assert [round(retry_delay(a, 5, 300, rand=top)) for a in range(8)] == [5, 10, 20, 40, 80, 160, 300, 300]
    assert retry_delay(10_000, 5, 300, rand=top) == pytest.approx(300)  # forever: no overflow at any attempt
    rnd = random.Random(7)
    samples = [retry_delay(3, 5, 300, rand=rnd.random) for _ in range(4000)]
    assert all(0 <= s < 40 for s in samples)
    # full jitter: uniform over the whole [0, ceiling), not clustered near it (equal jitter would be >= 20)
    assert min(samples) < 1 and max(samples) > 39 and 18 < sum(samples) / len(samples) < 22


def test_recover_and_stop_are_offered_in_error() -> None:
    for engine in ("embedded", "kafka_connect"):
        assert {"recover", "start"} <= allowed_actions("ERROR", "CDC_ONLY", engine)
        assert "stop" in allowed_actions("ERROR", "CDC_ONLY", engine, retrying=True)  # cancels the planned restart
        assert "recover" not in allowed_actions("RUNNING", "CDC_ONLY", engine)
        assert "recover" not in allowed_actions("STOPPED", "CDC_ONLY", engine)


# ------------------------------------------------------------------------ the tick


@pytest.fixture
def app_db(tmp_path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("CDC_STUDIO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CDC_STUDIO_RETRY_BASE_S", "5")
    monkeypatch.setenv("CDC_STUDIO_RETRY_CAP_S", "300")
    monkeypatch.setenv("CDC_STUDIO_RETRY_RESET_S", "600")
    get_settings.cache_clear()
    previous = db._current_url
    db.init(f"sqlite:///{tmp_path / 'app.db'}")
    runner.services_starting()  # an app stopped by an earlier test in this process left the flag set
    yield
    db._current_url = previous
    get_settings.cache_clear()


T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _pipeline(name: str, state: str, **fields: object) -> int:
    with session_scope() as session:
        c = Connection(name=f"c-{name}", kind="postgresql", host="h", port=5432, database="d", username="u")
        session.add(c)
        session.flush()
        p = Pipeline(
            name=name,
            source_connection_id=c.id,
            target_connection_id=c.id,
            source_database="d",
            source_schema="s",
            target_database="d",
            target_schema="t",
            mode="CDC_ONLY",
            state=state,
            **fields,
        )
        p = pipe_db.save(session=session, obj=p)
        assert p.id is not None
        return p.id


def _stored(pipeline_id: int) -> Pipeline:
    with session_scope() as session:
        p = pipe_db.get_pipeline(session=session, pipeline_id=pipeline_id)
        assert p is not None
        return p


def _at(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def test_tick_plans_a_transient_error_and_leaves_a_terminal_one(app_db) -> None:
    transient = _pipeline("t", State.ERROR, error_kind=TRANSIENT, retry_attempt=2, failing_since=T0)
    terminal = _pipeline("x", State.ERROR, error_kind=TERMINAL, failing_since=T0)
    stopped = _pipeline("s", State.STOPPED, error_kind=TRANSIENT)
    recovery.tick(now=T0, rand=lambda: 0.5)
    assert _at(_stored(transient).retry_next_at) == T0 + timedelta(seconds=10)  # 0.5 * min(300, 5 * 2**2)
    for pid in (terminal, stopped):
        p = _stored(pid)
        assert p.retry_next_at is None and p.retry_attempt == 0 and p.state != State.RUNNING
    # a terminal error stays without a planned restart however long one waits
    recovery.tick(now=T0 + timedelta(days=3))
    assert _stored(terminal).retry_next_at is None and _stored(terminal).state == State.ERROR


def test_a_due_restart_that_fails_again_counts_and_plans_the_next(app_db, monkeypatch) -> None:
    pid = _pipeline("p", State.ERROR, error_kind=TRANSIENT, retry_attempt=1, failing_since=T0, retry_next_at=T0)
    failures: list[Exception] = [ConnectionRefused("connection refused by h:5432")]

    def refused_start(actor, pipeline_id: int, trigger: str = "manual"):  # noqa: ANN001, ANN202
        assert (actor, pipeline_id, trigger) == (recovery.SYSTEM_ACTOR, pid, "recovery")
        raise failures[0]

    monkeypatch.setattr(pipelines, "start_pipeline", refused_start)
    before = counters.totals().get(pid)
    retries0, errors0 = (before.retries, before.errors) if before else (0, 0)
    recovery.tick(now=T0 + timedelta(seconds=1))
    p = _stored(pid)
    assert p.retry_attempt == 2 and p.error_kind == TRANSIENT and p.state == State.ERROR
    assert _at(p.failing_since) == T0  # the streak's first failure is kept
    assert "connection refused" in (p.error_message or "")
    assert p.retry_next_at is not None
    assert _at(p.retry_next_at) - datetime.now(UTC) <= timedelta(seconds=20.5)  # [0, 5 * 2**2) from now
    totals = counters.totals()[pid]
    assert (totals.retries, totals.errors) == (retries0 + 1, errors0 + 1)

    # the next attempt is refused by validation for a reason a retry does not cure: terminal, nothing planned
    try:
        raise NotStartable(["tables: app.items has no primary key"]) from ValidationFailed("tables", "no key")
    except NotStartable as exc:
        failures[0] = exc
    recovery.tick(now=_at(p.retry_next_at) + timedelta(seconds=1))
    p = _stored(pid)
    assert p.retry_attempt == 3 and p.error_kind == TERMINAL and p.retry_next_at is None
    recovery.tick(now=T0 + timedelta(days=1))
    assert _stored(pid).retry_attempt == 3  # no retry loop


def test_the_streak_is_forgotten_after_a_healthy_spell(app_db) -> None:
    pid = _pipeline("p", State.RUNNING, error_kind=TRANSIENT, retry_attempt=4, failing_since=T0)
    recovery.tick(now=T0)
    recovery.tick(now=T0 + timedelta(seconds=599))
    assert _stored(pid).retry_attempt == 4
    lifecycle.transition(pid, State.ERROR, error_kind=TRANSIENT)  # failing again restarts the healthy clock
    recovery.tick(now=T0 + timedelta(seconds=600))
    lifecycle.transition(pid, State.STARTING)
    lifecycle.transition(pid, State.RUNNING)
    recovery.tick(now=T0 + timedelta(seconds=700))
    recovery.tick(now=T0 + timedelta(seconds=1299))
    assert _stored(pid).retry_attempt == 4
    recovery.tick(now=T0 + timedelta(seconds=1300))
    p = _stored(pid)
    assert (p.retry_attempt, p.failing_since, p.error_kind) == (0, None, None)


def test_nothing_is_restarted_while_the_app_stops(app_db, monkeypatch) -> None:
    pid = _pipeline("p", State.ERROR, error_kind=TRANSIENT, retry_next_at=T0)
    monkeypatch.setattr(pipelines, "start_pipeline", lambda *a, **k: pytest.fail("started while stopping"))
    runner.stop_all(timeout=0.1)
    try:
        recovery.tick(now=T0 + timedelta(hours=1))
    finally:
        runner.recover_interrupted()  # what the next start of the services does: clears the flag
    assert _stored(pid).retry_attempt == 0


def test_a_stop_cancels_the_planned_restart(app_db) -> None:
    pid = _pipeline("p", State.ERROR, error_kind=TRANSIENT, retry_attempt=3, retry_next_at=T0, failing_since=T0)
    status = pipelines.stop_pipeline(recovery.SYSTEM_ACTOR, pid)
    assert status.state == State.STOPPED and status.retry is None
    p = _stored(pid)
    assert (p.retry_next_at, p.retry_attempt, p.failing_since) == (None, 0, None)
    recovery.tick(now=T0 + timedelta(hours=1))
    assert _stored(pid).state == State.STOPPED
