"""Health checks: the `run_checks` job (every settings.health_interval_s) and the health API's answers.

Per pipeline that was ever started: source and target reachable, the engine alive and making
progress, the replication slot (present, active, wal_status, retained WAL, safe_wal_size) and the
heartbeat on idle sources (PostgreSQL), Kafka Connect and its tasks (kafka_connect engine). Then the
app itself: the scheduler beats, the app database takes writes. Pipelines are checked concurrently
and every probe has a timeout, so a round stays within the interval; one pipeline's failure to be
checked is its own failing check and never stops the others. The latest results stay in memory for
the API; after the checks the alert rules are evaluated on what was observed (core.monitoring.alerts).

The heartbeat: for a running embedded pipeline on PostgreSQL the check writes a logical message into
the source's WAL (pg_source.emit_heartbeat) and at the next round expects the slot's confirmed
position past it; an idle source thus still proves the stream follows the WAL. The (time, WAL
position) pairs seen are kept to tell how many seconds the confirmed position is behind.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel

from core import runner, scheduler
from core.cdc import pg_source
from core.config import get_settings
from core.connections import spec_of
from core.errors import NotFound, StudioError
from core.kafka.debezium import connector_name
from core.lifecycle import Mode, State
from core.monitoring import alerts, probes, rules
from core.security import Action, require
from core.users import Actor
from data import alerts as store
from data import pipelines as pipe_db
from data.db import session_scope
from data.models import Connection, Pipeline

log = logging.getLogger(__name__)

Status = Literal["ok", "warning", "failing"]
MAX_PARALLEL = 8
HISTORY = 240  # (time, WAL position) pairs kept per pipeline for lag in seconds
SLOT_EXPECTED = {State.RUNNING, State.PAUSED, State.STOPPED}  # states in which the slot must exist
BEAT_LATE_S = 3 * scheduler.BEAT_EVERY_S


class Check(BaseModel):
    name: str
    status: Status
    detail: str
    checked_at: datetime


class HealthReport(BaseModel):
    status: Literal["healthy", "degraded", "failing"]
    checks: list[Check]


def report_of(checks: list[Check]) -> HealthReport:
    """The overall status of a list of checks: failing > degraded (a warning) > healthy."""
    states = {c.status for c in checks}
    status: Literal["healthy", "degraded", "failing"] = (
        "failing" if "failing" in states else "degraded" if "warning" in states else "healthy"
    )
    return HealthReport(status=status, checks=checks)


@dataclass
class _Progress:
    """What the previous rounds saw of a pipeline's slot (in memory, per process)."""

    confirmed_lsn: int | None = None
    heartbeat_lsn: int | None = None
    heartbeat_at: datetime | None = None
    history: deque = field(default_factory=lambda: deque(maxlen=HISTORY))  # (time, server WAL position)


_lock = threading.Lock()
_reports: dict[int, HealthReport] = {}
_system: HealthReport | None = None
_progress: dict[int, _Progress] = {}
_last_round_s: float | None = None


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


