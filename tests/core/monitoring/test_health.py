"""Health checks and the alerts they raise, against real PostgreSQL clusters and real CDC pipelines.

The rounds are the job's own (`health.run_checks`) with an injected clock, so rule durations pass
without sleeping; the notifications go to a recording dispatch.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from core import lifecycle, runner, scheduler
from core.config import get_settings
from core.connections import ConnectionCreate, create_connection
from core.monitoring import alerts, health, rules
from core.monitoring.rules import AlertRuleCreate
from core.pipeline_schemas import PipelineCreate
from core.pipelines import create_pipeline, pause_pipeline, start_pipeline, stop_pipeline
from core.users import Actor, create_first_admin
from data import db
from data import pipelines as pipe_db
from data.db import session_scope
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.pgcluster import PgCluster, _as_pg_user, _pg_bin

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
SEED = (
    "CREATE SCHEMA app",
    "CREATE TABLE app.items (id bigint PRIMARY KEY, name text)",
    "INSERT INTO app.items SELECT g, 'item ' || g FROM generate_series(1, 100) g",
)
PIPELINE_CHECKS = {"source_reachable", "target_reachable", "engine", "replication_slot", "slot_wal_status"}


@pytest.fixture
def studio(app_env, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Actor, list[tuple[str, str, str, str]]]]:
    """A fresh app (database, admin); the dispatched notifications as (kind, object, severity, event)."""
    previous = db._current_url
    db.init(get_settings().resolved_database_url())
    admin = create_first_admin(ADMIN_EMAIL, ADMIN_PASSWORD)
    health.reset()
    alerts.forget_held()
    sent: list[tuple[str, str, str, str]] = []
    monkeypatch.setattr(alerts.channels, "dispatch", lambda a, e: sent.append((a.kind, a.object, a.severity, e)))
    yield Actor(id=admin.id, email=admin.email, role=admin.role), sent
    runner.stop_all()
    health.reset()
    alerts.forget_held()
    db._current_url = previous


def sql(pg: PgCluster, database: str, *statements: str) -> list[tuple]:
    conn = pg.connect(database)
    out: list[tuple] = []
    with conn.cursor() as cur:
        for s in statements:
            cur.execute(s)
            out = cur.fetchall() if cur.description else []
    conn.close()
    return out


def wait_for(what: Callable[[], object], timeout: float = 60, message: str = "") -> object:
    deadline = time.monotonic() + timeout
    while not (value := what()):
        assert time.monotonic() < deadline, message or "timed out"
        time.sleep(0.2)
    return value


def state_of(pid: int) -> str:
    with session_scope() as session:
        p = pipe_db.get_pipeline(session=session, pipeline_id=pid)
        assert p is not None
        return p.state


def make_pipeline(actor: Actor, src: PgCluster, src_db: str, tgt: PgCluster, tgt_db: str, mode: str) -> int:
    ids = []
    for name, cluster, database, usage in (("src", src, src_db, "source"), ("tgt", tgt, tgt_db, "target")):
        body = ConnectionCreate(
            name=name,
            kind="postgresql",
            usage=usage,
            host=cluster.host,
            port=cluster.port,
            database=database,
            username=cluster.user,
            password=cluster.password,
        )
        ids.append(create_connection(actor, body).id)
    body = PipelineCreate(
        name="items",
        source_connection_id=ids[0],
        target_connection_id=ids[1],
        source_schema="app",
        target_schema="copy",
        tables=["items"],
        mode=mode,
    )
    return create_pipeline(actor, body).id


def start_running(actor: Actor, pid: int) -> None:
    start_pipeline(actor, pid)
    wait_for(lambda: state_of(pid) in ("RUNNING", "ERROR"), message="the pipeline did not start")
    assert state_of(pid) == "RUNNING"


def checks(pid: int, actor: Actor) -> dict[str, health.Check]:
    return {c.name: c for c in health.pipeline_health(actor, pid).checks}


def test_a_running_cdc_pipeline_is_healthy_and_its_heartbeat_is_confirmed(studio, pg, pg_db, target_db) -> None:
    actor, sent = studio
    sql(pg, pg_db, *SEED)
    pid = make_pipeline(actor, pg, pg_db, pg, target_db, "FULL_LOAD_AND_CDC")
    start_running(actor, pid)

    health.run_checks()  # writes a heartbeat into the source's WAL
    beat = health._progress[pid].heartbeat_lsn
    assert beat is not None and "heartbeat" not in checks(pid, actor)
    confirmed = "SELECT pg_wal_lsn_diff(confirmed_flush_lsn, '0/0') FROM pg_replication_slots"
    wait_for(lambda: sql(pg, pg_db, confirmed)[0][0] >= beat, message="the stream never confirmed the heartbeat")
    health.run_checks()
    report = health.pipeline_health(actor, pid)
    assert report.status == "healthy", report
    found = {c.name: c for c in report.checks}
    assert PIPELINE_CHECKS | {"retained_wal", "progress", "heartbeat"} <= set(found)
    assert all(c.status == "ok" for c in report.checks), report
    assert "active" in found["replication_slot"].detail and "reserved" in found["slot_wal_status"].detail
    assert sent == [] and alerts.list_alerts(actor, "all") == []
    # The defaults were seeded by the round.
    assert len(rules.list_rules(actor)) == len(rules.DEFAULT_RULES)
    system = health.system_health(actor)
    assert {c.name for c in system.checks} >= {"scheduler", "app_database", "health_checks"}
    assert next(c for c in system.checks if c.name == "app_database").status == "ok"
    # Paused between two rounds: the report is taken again at once, not shown stale until the next round.
    assert found["engine"].detail == "a worker runs the pipeline"
    pause_pipeline(actor, pid)
    wait_for(lambda: state_of(pid) == "PAUSED", message="the pipeline did not pause")
    assert checks(pid, actor)["engine"].detail == "PAUSED: nothing should run"


def test_system_health_follows_the_scheduler_heartbeat(studio, monkeypatch) -> None:
    actor, _ = studio
    scheduler.start(get_settings().resolved_database_url())
    try:
        scheduler.beat()
        report = health.system_checks()
        found = {c.name: c for c in report.checks}
        assert found["scheduler"].status == "ok" and found["app_database"].status == "ok"
        assert report.status == "healthy"
        with monkeypatch.context() as m:
            m.setattr(health.scheduler, "seconds_since_beat", lambda: 95.0)
            late = {c.name: c for c in health.system_checks().checks}
        assert late["scheduler"].status == "failing" and "95 s" in late["scheduler"].detail
    finally:
        scheduler.shutdown()
    assert {c.name: c for c in health.system_checks().checks}["scheduler"].status == "warning"


def _pg_ctl(cluster: PgCluster, *args: str) -> None:
    cmd = [_pg_bin("pg_ctl"), "-D", str(cluster.datadir), "-l", str(cluster.datadir.parent / "log"), "-w", *args]
    subprocess.run(_as_pg_user(cmd), check=True, capture_output=True)


@pytest.fixture
def other_pg() -> Iterator[PgCluster]:
    """A cluster of this test's own (it is stopped and started, or reconfigured)."""
    cluster = PgCluster.start()
    yield cluster
    cluster.stop()


