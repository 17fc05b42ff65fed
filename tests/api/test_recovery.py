"""Automatic recovery through the API against real PostgreSQL: the SOURCE cluster (its own, apart from the
target's) is stopped while a pipeline streams and started again; a slot invalidated by
max_slot_wal_keep_size is terminal."""

from __future__ import annotations

import asyncio
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from core import recovery
from tests.api.test_cdc_api import rows, run_sql, writer
from tests.pgcluster import PgCluster, _as_pg_user, _pg_bin


@pytest.fixture(scope="module")
def source_pg() -> Iterator[PgCluster]:
    """The source's own cluster: stopping it leaves the target (on the session's `pg`) up."""
    cluster = PgCluster.start()
    yield cluster
    cluster.stop()


def pg_ctl(cluster: PgCluster, *args: str) -> None:
    """pg_ctl on the cluster's data directory (PgCluster.stop also removes it; this keeps it). The server's
    output goes to the cluster's log: a server started with our pipes as its output would hold them open."""
    log = cluster.datadir.parent / "log"
    subprocess.run(
        _as_pg_user([_pg_bin("pg_ctl"), "-D", str(cluster.datadir), "-l", str(log), *args]),
        check=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=90,
    )


@pytest.fixture
def fast_retry(app_env, monkeypatch: pytest.MonkeyPatch) -> None:
    """Backoff of a test's scale (request it before `client`: the app reads it at its start)."""
    from core.config import get_settings

    monkeypatch.setenv("CDC_STUDIO_RETRY_BASE_S", "0.5")
    monkeypatch.setenv("CDC_STUDIO_RETRY_CAP_S", "2")
    get_settings.cache_clear()


@pytest.fixture
def source_db(source_pg: PgCluster) -> Iterator[str]:
    name = "src_recovery"
    source_pg.create_database(name)
    yield name
    source_pg.drop_database(name)


async def connections(client, admin, source: PgCluster, source_db: str, target: PgCluster, target_db: str) -> tuple:
    ids = []
    for name, cluster, db, usage in (("src", source, source_db, "source"), ("tgt", target, target_db, "target")):
        body = {
            "name": name,
            "kind": "postgresql",
            "usage": usage,
            "host": cluster.host,
            "port": cluster.port,
            "database": db,
            "username": cluster.user,
            "password": cluster.password,
        }
        r = await client.post("/api/v1/connections", headers=admin, json=body)
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    return ids[0], ids[1]


async def status_until(client, admin, pid: int, check, timeout: float = 60) -> dict:  # noqa: ANN001
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        status = (await client.get(f"/api/v1/pipelines/{pid}/status", headers=admin)).json()
        if check(status):
            return status
        assert loop.time() < deadline, status
        await asyncio.sleep(0.2)