class _Round:
    """One pipeline's checks in one round: the results and what the alert rules look at."""

    def __init__(self, p: Pipeline, source: Connection, target: Connection, now: datetime) -> None:
        self.p, self.now = p, now
        self.source, self.target = spec_of(source), spec_of(target)
        self.checks: list[Check] = []
        self.obs = alerts.Observation(
            pipeline_id=p.id or 0,
            name=p.name,
            state=p.state,
            error_message=p.error_message,
            error_kind=p.error_kind,
            failing_since=p.failing_since,
        )

    def add(self, name: str, status: Status, detail: str) -> None:
        self.checks.append(Check(name=name, status=status, detail=detail, checked_at=self.now))

    def guarded(self, name: str, probe: Callable[[], None]) -> bool:
        """Run a probe; its error is the check's failing result (False)."""
        try:
            probe()
            return True
        except Exception as exc:  # noqa: BLE001 - any failure of a probe is a failing check, not a crash
            self.add(name, "failing", str(exc) or type(exc).__name__)
            return False

    # -- the checks ---------------------------------------------------------------------------

    def run(self) -> None:
        p = self.p
        source_ok = self.guarded("source_reachable", lambda: self._reach("source_reachable", self.source))
        self.guarded("target_reachable", lambda: self._reach("target_reachable", self.target))
        self._engine()
        cdc = p.mode != Mode.FULL_LOAD_ONLY
        if cdc and source_ok and self.source.kind == "postgresql":
            self.guarded("replication_slot", self._slot)
        if cdc and p.engine == "kafka_connect":
            self.guarded("kafka_connect", self._connect)
        self._runs()

    def _reach(self, name: str, spec) -> None:  # noqa: ANN001 - ConnectionSpec
        ms = probes.reachable(spec)
        self.add(name, "ok", f"{spec.host}:{spec.port}/{spec.database} answered in {ms:.0f} ms")

    def _engine(self) -> None:
        p, pid = self.p, self.p.id or 0
        if p.state == State.ERROR:
            retry = f"; retry {p.retry_attempt} due at {p.retry_next_at:%H:%M:%S}" if p.retry_next_at else ""
            self.add("engine", "failing", f"ERROR ({p.error_kind or 'error'}): {p.error_message or '-'}{retry}")
        elif p.state in (State.RUNNING, State.STARTING) and not runner.is_running(pid):
            self.add("engine", "failing", f"the pipeline is {p.state} but no worker runs it")
        elif p.state in (State.RUNNING, State.STARTING):
            self.add("engine", "ok", "a worker runs the pipeline")
        else:
            self.add("engine", "ok", f"{p.state}: nothing should run")

    def _slot(self) -> None:
        p, pid = self.p, self.p.id or 0
        name = p.slot_name or pg_source.slot_name(pid)  # legacy pipelines: the old name
        s = probes.slot(self.source, name)
        self.obs.slot, self.obs.slot_name, self.obs.slot_measured = s, name, True
        with _lock:
            prog = _progress.setdefault(pid, _Progress())
        prog.history.append((self.now, s.current_lsn))
        if not s.present:
            status: Status = "failing" if p.state in SLOT_EXPECTED else "ok"
            self.add("replication_slot", status, f"slot {name} does not exist on the source")
            return
        self._slot_checks(name, s, prog)
        if p.state == State.RUNNING:
            self._progress(s, prog)
        prog.confirmed_lsn = s.confirmed_lsn

    def _slot_checks(self, name: str, s: probes.SlotProbe, prog: _Progress) -> None:
        running = self.p.state == State.RUNNING
        active_status: Status = "warning" if running and not s.active else "ok"
        self.add("replication_slot", active_status, f"slot {name} {'active' if s.active else 'inactive'}")
        wal_status: Status = {"lost": "failing", "unreserved": "failing"}.get(s.wal_status or "", "ok")  # type: ignore[assignment]
        self.add("slot_wal_status", wal_status, f"wal_status {s.wal_status}")
        retained = s.retained_wal_bytes or 0
        detail = f"{alerts.size_text(retained)} retained"
        status: Status = "ok"
        if s.safe_wal_size is not None and s.max_slot_wal_keep_size:
            detail += (
                f"; safe_wal_size {alerts.size_text(s.safe_wal_size)} of max_slot_wal_keep_size "
                f"{alerts.size_text(s.max_slot_wal_keep_size)}"
            )
            if s.safe_wal_size < 0.2 * s.max_slot_wal_keep_size:
                status = "warning"
        self.add("retained_wal", status, detail)

    def _progress(self, s: probes.SlotProbe, prog: _Progress) -> None:
        """Making progress (the confirmed position moves or is caught up), heartbeat, lag in seconds."""
        confirmed, lag = s.confirmed_lsn or 0, s.lag_bytes or 0
        static = prog.confirmed_lsn is not None and confirmed == prog.confirmed_lsn
        self.obs.stalled_bytes = lag if static and lag > 0 else 0
        if self.obs.stalled_bytes:
            self.add(
                "progress",
                "warning",
                f"confirmed position static while the server's WAL is {alerts.size_text(lag)} ahead",
            )
        else:
            self.add("progress", "ok", "caught up" if lag <= 0 else f"{alerts.size_text(lag)} behind, moving")
        self.obs.lag_seconds = lag_seconds(prog.history, confirmed, self.now)
        if self.p.engine == "embedded":
            self._heartbeat(confirmed, prog)

    def _heartbeat(self, confirmed: int, prog: _Progress) -> None:
        if prog.heartbeat_lsn is not None and prog.heartbeat_at is not None:
            ok = confirmed >= prog.heartbeat_lsn
            age = (self.now - prog.heartbeat_at).total_seconds()
            detail = (
                "the confirmed position passed the last heartbeat"
                if ok
                else f"heartbeat not confirmed after {age:.0f} s"
            )
            self.add("heartbeat", "ok" if ok else "warning", detail)
        try:
            prog.heartbeat_lsn, prog.heartbeat_at = probes.emit_heartbeat(self.source), self.now
            prog.history.append((self.now, prog.heartbeat_lsn))
        except StudioError as exc:
            self.add("heartbeat", "warning", f"cannot write a heartbeat on the source: {exc}")

    def _connect(self) -> None:
        pid = self.p.id or 0
        live = runner.connector_status(pid)
        name = live["name"] if live else connector_name(pid)
        ms, status = probes.connect_status(get_settings(), name)
        self.add("kafka_connect", "ok", f"Kafka Connect answered in {ms:.0f} ms")
        tasks = [(t.id, t.state, t.trace) for t in status.tasks]
        self.obs.tasks, self.obs.tasks_measured = tasks, True
        bad = [f"task {i} {state}" for i, state, _ in tasks if state != "RUNNING"]
        expected = self.p.state == State.RUNNING
        if status.state != "RUNNING" or bad or not tasks:
            what = ", ".join(bad) or f"connector {status.state}" + ("" if tasks else ", no task")
            self.add("connector_tasks", "failing" if expected else "ok", what)
        else:
            self.add("connector_tasks", "ok", f"{len(tasks)} task(s) RUNNING")

    def _runs(self) -> None:
        with session_scope() as session:
            run = pipe_db.last_run(session=session, pipeline_id=self.p.id or 0)
            self.obs.last_change_at = store.last_change_minute(session=session, pipeline_id=self.p.id or 0)
        if run is not None and run.run_type != "CDC":
            self.obs.last_run = (run.id or 0, run.status, run.error_message)