@pytest.mark.parametrize("stopped", ["source", "target"])
def test_a_stopped_cluster_fails_its_reachability_check(studio, pg, pg_db, other_pg, stopped) -> None:
    actor, sent = studio
    other_pg.create_database("db")
    if stopped == "target":
        sql(pg, pg_db, *SEED)
        pid = make_pipeline(actor, pg, pg_db, other_pg, "db", "FULL_LOAD_ONLY")
    else:
        sql(other_pg, "db", *SEED)
        pid = make_pipeline(actor, other_pg, "db", pg, pg_db, "FULL_LOAD_ONLY")
    start_pipeline(actor, pid)
    wait_for(lambda: not runner.is_running(pid) and state_of(pid) not in lifecycle.BUSY)
    health.run_checks()
    assert checks(pid, actor)[f"{stopped}_reachable"].status == "ok"
    assert health.latest_statuses() == {pid: "healthy"}

    _pg_ctl(other_pg, "-m", "immediate", "stop")
    started = time.monotonic()
    health.run_checks()
    assert time.monotonic() - started < get_settings().health_interval_s
    report = health.pipeline_health(actor, pid)
    found = {c.name: c for c in report.checks}
    assert report.status == "failing" and health.latest_statuses() == {pid: "failing"}
    running = "source" if stopped == "target" else "target"
    assert found[f"{stopped}_reachable"].status == "failing"
    assert str(other_pg.port) in found[f"{stopped}_reachable"].detail
    assert found[f"{running}_reachable"].status == "ok"

    _pg_ctl(other_pg, "start")
    health.run_checks()
    assert checks(pid, actor)[f"{stopped}_reachable"].status == "ok"


