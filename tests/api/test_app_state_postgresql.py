"""The app as a real process with its state on PostgreSQL (DATABASE_URL): a CDC pipeline survives a SIGKILL,
a schedule survives the restart in the job store, and runs, events and metrics land in the app database."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

import httpx

from tests.api.test_cdc_crash import crash_pipeline, sql, wait_until
from tests.appprocess import AppProcess
from tests.pgcluster import PgCluster


def test_cdc_schedule_runs_events_and_metrics_with_the_app_state_on_postgresql(
    pg: PgCluster, pg_db: str, target_db: str, tmp_path
) -> None:
    app_db = pg_db + "_app"
    pg.create_database(app_db)
    url = f"postgresql://{pg.user}:{quote(pg.password, safe='')}@{pg.host}:{pg.port}/{app_db}"
    sql(
        pg,
        pg_db,
        "CREATE SCHEMA crash; CREATE TABLE crash.counters (id int PRIMARY KEY, n bigint NOT NULL);"
        "INSERT INTO crash.counters SELECT g, 0 FROM generate_series(1, 100) g",
    )
    app = AppProcess(tmp_path / "data", tmp_path / "app.log", DATABASE_URL=url, CDC_STUDIO_METRICS_SAMPLE_S="1")
    try:
        app.start()
        assert not (tmp_path / "data" / "cdc_studio.db").exists()
        h = app.token()
        pid = crash_pipeline(app, h, pg, pg_db, target_db)
        body = {"name": "every-2s", "source_connection_id": 1, "target_connection_id": 2, "source_schema": "crash"}
        body |= {"target_schema": "copy", "tables": ["counters"], "schedule": "*/2 * * * * *"}
        r = httpx.post(f"{app.base}/api/v1/pipelines", headers=h, json=body, timeout=30)
        assert r.status_code == 201, r.text
        scheduled = r.json()["id"]
        httpx.post(f"{app.base}/api/v1/pipelines/{pid}/start", headers=h, timeout=30)
        state = lambda: httpx.get(f"{app.base}/api/v1/pipelines/{pid}/status", headers=h).json()["state"]  # noqa: E731
        wait_until(lambda: state() == "RUNNING")
        sql(pg, pg_db, "UPDATE crash.counters SET n = n + 1 WHERE id <= 50")
        wait_until(lambda: sql(pg, target_db, "SELECT sum(n) FROM crash.counters")[0][0] == 50)
        events = lambda: sql(pg, app_db, "SELECT count(*) FROM event_log WHERE pipeline_id = %s", (pid,))[0][0]  # noqa: E731
        wait_until(lambda: events() == 50)  # the live log is written in batches: a crash may lose the last
        app.kill()
        sql(pg, pg_db, "UPDATE crash.counters SET n = n + 1 WHERE id > 50")  # while the app is down
        restarted = datetime.now(UTC)
        app.start()
        h = app.token()
        wait_until(lambda: state() == "RUNNING")
        expected = sql(pg, pg_db, "SELECT id, n FROM crash.counters ORDER BY id")
        wait_until(lambda: sql(pg, target_db, "SELECT id, n FROM crash.counters ORDER BY id") == expected)

        def scheduled_after_restart() -> bool:
            runs = httpx.get(f"{app.base}/api/v1/pipelines/{scheduled}/runs", headers=h).json()
            return any(r["trigger"] == "schedule" and datetime.fromisoformat(r["started_at"]) > restarted for r in runs)

        wait_until(scheduled_after_restart)
        runs = httpx.get(f"{app.base}/api/v1/pipelines/{pid}/runs", headers=h).json()
        assert {r["trigger"] for r in runs} >= {"manual", "recovery"}
        assert sql(pg, app_db, "SELECT count(*) FROM scheduler_jobs")[0][0] == 1
        wait_until(lambda: events() == 100)  # every change applied, before and after the crash
        wait_until(lambda: sql(pg, app_db, "SELECT count(*) FROM metric_samples WHERE pipeline_id = %s", (pid,))[0][0])
        assert httpx.delete(f"{app.base}/api/v1/pipelines/{pid}", headers=h, timeout=60).status_code == 204
    finally:
        app.terminate()
        pg.drop_database(app_db)