def lag_seconds(history: deque, confirmed: int, now: datetime) -> float:
    """Seconds the confirmed position is behind: since the first WAL position seen past it (a lower bound)."""
    for at, lsn in history:
        if lsn > confirmed:
            return max(0.0, (now - at).total_seconds())
    return 0.0


def check_pipeline(p: Pipeline, now: datetime | None = None) -> tuple[HealthReport, alerts.Observation | None]:
    """Run one pipeline's checks; its report and what the alert rules evaluate (None: nothing observed)."""
    now = _now(now)
    try:
        with session_scope() as session:
            source = session.get(Connection, p.source_connection_id)
            target = session.get(Connection, p.target_connection_id)
        if source is None or target is None:
            raise NotFound("a connection of the pipeline is gone")
        r = _Round(p, source, target, now)
        r.run()
    except Exception as exc:  # noqa: BLE001 - a pipeline that cannot be checked is failing, the others go on
        log.warning("health checks of pipeline %s failed: %s", p.id, exc)
        check = Check(name="checks", status="failing", detail=f"cannot check: {exc}", checked_at=now)
        return HealthReport(status="failing", checks=[check]), None
    return report_of(r.checks), r.obs


def system_checks(now: datetime | None = None) -> HealthReport:
    """The app's own health: the scheduler beats, the app database takes writes, the checks keep time."""
    now = _now(now)
    checks: list[Check] = []
    since = scheduler.seconds_since_beat()
    if since is None:  # not running, or started and not beaten yet
        detail = "the scheduler has not run its heartbeat job (not running, or just started)"
        checks.append(Check(name="scheduler", status="warning", detail=detail, checked_at=now))
    else:
        status: Status = "ok" if since <= BEAT_LATE_S else "failing"
        checks.append(Check(name="scheduler", status=status, detail=f"last beat {since:.0f} s ago", checked_at=now))
    try:
        with session_scope() as session:
            store.probe_write(session=session)
        checks.append(Check(name="app_database", status="ok", detail="writable", checked_at=now))
    except Exception as exc:  # noqa: BLE001 - any failure means the app cannot record its work
        checks.append(Check(name="app_database", status="failing", detail=str(exc), checked_at=now))
    interval = get_settings().health_interval_s
    if _last_round_s is not None:
        status = "ok" if _last_round_s <= interval else "warning"
        detail = f"last round took {_last_round_s:.1f} s (interval {interval:g} s)"
        checks.append(Check(name="health_checks", status=status, detail=detail, checked_at=now))
    return report_of(checks)


