"""What the browser tests of a pipeline page share: the app as a process with a streaming FULL_LOAD_AND_CDC
pipeline of crash.counters (1,000 rows), cleaned up after, its log free of tracebacks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.api.test_cdc_crash import crash_pipeline, sql, wait_until
from tests.appprocess import AppProcess
from tests.pgcluster import PgCluster


def post_action(app: AppProcess, h: dict, pid: int, action: str) -> dict:
    r = httpx.post(f"{app.base}/api/v1/pipelines/{pid}/{action}", headers=h, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def pipeline_status(app: AppProcess, h: dict, pid: int) -> dict:
    return httpx.get(f"{app.base}/api/v1/pipelines/{pid}/status", headers=h, timeout=30).json()


@contextmanager
def streaming_app(pg: PgCluster, pg_db: str, tmp_path: Path, **env: str) -> Iterator[tuple[AppProcess, dict, int]]:
    """(app, admin headers, pipeline id): the pipeline started and its CDC RUNNING; `env` for the app."""
    target = pg_db + "_tgt"
    pg.create_database(target)
    sql(
        pg,
        pg_db,
        "CREATE SCHEMA crash; CREATE TABLE crash.counters (id int PRIMARY KEY, n bigint NOT NULL);"
        "INSERT INTO crash.counters SELECT g, 0 FROM generate_series(1, 1000) g",
    )
    app = AppProcess(tmp_path / "data", tmp_path / "app.log", **env)
    try:
        app.start()
        h = app.token()
        pid = crash_pipeline(app, h, pg, pg_db, target)
        post_action(app, h, pid, "start")
        wait_until(lambda: pipeline_status(app, h, pid)["cdc_status"] == "RUNNING")
        yield app, h, pid
    finally:
        app.terminate()
        pg.drop_database(target)
    assert "Traceback" not in (tmp_path / "app.log").read_text(errors="replace")