def test_wal_held_by_a_paused_pipeline_fires_retained_wal_bytes(studio, pg, pg_db, target_db) -> None:
    actor, sent = studio
    sql(pg, pg_db, *SEED)
    pid = make_pipeline(actor, pg, pg_db, pg, target_db, "FULL_LOAD_AND_CDC")
    rules.create_rule(
        actor, AlertRuleCreate(pipeline_id=pid, kind="retained_wal_bytes", threshold=2 * 1024**2, for_seconds=60)
    )
    start_running(actor, pid)
    pause_pipeline(actor, pid)
    assert state_of(pid) == "PAUSED"
    health.run_checks(now=T0)
    assert alerts.list_alerts(actor, "all") == []  # nothing held yet
    sql(pg, pg_db, "INSERT INTO app.items SELECT g, repeat('x', 200) FROM generate_series(1000, 40000) g")
    health.run_checks(now=T0 + timedelta(seconds=30))
    (pending,) = alerts.list_alerts(actor, "all", pid)
    assert pending.kind == "retained_wal_bytes" and pending.state == "pending" and sent == []
    health.run_checks(now=T0 + timedelta(seconds=91))
    assert sent == [("retained_wal_bytes", pending.object, "warning", "firing")]
    (firing,) = alerts.list_alerts(actor, "firing", pid)
    assert firing.value is not None and firing.value > 2 * 1024**2 and firing.threshold == 2 * 1024**2
    assert firing.pipeline_name == "items" and "retains" in firing.message
    assert checks(pid, actor)["replication_slot"].status == "ok"  # inactive is expected while paused


def test_a_pipeline_said_running_without_a_reader_is_inactive_stalled_and_lagging(studio, pg, pg_db, target_db) -> None:
    actor, sent = studio
    sql(pg, pg_db, *SEED)
    pid = make_pipeline(actor, pg, pg_db, pg, target_db, "FULL_LOAD_AND_CDC")
    for kind, threshold in (("lag_seconds", 100), ("stalled", 1024)):
        rules.create_rule(actor, AlertRuleCreate(pipeline_id=pid, kind=kind, threshold=threshold, severity="critical"))
    start_running(actor, pid)
    stop_pipeline(actor, pid)
    wait_for(lambda: state_of(pid) == "STOPPED" and not runner.is_running(pid))
    # As after a crash that left the state behind: RUNNING, and nothing reads the slot.
    lifecycle.transition(pid, "STARTING")
    lifecycle.transition(pid, "RUNNING")

    health.run_checks(now=T0)
    found = checks(pid, actor)
    assert found["engine"].status == "failing" and "no worker" in found["engine"].detail
    assert found["replication_slot"].status == "warning" and "inactive" in found["replication_slot"].detail
    sql(pg, pg_db, "UPDATE app.items SET name = name || '!'")
    health.run_checks(now=T0 + timedelta(seconds=30))
    assert ("stalled", found["replication_slot"].detail.split()[1], "critical", "firing") in sent
    assert checks(pid, actor)["progress"].status == "warning"
    assert checks(pid, actor)["heartbeat"].status == "warning"
    health.run_checks(now=T0 + timedelta(seconds=200))
    assert [k for k, *_ in sent] == ["stalled", "lag_seconds"]
    lag = next(a for a in alerts.list_alerts(actor, "firing", pid) if a.kind == "lag_seconds")
    assert lag.value is not None and lag.value >= 170
    health.run_checks(now=T0 + timedelta(seconds=301))
    assert [k for k, *_ in sent] == ["stalled", "lag_seconds", "slot_inactive"]
    assert sorted(alerts.firing_counts()) == [pid]


def test_a_slot_invalidated_by_max_slot_wal_keep_size_is_a_critical_lost_slot(studio, other_pg) -> None:
    actor, sent = studio
    other_pg.create_database("src")
    other_pg.create_database("tgt")
    sql(other_pg, "src", *SEED)
    pid = make_pipeline(actor, other_pg, "src", other_pg, "tgt", "FULL_LOAD_AND_CDC")
    start_running(actor, pid)
    stop_pipeline(actor, pid)
    wait_for(lambda: state_of(pid) == "STOPPED" and not runner.is_running(pid))
    health.run_checks(now=T0)
    assert checks(pid, actor)["slot_wal_status"].status == "ok"

    sql(other_pg, "postgres", "ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'", "SELECT pg_reload_conf()")
    for _ in range(4):  # past the kept WAL: segments the slot needs are removed at the checkpoint
        sql(
            other_pg, "src", "INSERT INTO app.items SELECT max(id) + 1, 'more' FROM app.items", "SELECT pg_switch_wal()"
        )
    sql(other_pg, "postgres", "CHECKPOINT")
    lost = "SELECT wal_status FROM pg_replication_slots"
    wait_for(lambda: sql(other_pg, "postgres", lost) == [("lost",)], timeout=30, message="the slot was not invalidated")

    health.run_checks(now=T0 + timedelta(seconds=30))
    assert [(k, sev, e) for k, _, sev, e in sent] == [("slot_wal_status", "critical", "firing")]
    (alert,) = alerts.list_alerts(actor, "firing", pid)
    assert "lost" in alert.message and "resync" in alert.message
    report = health.pipeline_health(actor, pid)
    assert report.status == "failing" and checks(pid, actor)["slot_wal_status"].status == "failing"