def _checked(
    pipelines: list[Pipeline], now: datetime
) -> list[tuple[Pipeline, HealthReport, alerts.Observation | None]]:
    if not pipelines:
        return []
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(pipelines)), thread_name_prefix="health") as pool:
        results = list(pool.map(lambda p: check_pipeline(p, now), pipelines))
    return [(p, rep, obs) for p, (rep, obs) in zip(pipelines, results, strict=True)]


def run_checks(now: datetime | None = None) -> None:
    """The job: check every started pipeline and the app, keep the results, then evaluate the alert rules."""
    global _system, _last_round_s
    started = time.monotonic()
    now = _now(now)
    rules.ensure_default_rules()
    alerts.drain_events(now)
    with session_scope() as session:
        pipelines = [p for p in pipe_db.list_pipelines(session=session) if p.state != State.NOT_STARTED]
    results = _checked(pipelines, now)
    with _lock:
        for p, rep, _ in results:
            _reports[p.id or 0] = rep
        known = {p.id for p, _, _ in results}
        for pid in [pid for pid in _reports if pid not in known]:
            _reports.pop(pid, None)
            _progress.pop(pid, None)
    alerts.evaluate([obs for _, _, obs in results if obs is not None], now)
    _last_round_s = time.monotonic() - started
    report = system_checks(now)
    with _lock:
        _system = report


def pipeline_health(actor: Actor, pipeline_id: int) -> HealthReport:
    """The latest health of a pipeline (its checks are run now when there is no result yet)."""
    require(actor, Action.read)
    with session_scope() as session:
        p = pipe_db.get_pipeline(session=session, pipeline_id=pipeline_id)
    if p is None:
        raise NotFound(f"pipeline {pipeline_id} does not exist")
    if p.state == State.NOT_STARTED:
        now = datetime.now(UTC)
        return report_of([Check(name="state", status="ok", detail="not started yet", checked_at=now)])
    with _lock:
        report = _reports.get(pipeline_id)
    if report is None or _changed_since(p, report):  # none yet, or the state moved since (a resume, a stop)
        report, _ = check_pipeline(p)
        with _lock:
            _reports[pipeline_id] = report
    return report


def _changed_since(p: Pipeline, report: HealthReport) -> bool:
    """Whether the pipeline changed (its state, its error) after the report's checks ran."""
    if not report.checks or p.updated_at is None:
        return False
    changed = p.updated_at if p.updated_at.tzinfo else p.updated_at.replace(tzinfo=UTC)
    return changed > min(c.checked_at for c in report.checks)


def latest_statuses() -> dict[int, str]:
    """Each checked pipeline's latest overall status (healthy | degraded | failing), for the dashboard."""
    with _lock:
        return {pid: r.status for pid, r in _reports.items()}


def system_health(actor: Actor) -> HealthReport:
    """The latest health of the app itself (checked now when there is no result yet)."""
    global _system
    require(actor, Action.read)
    with _lock:
        report = _system
    if report is None:
        report = system_checks()
        with _lock:
            _system = report
    return report


def reset() -> None:
    """Forget every result and what previous rounds saw (tests)."""
    global _system, _last_round_s
    with _lock:
        _reports.clear()
        _progress.clear()
        _system, _last_round_s = None, None
