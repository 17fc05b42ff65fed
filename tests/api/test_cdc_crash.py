"""Crash safety: SIGKILL the app mid-stream, start it again, and the target converges exactly."""

from __future__ import annotations

import random
import threading
import time

import httpx

from tests.appprocess import AppProcess
from tests.pgcluster import PgCluster


def sql(pg: PgCluster, db: str, query: str, params=None) -> list[tuple]:  # noqa: ANN001
    conn = pg.connect(db)
    with conn.cursor() as cur:
        cur.execute(query, params)
        out = cur.fetchall() if cur.description else []
    conn.close()
    return out


def writer(pg: PgCluster, db: str, stop: threading.Event, counts: dict) -> None:
    """Counter increments in single-row transactions, plus inserts; counts what it committed."""
    rnd = random.Random(7)
    conn = pg.connect(db)
    next_id = 1001
    with conn.cursor() as cur:
        while not stop.is_set():
            if rnd.random() < 0.8:
                cur.execute("UPDATE crash.counters SET n = n + 1 WHERE id = %s", (rnd.randint(1, 1000),))
                counts["increments"] += 1
            else:
                cur.execute("INSERT INTO crash.counters VALUES (%s, 0)", (next_id,))
                next_id += 1
            time.sleep(0.001)
    conn.close()


def wait_until(check, timeout: float = 90) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.3)


def crash_pipeline(app: AppProcess, h: dict, pg: PgCluster, source: str, target: str, **extra: str) -> int:
    """Source and target connections and a FULL_LOAD_AND_CDC pipeline of crash.counters on a running app."""
    ids = []
    for name, db, usage in (("s", source, "source"), ("t", target, "target")):
        r = httpx.post(
            f"{app.base}/api/v1/connections",
            headers=h,
            json={
                "name": name,
                "kind": "postgresql",
                "usage": usage,
                "host": pg.host,
                "port": pg.port,
                "database": db,
                "username": pg.user,
                "password": pg.password,
            },
        )
        ids.append(r.json()["id"])
    r = httpx.post(
        f"{app.base}/api/v1/pipelines",
        headers=h,
        timeout=30,
        json={
            "name": "crash",
            "source_connection_id": ids[0],
            "target_connection_id": ids[1],
            "source_schema": "crash",
            "target_schema": "crash",
            "tables": ["counters"],
            "mode": "FULL_LOAD_AND_CDC",
            **extra,
        },
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_sigkill_mid_stream_loses_and_repeats_nothing(pg: PgCluster, pg_db: str, tmp_path) -> None:
    target = pg_db + "_tgt"
    pg.create_database(target)
    sql(
        pg,
        pg_db,
        "CREATE SCHEMA crash; CREATE TABLE crash.counters (id int PRIMARY KEY, n bigint NOT NULL);"
        "INSERT INTO crash.counters SELECT g, 0 FROM generate_series(1, 1000) g",
    )
    app = AppProcess(tmp_path / "data", tmp_path / "app.log")
    stop = threading.Event()
    counts = {"increments": 0}
    w = threading.Thread(target=writer, args=(pg, pg_db, stop, counts))
    try:
        app.start()
        h = app.token()
        pid = crash_pipeline(app, h, pg, pg_db, target)
        w.start()
        httpx.post(f"{app.base}/api/v1/pipelines/{pid}/start", headers=h, timeout=30)
        state = lambda: httpx.get(f"{app.base}/api/v1/pipelines/{pid}/status", headers=h).json()["state"]  # noqa: E731
        wait_until(lambda: state() == "RUNNING")
        wait_until(lambda: sql(pg, target, "SELECT coalesce(sum(n), 0) FROM crash.counters")[0][0] > 200)
        app.kill()  # mid-stream: the writer keeps committing while the app is down
        time.sleep(1.0)
        app.start()  # the same data dir: the pipeline resumes from the target's stored position
        h = app.token()
        wait_until(lambda: state() == "RUNNING")
        time.sleep(1.0)
        stop.set()
        w.join()
        expected = sql(pg, pg_db, "SELECT id, n FROM crash.counters ORDER BY id")
        assert sum(n for _, n in expected) == counts["increments"]
        wait_until(lambda: sql(pg, target, "SELECT id, n FROM crash.counters ORDER BY id") == expected)
        runs = httpx.get(f"{app.base}/api/v1/pipelines/{pid}/runs", headers=h).json()
        assert {r["trigger"] for r in runs} >= {"manual", "recovery"}
        assert httpx.delete(f"{app.base}/api/v1/pipelines/{pid}", headers=h, timeout=60).status_code == 204
        assert sql(pg, pg_db, "SELECT slot_name FROM pg_replication_slots") == []
    finally:
        stop.set()
        if w.is_alive():
            w.join()
        app.terminate()
        pg.drop_database(target)


def test_a_graceful_app_restart_resumes_cdc(pg: PgCluster, pg_db: str, tmp_path) -> None:
    """SIGTERM (an upgrade, a redeploy) is not a stop: the pipeline comes back RUNNING and catches up."""
    target = pg_db + "_tgt"
    pg.create_database(target)
    sql(
        pg,
        pg_db,
        "CREATE SCHEMA crash; CREATE TABLE crash.counters (id int PRIMARY KEY, n bigint NOT NULL);"
        "INSERT INTO crash.counters SELECT g, 0 FROM generate_series(1, 100) g",
    )
    app = AppProcess(tmp_path / "data", tmp_path / "app.log")
    try:
        app.start()
        h = app.token()
        pid = crash_pipeline(app, h, pg, pg_db, target)
        httpx.post(f"{app.base}/api/v1/pipelines/{pid}/start", headers=h, timeout=30)
        state = lambda: httpx.get(f"{app.base}/api/v1/pipelines/{pid}/status", headers=h).json()["state"]  # noqa: E731
        wait_until(lambda: state() == "RUNNING")
        app.terminate()
        app.process.wait(60)
        sql(pg, pg_db, "UPDATE crash.counters SET n = n + 1 WHERE id <= 10")  # while the app is down
        app.start()
        h = app.token()
        wait_until(lambda: state() == "RUNNING")
        expected = sql(pg, pg_db, "SELECT id, n FROM crash.counters ORDER BY id")
        wait_until(lambda: sql(pg, target, "SELECT id, n FROM crash.counters ORDER BY id") == expected)
        assert httpx.delete(f"{app.base}/api/v1/pipelines/{pid}", headers=h, timeout=60).status_code == 204
    finally:
        app.terminate()
        pg.drop_database(target)