async def converge(source: PgCluster, source_db: str, target: PgCluster, target_db: str, timeout: float = 60) -> None:
    """Until the target's rows equal the source's exactly (same rows, same values, nothing twice)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        src = rows(source, source_db, ITEMS.format("app"))
        tgt = rows(target, target_db, ITEMS.format("copy"))
        if src == tgt:
            return
        missing, extra = set(src) - set(tgt), set(tgt) - set(src)
        assert loop.time() < deadline, (len(src), len(tgt), sorted(missing)[:3], sorted(extra)[:3])
        await asyncio.sleep(0.3)


ITEMS = "SELECT id, name, n, big FROM {}.items ORDER BY id"
SEED = (
    "CREATE SCHEMA app",
    "CREATE TABLE app.items (id bigint PRIMARY KEY, name text, n int NOT NULL, big text)",
    "INSERT INTO app.items SELECT g, 'i' || g, 0, NULL FROM generate_series(1, 5000) g",
)


async def start_streaming(client, admin, source_pg, source_db, pg, target_db) -> int:  # noqa: ANN001
    run_sql(source_pg, source_db, *SEED)
    src, tgt = await connections(client, admin, source_pg, source_db, pg, target_db)
    body = {
        "name": "recovering",
        "source_connection_id": src,
        "target_connection_id": tgt,
        "source_schema": "app",
        "target_schema": "copy",
        "tables": ["items"],
        "mode": "FULL_LOAD_AND_CDC",
    }
    r = await client.post("/api/v1/pipelines", headers=admin, json=body)
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    r = await client.post(f"/api/v1/pipelines/{pid}/start", headers=admin)
    assert r.status_code == 200, r.text
    status = await status_until(client, admin, pid, lambda s: s["state"] in ("RUNNING", "ERROR"))
    assert status["state"] == "RUNNING" and status["cdc_status"] == "RUNNING", status
    assert status["retry"] is None and status["health"] == "ok"
    progress = (await client.get(f"/api/v1/pipelines/{pid}/progress", headers=admin)).json()
    assert progress["phase"] == "streaming" and progress["retry"] is None, progress
    table = progress["tables"][0]
    assert (table["source"], table["rows_copied"], table["percent"]) == ("app.items", 5000, 100.0), progress
    assert progress["percent"] == 100.0 and progress["cdc"]["events_per_second"] is not None
    return pid


async def test_source_restart_is_recovered_without_anyone_pressing_start(
    fast_retry, client, admin, source_pg, source_db, pg, target_db
) -> None:
    pid = await start_streaming(client, admin, source_pg, source_db, pg, target_db)
    # Changes in flight when the source goes away: a writer runs until the stop cuts it off.
    stop = threading.Event()
    w = threading.Thread(target=lambda: _write_until_cut(source_pg, source_db, stop), daemon=True)
    w.start()
    await asyncio.sleep(1.0)
    await asyncio.to_thread(pg_ctl, source_pg, "-m", "fast", "-w", "stop")
    stop.set()
    w.join(10)
    try:
        failing = await status_until(client, admin, pid, lambda s: s["state"] == "ERROR" and s["retry"])
        assert failing["retry"]["error_kind"] == "transient", failing
        assert failing["health"] == "recovering" and failing["retry"]["last_error"]
        progress = (await client.get(f"/api/v1/pipelines/{pid}/progress", headers=admin)).json()
        assert progress["phase"] == "retrying" and progress["retry"]["error_kind"] == "transient", progress
        # While the source is down the restarts fail (validation cannot reach it) and keep being planned.
        down = await status_until(
            client, admin, pid, lambda s: s["retry"] and s["retry"]["attempt"] >= 2 and s["retry"]["next_at"]
        )
        assert down["state"] == "ERROR" and down["retry"]["error_kind"] == "transient", down
        assert "refused" in down["retry"]["last_error"] or "connect" in down["retry"]["last_error"], down
        assert datetime.fromisoformat(down["retry"]["failing_since"]) <= datetime.fromisoformat(
            down["retry"]["next_at"]
        )
    finally:
        await asyncio.to_thread(pg_ctl, source_pg, "-w", "-t", "60", "start")
    # Written after the source is back, while the pipeline is still down or coming back.
    run_sql(
        source_pg,
        source_db,
        "INSERT INTO app.items SELECT g, 'after' || g, 7, NULL FROM generate_series(900001, 900500) g",
        "UPDATE app.items SET n = n + 100 WHERE id % 50 = 0",
        "DELETE FROM app.items WHERE id BETWEEN 100 AND 199",
    )
    back = await status_until(client, admin, pid, lambda s: s["state"] == "RUNNING" and s["cdc_status"] == "RUNNING")
    assert back["health"] == "ok" and back["retry"]["attempt"] >= 2 and back["retry"]["next_at"] is None, back
    await converge(source_pg, source_db, pg, target_db)
    runs = (await client.get(f"/api/v1/pipelines/{pid}/runs", headers=admin)).json()
    assert runs[0]["trigger"] == "recovery" and runs[0]["status"] == "RUNNING", runs[:3]
    assert any(r["status"] == "FAILED" for r in runs[1:]), runs
    progress = (await client.get(f"/api/v1/pipelines/{pid}/progress", headers=admin)).json()
    assert progress["phase"] == "streaming" and progress["cdc"] is not None, progress
    # Recover is for a pipeline in ERROR only.
    r = await client.post(f"/api/v1/pipelines/{pid}/recover", headers=admin)
    assert r.status_code == 409, r.text
    await client.post(f"/api/v1/pipelines/{pid}/stop", headers=admin)
    await status_until(client, admin, pid, lambda s: s["state"] == "STOPPED")


def _write_until_cut(cluster: PgCluster, db: str, stop: threading.Event) -> None:
    try:
        writer(cluster, db, stop, 3)
    except Exception:  # noqa: BLE001, S110 - the source is stopped under it: that is the point
        pass


def _invalidate(cluster: PgCluster, db: str, slot: str) -> None:
    """Write and checkpoint WAL past max_slot_wal_keep_size until the server marks the slot lost."""
    conn = cluster.connect(db)
    with conn.cursor() as cur:
        for _ in range(100):
            cur.execute("SELECT wal_status FROM pg_replication_slots WHERE slot_name = %s", (slot,))
            if cur.fetchone()[0] == "lost":
                break
            for _ in range(3):
                cur.execute("INSERT INTO app.items SELECT max(id) + 1, 'wal', 0, NULL FROM app.items")
                cur.execute("SELECT pg_switch_wal()")
            cur.execute("CHECKPOINT")
        else:
            pytest.fail("the slot was not invalidated")
    conn.close()


async def test_an_invalidated_slot_is_terminal_without_a_retry_loop(
    fast_retry, client, admin, viewer, source_pg, source_db, pg, target_db
) -> None:
    """A target stuck behind a lock holds the slot back until max_slot_wal_keep_size invalidates it (the server
    ends our walsender): the stream's end is retried once, and the restart is refused for good by validation
    (the slot is lost, with the fix), with no retry loop."""
    pid = await start_streaming(client, admin, source_pg, source_db, pg, target_db)
    slot = (await client.get(f"/api/v1/pipelines/{pid}", headers=admin)).json()["slot_name"]
    lock = pg.connect(target_db, autocommit=False)
    with lock.cursor() as cur:
        cur.execute("LOCK TABLE copy.items IN ACCESS EXCLUSIVE MODE")  # the applier waits behind it
    run_sql(source_pg, "postgres", "ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'", "SELECT pg_reload_conf()")
    try:
        await asyncio.to_thread(_invalidate, source_pg, source_db, slot)
    finally:
        run_sql(source_pg, "postgres", "ALTER SYSTEM RESET max_slot_wal_keep_size", "SELECT pg_reload_conf()")
        lock.rollback()
        lock.close()
    failed = await status_until(
        client, admin, pid, lambda s: s["state"] == "ERROR" and s["retry"] and s["retry"]["error_kind"] == "terminal"
    )
    retry = failed["retry"]
    assert retry["next_at"] is None and retry["attempt"] <= 1, failed
    # found lost by the restart's validation ("is lost"), or by the stream's lag check ("was invalidated")
    lost = (f"replication slot {slot} is lost", f"replication slot {slot} was invalidated")
    assert failed["health"] == "failed" and any(m in retry["last_error"] for m in lost), failed
    assert "load the target again" in failed["error_message"], failed
    runs = len((await client.get(f"/api/v1/pipelines/{pid}/runs", headers=admin)).json())
    # Recovery's rounds, however late, plan and start nothing for it.
    for hours in (1, 5, 48):
        await asyncio.to_thread(recovery.tick, datetime.now(UTC) + timedelta(hours=hours))
    after = (await client.get(f"/api/v1/pipelines/{pid}/status", headers=admin)).json()
    assert after["state"] == "ERROR" and after["retry"] == retry, after
    assert len((await client.get(f"/api/v1/pipelines/{pid}/runs", headers=admin)).json()) == runs
    assert rows(source_pg, source_db, f"SELECT wal_status FROM pg_replication_slots WHERE slot_name = '{slot}'") == [
        ("lost",)
    ]
    progress = (await client.get(f"/api/v1/pipelines/{pid}/progress", headers=admin)).json()
    assert progress["phase"] == "idle" and progress["state"] == "ERROR"
    # Recover (retry now) is a person's: a viewer may not; an editor's is refused with the fix.
    r = await client.post(f"/api/v1/pipelines/{pid}/recover", headers=viewer)
    assert r.status_code == 403, r.text
    r = await client.post(f"/api/v1/pipelines/{pid}/recover", headers=admin)
    assert r.status_code == 422 and "is lost (wal_status lost)" in r.text, r.text
    again = (await client.get(f"/api/v1/pipelines/{pid}/status", headers=admin)).json()
    assert again["state"] == "ERROR" and again["retry"]["error_kind"] == "terminal", again
    assert again["retry"]["next_at"] is None, again

    # Resync all tables: a new slot, every table emptied and copied under its snapshot, then streamed from it.
    run_sql(source_pg, source_db, "UPDATE app.items SET n = n + 1 WHERE id <= 100")  # never sent by the lost slot
    assert (await client.post(f"/api/v1/pipelines/{pid}/resync", headers=viewer)).status_code == 403
    r = await client.post(f"/api/v1/pipelines/{pid}/resync", headers=admin)
    assert r.status_code == 200, r.text
    back = await status_until(
        client, admin, pid, lambda s: s["state"] in ("RUNNING", "ERROR") and s["cdc_status"] != "STARTING"
    )
    assert back["state"] == "RUNNING" and back["cdc_status"] == "RUNNING" and back["retry"] is None, back
    assert rows(source_pg, source_db, f"SELECT wal_status FROM pg_replication_slots WHERE slot_name = '{slot}'") in (
        [("reserved",)],
        [("extended",)],
    )
    await _same(source_pg, source_db, pg, target_db)
    run_sql(
        source_pg,
        source_db,
        "INSERT INTO app.items VALUES (9000001, 'after', 1, NULL)",
        "DELETE FROM app.items WHERE id = 7",
    )
    await _same(source_pg, source_db, pg, target_db)
    assert (await client.post(f"/api/v1/pipelines/{pid}/resync", headers=admin)).status_code == 409  # it runs
    audit = (await client.get(f"/api/v1/audit?action=pipeline.resync&object_id={pid}", headers=admin)).json()
    assert len(audit) == 1 and "every table loads again" in audit[0]["detail"], audit
    await client.post(f"/api/v1/pipelines/{pid}/stop", headers=admin)
    await status_until(client, admin, pid, lambda s: s["state"] == "STOPPED")


async def _same(source_pg: PgCluster, source_db: str, pg: PgCluster, target_db: str, timeout: float = 60) -> None:
    """Until the source and target tables (on their two clusters) hold the same rows."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        src, tgt = rows(source_pg, source_db, ITEMS.format("app")), rows(pg, target_db, ITEMS.format("copy"))
        if src == tgt:
            return
        assert loop.time() < deadline, (len(src), len(tgt))
        await asyncio.sleep(0.3)
