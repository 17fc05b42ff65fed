"""The metrics API and GET /metrics on the real app, with a real CDC pipeline on PostgreSQL."""

from __future__ import annotations

import asyncio
import importlib

from prometheus_client.parser import text_string_to_metric_families

from core.app_state import app_jobs
from core.config import get_settings
from core.monitoring import counters, metrics
from data.db import session_scope
from data.models import Alert
from tests.api.test_cdc_api import converge, run_sql
from tests.api.test_pipelines_api import make_connections, pipeline_body, wait_for_state

ITEMS = "SELECT id, name, n FROM {}.items ORDER BY id"
HISTORY = (
    "rows_per_second,inserts_per_second,updates_per_second,deletes_per_second,latency_p95_ms,latency_max_ms,lag_bytes"
)


def scrape(text: str) -> dict[str, list]:
    """Prometheus text parsed by the reference parser: family name -> samples."""
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def value(samples: list, name: str, **labels: str) -> float | None:
    found = [s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    return found[0] if found else None


async def test_cdc_rows_reach_history_stats_and_prometheus(client, admin, viewer, pg, pg_db, target_db) -> None:
    run_sql(
        pg,
        pg_db,
        "CREATE SCHEMA app",
        "CREATE TABLE app.items (id bigint PRIMARY KEY, name text, n int NOT NULL)",
        "INSERT INTO app.items SELECT g, 'i' || g, 0 FROM generate_series(1, 200) g",
    )
    src, tgt = await make_connections(client, admin, pg, pg_db, target_db)
    body = pipeline_body(
        src, tgt, source_schema="app", target_schema="copy", tables=["items"], mode="FULL_LOAD_AND_CDC"
    )
    pid = (await client.post("/api/v1/pipelines", headers=admin, json=body)).json()["id"]
    counters.forget(pid)  # counters live per process: an earlier test's pipeline may have had this id
    assert (await client.post(f"/api/v1/pipelines/{pid}/start", headers=admin)).status_code == 200
    status = await wait_for_state(client, admin, pid, {"RUNNING", "ERROR"})
    assert status["state"] == "RUNNING" and status["cdc_status"] == "RUNNING", status

    run_sql(
        pg,
        pg_db,
        "INSERT INTO app.items SELECT g, 'w' || g, 0 FROM generate_series(1001, 1500) g",
        "UPDATE app.items SET n = n + 1 WHERE id <= 100",
        "DELETE FROM app.items WHERE id > 150 AND id <= 200",
    )
    await converge(pg, pg_db, target_db, ITEMS.format("app"), ITEMS.format("copy"))

    # The sampler job, called as the scheduler calls it, until every applied row is in the history.
    url = f"/api/v1/monitoring/pipelines/{pid}/metrics/history"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while True:
        metrics.sample()
        r = await client.get(url, headers=viewer, params={"range": "15m", "step": "10s", "metrics": HISTORY})
        assert r.status_code == 200, r.text
        series = r.json()["series"]
        applied = {
            op: round(sum(v for _t, v in series[f"{op}_per_second"]) * 10) for op in ("inserts", "updates", "deletes")
        }
        if applied == {"inserts": 500, "updates": 100, "deletes": 50}:
            break
        assert loop.time() < deadline, applied
        await asyncio.sleep(0.3)
    assert round(sum(v for _t, v in series["rows_per_second"]) * 10) == 650
    assert series["latency_p95_ms"] and all(v >= 0 for _t, v in series["latency_p95_ms"])
    assert max(v for _t, v in series["latency_max_ms"]) > 0
    assert series["lag_bytes"], "a running worker's lag is sampled"

    now = (await client.get(f"/api/v1/monitoring/pipelines/{pid}/metrics", headers=viewer)).json()
    assert now["totals"] == {"insert": 500, "update": 100, "delete": 50}, now
    assert now["rows_per_second"] > 0 and now["last_change_at"] is not None and now["state"] == "RUNNING"

    stats = (await client.get(f"/api/v1/monitoring/pipelines/{pid}/tables/stats", headers=viewer)).json()
    assert [(s["source"], s["inserts"], s["updates"], s["deletes"], s["full_load_pct"]) for s in stats] == [
        ("app.items", 500, 100, 50, 100.0)
    ]
    lag = (await client.get(f"/api/v1/monitoring/pipelines/{pid}/lag", headers=viewer)).json()
    assert lag["pipeline_id"] == pid and lag["state"] == "RUNNING" and "lag_bytes" in lag
    lines = (await client.get("/api/v1/monitoring/sparklines", headers=viewer, params={"range": "1h"})).json()
    assert sum(v for _t, v in lines[str(pid)]) * 60 > 0
    per_table = await client.get(f"/api/v1/monitoring/pipelines/{pid}/metrics/tables", headers=viewer)
    assert per_table.status_code == 200 and "series" in per_table.json()

    with session_scope() as session:
        session.add(Alert(pipeline_id=pid, kind="lag_seconds", severity="critical", state="firing"))
    r = await client.get("/metrics", headers=viewer)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    fams = scrape(r.text)
    labels = {"pipeline_id": str(pid)}
    rows = fams["cdcstudio_rows_applied"]
    assert value(rows, "cdcstudio_rows_applied_total", op="insert", **labels) == 500
    assert value(rows, "cdcstudio_rows_applied_total", op="update", **labels) == 100
    assert value(rows, "cdcstudio_rows_applied_total", op="delete", **labels) == 50
    assert value(fams["cdcstudio_pipeline_up"], "cdcstudio_pipeline_up", state="RUNNING", **labels) == 1
    assert value(fams["cdcstudio_pipelines"], "cdcstudio_pipelines", state="RUNNING") == 1
    assert value(fams["cdcstudio_pipelines"], "cdcstudio_pipelines", state="ERROR") == 0
    assert value(fams["cdcstudio_alerts_firing"], "cdcstudio_alerts_firing", severity="critical") == 1
    latency = fams["cdcstudio_apply_latency_seconds"]
    count = value(latency, "cdcstudio_apply_latency_seconds_count", **labels)
    assert (
        count and count > 0 and value(latency, "cdcstudio_apply_latency_seconds_bucket", le="+Inf", **labels) == count
    )
    assert value(fams["cdcstudio_lag_bytes"], "cdcstudio_lag_bytes", **labels) is not None
    assert value(fams["cdcstudio_errors"], "cdcstudio_errors_total", **labels) == 0

    assert (await client.post(f"/api/v1/pipelines/{pid}/stop", headers=admin)).status_code == 200
    await wait_for_state(client, admin, pid, {"STOPPED"})
    # A stopped pipeline's slot keeps WAL: the sampler reads it from the source (at most once a minute).
    run_sql(pg, pg_db, "UPDATE app.items SET n = n + 1 WHERE id <= 10")
    metrics.sample()
    assert metrics.stopped_slot(pid) is not None
    r = await client.get(url, headers=viewer, params={"range": "15m", "metrics": "retained_wal_bytes"})
    assert r.json()["series"]["retained_wal_bytes"][-1][1] > 0
    fams = scrape((await client.get("/metrics", headers=viewer)).text)
    assert value(fams["cdcstudio_pipeline_up"], "cdcstudio_pipeline_up", state="STOPPED", **labels) == 0
    assert value(fams["cdcstudio_slot_retained_wal_bytes"], "cdcstudio_slot_retained_wal_bytes", **labels) > 0


async def test_auth_validation_and_the_registered_jobs(client, admin, viewer, monkeypatch) -> None:
    assert (await client.get("/metrics")).status_code == 401
    assert (await client.get("/metrics", headers={"Authorization": "Bearer nonsense"})).status_code == 401
    assert (await client.get("/api/v1/monitoring/pipelines/1/metrics/history")).status_code == 401
    assert (await client.get("/metrics", headers=viewer)).status_code == 200
    monkeypatch.setenv("CDC_STUDIO_METRICS_PUBLIC", "true")
    get_settings.cache_clear()
    r = await client.get("/metrics")
    assert r.status_code == 200 and "cdcstudio_pipelines" in scrape(r.text)
    monkeypatch.delenv("CDC_STUDIO_METRICS_PUBLIC")
    get_settings.cache_clear()
    assert (await client.get("/metrics")).status_code == 401

    assert (await client.get("/api/v1/monitoring/pipelines/999/metrics/history", headers=viewer)).status_code == 404
    for params in ({"range": "2h"}, {"metrics": "rows_per_second,bogus"}, {"step": "5x"}):
        r = await client.get("/api/v1/monitoring/pipelines/999/metrics/history", headers=viewer, params=params)
        assert r.status_code == 422, (params, r.text)
    assert (
        await client.get("/api/v1/monitoring/sparklines", headers=viewer, params={"range": "1y"})
    ).status_code == 422

    # The app starts these on its scheduler (start_services registers every app job); each names a real function.
    jobs = {job: (ref, seconds) for job, ref, seconds in app_jobs(get_settings())}
    assert jobs["metrics-sample"] == ("core.monitoring.metrics:sample", get_settings().metrics_sample_s)
    assert jobs["metrics-rollup"] == ("core.monitoring.metrics:rollup", 60.0)
    for ref, _seconds in (jobs["metrics-sample"], jobs["metrics-rollup"]):
        module, func = ref.split(":")
        assert callable(getattr(importlib.import_module(module), func))
