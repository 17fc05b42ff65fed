"""The kafka_connect engine on a real stack: PostgreSQL -> Debezium on Kafka Connect -> Kafka -> app -> target.

Everything goes through the app's own API (the code the pages call): create, start, pause,
resume, a task forced to FAIL and restarted, the Connectors API, crash of the app and resume
from the offsets stored in the target, delete removing connector, slot and publication.
"""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest

from core.kafka import engine as kafka_engine
from tests.api.conftest import admin, client  # noqa: F401 - fixtures
from tests.api.test_cdc_api import converge, rows, run_sql, slots
from tests.api.test_cdc_crash import crash_pipeline, sql, wait_until
from tests.api.test_pipelines_api import make_connections, pipeline_body, wait_for_state
from tests.appprocess import AppProcess
from tests.pgcluster import PgCluster

SEED = (
    "CREATE SCHEMA app",
    "CREATE TABLE app.items (id bigint PRIMARY KEY, name text, n int NOT NULL, price numeric(12,2), "
    "seen timestamptz, at timestamp, day date, tags text[], raw bytea, ok boolean, score double precision)",
    "INSERT INTO app.items SELECT g, 'i' || g, 0, g * 1.25, '2024-01-01 00:00+00'::timestamptz + g * interval '1 s', "
    "'2024-01-01'::timestamp + g * interval '1 ms', '2024-01-01'::date + g % 365, ARRAY['a' || g, NULL], "
    "'\\x00ff'::bytea, g % 2 = 0, g / 3.0 FROM generate_series(1, 2000) g",
)
ITEMS = "SELECT id, name, n, price, seen, at, day, tags, raw, ok, score::text FROM {}.items ORDER BY id"  # NaN != NaN
CHANGES = (
    "INSERT INTO app.items VALUES (5001, E'new\\tline\\n\\\\ ü', 1, 9999999999.99, '1999-12-31 23:59:59.999999+05', "
    "'2000-02-29 12:34:56.789', '0001-01-01', '{\"x,y\",\"q\\\"t\"}', '\\x', true, 'NaN')",
    "UPDATE app.items SET n = n + 1, name = 'upd ' || id WHERE id <= 50",
    "UPDATE app.items SET id = 7001 WHERE id = 60",
    "DELETE FROM app.items WHERE id BETWEEN 100 AND 120",
    "INSERT INTO app.items (id, name, n) SELECT g, NULL, -1 FROM generate_series(8000, 8500) g",
)


@pytest.fixture
def kafka_env(kafka_stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """The app talks to the test stack (request it before `client`/`user`)."""
    monkeypatch.setenv("KAFKA_CONNECT_URL", kafka_stack.connect_url)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_stack.bootstrap)
    monkeypatch.setenv("KAFKA_SESSION_TIMEOUT_MS", "3000")
    monkeypatch.setenv("KAFKA_DEBEZIUM_HEARTBEAT_MS", "1000")
    monkeypatch.setenv("KAFKA_TOPIC_REPLICATION_FACTOR", "1")


async def wait_connector(client, admin, name: str, state: str, timeout: float = 60) -> dict:  # noqa: F811
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        r = await client.get(f"/api/v1/connect/connectors/{name}", headers=admin)
        if r.status_code == 200 and r.json()["state"] == state and all(t["state"] == state for t in r.json()["tasks"]):
            return r.json()
        assert loop.time() < deadline, r.text
        await asyncio.sleep(0.5)


async def test_kafka_pipeline_lifecycle(kafka_env, client, admin, pg, pg_db, target_db, monkeypatch) -> None:  # noqa: F811
    # No retries on connection loss, so killing Debezium's replication connection FAILs its task.
    real_config = kafka_engine.KafkaCdcWorker.connector_config
    monkeypatch.setattr(
        kafka_engine.KafkaCdcWorker, "connector_config", lambda self: {**real_config(self), "errors.max.retries": "0"}
    )
    run_sql(pg, pg_db, *SEED)
    src, tgt = await make_connections(client, admin, pg, pg_db, target_db)
    body = pipeline_body(
        src,
        tgt,
        source_schema="app",
        target_schema="copy",
        tables=["items"],
        mode="FULL_LOAD_AND_CDC",
        engine="kafka_connect",
    )
    r = await client.post("/api/v1/pipelines", headers=admin, json=body)
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    assert r.json()["engine"] == "kafka_connect"

    r = await client.post(f"/api/v1/pipelines/{pid}/start", headers=admin)
    assert r.status_code == 200, r.text
    status = await wait_for_state(client, admin, pid, {"RUNNING", "ERROR"}, timeout=120)
    assert status["state"] == "RUNNING", status
    assert status["full_load_status"] == "COMPLETED" and status["engine"] == "kafka_connect"
    assert status["connector"]["state"] == "RUNNING"
    name = status["connector"]["name"]
    assert name.startswith("cdc-studio-") and name.endswith(f"-p{pid}")  # this installation's tag in between
    await converge(pg, pg_db, target_db, ITEMS.format("app"), ITEMS.format("copy"))

    run_sql(pg, pg_db, *CHANGES)
    await converge(pg, pg_db, target_db, ITEMS.format("app"), ITEMS.format("copy"))
    # A new source column: messages carry it, the target gets it (auto-create is on), no value is lost.
    run_sql(
        pg, pg_db, "ALTER TABLE app.items ADD COLUMN note text", "UPDATE app.items SET note = 'n' || id WHERE id <= 3"
    )
    notes = "SELECT id, note FROM {}.items ORDER BY id"
    await converge(pg, pg_db, target_db, notes.format("app"), notes.format("copy"))
    lag = (await client.get(f"/api/v1/pipelines/{pid}/lag", headers=admin)).json()
    assert lag["insert_count"] >= 502 and lag["update_count"] >= 50 and lag["delete_count"] >= 21, lag
    events = (await client.get("/api/v1/monitoring/events", headers=admin, params={"pipeline_id": pid})).json()
    assert events and events[0]["table"] == "app.items"

    # The Connectors API shows the pipeline's connector with its topic.
    cluster = (await client.get("/api/v1/connect", headers=admin)).json()
    ours = next(c for c in cluster["connectors"] if c["name"] == name)
    assert ours["pipeline_id"] == pid and ours["state"] == "RUNNING"
    assert ours["config"]["database.password"] == "****"
    assert any(p["class_name"] == "io.debezium.connector.postgresql.PostgresConnector" for p in cluster["plugins"])

    # Pause: the connector pauses and changes wait; resume: they arrive.
    r = await client.post(f"/api/v1/pipelines/{pid}/pause", headers=admin)
    assert r.status_code == 200 and r.json()["state"] == "PAUSED", r.text
    # Positive signals, not a wait for nothing to happen: the connector and its task say PAUSED, the app's
    # consumer ended with the pause, and the change waits in the slot behind its confirmed position.
    await wait_connector(client, admin, name, "PAUSED")
    run_sql(pg, pg_db, "UPDATE app.items SET name = 'paused' WHERE id <= 10")
    slot = (await client.get(f"/api/v1/pipelines/{pid}", headers=admin)).json()["slot_name"]
    behind = f"SELECT confirmed_flush_lsn < pg_current_wal_lsn() FROM pg_replication_slots WHERE slot_name = '{slot}'"
    assert rows(pg, pg_db, behind) == [(True,)]
    assert (await client.get(f"/api/v1/pipelines/{pid}/status", headers=admin)).json()["connector"] is None
    assert rows(pg, target_db, "SELECT count(*) FROM copy.items WHERE name = 'paused'") == [(0,)]
    r = await client.post(f"/api/v1/pipelines/{pid}/resume", headers=admin)
    assert r.status_code == 200, r.text
    await wait_for_state(client, admin, pid, {"RUNNING"}, timeout=90)
    await converge(pg, pg_db, target_db, ITEMS.format("app"), ITEMS.format("copy"))

    # A task forced to FAIL: the pipeline shows ERROR with the trace; "restart failed" brings it back.
    slot = (await client.get(f"/api/v1/pipelines/{pid}", headers=admin)).json()["slot_name"]
    run_sql(pg, pg_db, f"SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = '{slot}'")
    status = await wait_for_state(client, admin, pid, {"ERROR"}, timeout=60)
    assert "FAILED" in status["error_message"] and status["connector"]["tasks"][0]["state"] == "FAILED"
    assert status["connector"]["tasks"][0]["trace"]
    run_sql(pg, pg_db, "UPDATE app.items SET n = n + 100 WHERE id BETWEEN 200 AND 220")
    r = await client.post(f"/api/v1/pipelines/{pid}/restart", headers=admin, params={"only_failed": True})
    assert r.status_code == 200, r.text
    await wait_for_state(client, admin, pid, {"RUNNING"}, timeout=90)
    await converge(pg, pg_db, target_db, ITEMS.format("app"), ITEMS.format("copy"))

    # Delete: the connector, the slot and the publication are all gone.
    assert (await client.delete(f"/api/v1/pipelines/{pid}", headers=admin)).status_code == 204
    r = await client.get(f"/api/v1/connect/connectors/{name}", headers=admin)
    assert r.status_code == 404
    assert slots(pg, pg_db) == []
    assert rows(pg, pg_db, "SELECT pubname FROM pg_publication") == []


async def test_kafka_engine_needs_the_cluster_settings(client, admin, pg, pg_db, target_db, monkeypatch) -> None:  # noqa: F811
    monkeypatch.delenv("KAFKA_CONNECT_URL", raising=False)
    run_sql(pg, pg_db, *SEED[:2])
    src, tgt = await make_connections(client, admin, pg, pg_db, target_db)
    body = pipeline_body(
        src, tgt, source_schema="app", target_schema="copy", tables=["items"], mode="CDC_ONLY", engine="kafka_connect"
    )
    r = await client.post("/api/v1/pipelines", headers=admin, json=body)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "engine"
    assert "KAFKA_CONNECT_URL" in r.json()["detail"][0]["msg"]
    r = await client.get("/api/v1/connect", headers=admin)
    assert r.status_code == 404 and "KAFKA_CONNECT_URL" in r.json()["detail"]


def test_app_crash_resumes_from_offsets_in_the_target(kafka_env, pg: PgCluster, pg_db: str, tmp_path) -> None:
    """SIGKILL the app while changes flow through Kafka: after a restart nothing is lost or applied twice."""
    target = pg_db + "_tgt"
    pg.create_database(target)
    run_sql(
        pg,
        pg_db,
        "CREATE SCHEMA crash",
        "CREATE TABLE crash.counters (id int PRIMARY KEY, n bigint NOT NULL)",
        "INSERT INTO crash.counters SELECT g, 0 FROM generate_series(1, 500) g",
    )
    app = AppProcess(tmp_path / "data", tmp_path / "app.log")
    stop = threading.Event()
    counts = {"increments": 0}

    def writer() -> None:
        conn = pg.connect(pg_db)
        i = 0
        with conn.cursor() as cur:
            while not stop.is_set():
                cur.execute("UPDATE crash.counters SET n = n + 1 WHERE id = %s", (1 + (i * 7919) % 500,))
                counts["increments"] += 1
                i += 1
                time.sleep(0.002)
        conn.close()

    w = threading.Thread(target=writer)
    try:
        app.start()
        h = app.token()
        pid = crash_pipeline(app, h, pg, pg_db, target, engine="kafka_connect")
        httpx.post(f"{app.base}/api/v1/pipelines/{pid}/start", headers=h, timeout=30)
        state = lambda: httpx.get(f"{app.base}/api/v1/pipelines/{pid}/status", headers=h).json()["state"]  # noqa: E731
        wait_until(lambda: state() == "RUNNING")
        w.start()
        total = "SELECT coalesce(sum(n), 0) FROM crash.counters"
        wait_until(lambda: sql(pg, target, total)[0][0] > 300)
        app.kill()  # mid-stream; Debezium keeps writing changes to Kafka while the app is down
        time.sleep(2.0)
        app.start()
        h = app.token()
        wait_until(lambda: state() == "RUNNING")
        time.sleep(1.0)
        stop.set()
        w.join()
        expected = sql(pg, pg_db, "SELECT id, n FROM crash.counters ORDER BY id")
        assert sum(n for _, n in expected) == counts["increments"]
        wait_until(lambda: sql(pg, target, "SELECT id, n FROM crash.counters ORDER BY id") == expected)
        stored = sql(pg, target, "SELECT source FROM cdc_studio.offsets WHERE pipeline_id = %s", (pid,))
        assert stored and all(s.startswith("kafka:") for (s,) in stored)
        assert httpx.delete(f"{app.base}/api/v1/pipelines/{pid}", headers=h, timeout=60).status_code == 204
        assert sql(pg, pg_db, "SELECT slot_name FROM pg_replication_slots") == []
    finally:
        stop.set()
        if w.is_alive():
            w.join()
        app.terminate()
        pg.drop_database(target)


async def test_a_source_that_goes_down_is_shown_while_connect_says_running(
    kafka_env, client, admin, pg, pg_db, target_db
) -> None:  # noqa: F811
    """Connect keeps the connector RUNNING while Debezium quietly retries; the app tells from the source side."""
    role = f"dbz_{pg_db}"
    run_sql(
        pg,
        pg_db,
        f"CREATE ROLE {role} LOGIN REPLICATION PASSWORD 'dbz-pw-1'",
        f"CREATE SCHEMA app AUTHORIZATION {role}",
        "CREATE TABLE app.items (id bigint PRIMARY KEY, name text)",
        f"ALTER TABLE app.items OWNER TO {role}",
        f"GRANT CREATE ON DATABASE {pg_db} TO {role}",
        "INSERT INTO app.items SELECT g, 'i' || g FROM generate_series(1, 100) g",
    )
    ids = []
    for name, db, usage, user, password in (
        ("src", pg_db, "source", role, "dbz-pw-1"),
        ("tgt", target_db, "target", pg.user, pg.password),
    ):
        r = await client.post(
            "/api/v1/connections",
            headers=admin,
            json={
                "name": name,
                "kind": "postgresql",
                "usage": usage,
                "host": pg.host,
                "port": pg.port,
                "database": db,
                "username": user,
                "password": password,
            },
        )
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    body = pipeline_body(
        *ids,
        source_schema="app",
        target_schema="copy",
        tables=["items"],
        mode="FULL_LOAD_AND_CDC",
        engine="kafka_connect",
    )
    pid = (await client.post("/api/v1/pipelines", headers=admin, json=body)).json()["id"]
    assert (await client.post(f"/api/v1/pipelines/{pid}/start", headers=admin)).status_code == 200
    assert (await wait_for_state(client, admin, pid, {"RUNNING", "ERROR"}, timeout=120))["state"] == "RUNNING"
    query = "SELECT id, name FROM {}.items ORDER BY id"
    await converge(pg, pg_db, target_db, query.format("app"), query.format("copy"))

    # The source "goes down" for this role: no new logins, its sessions (Debezium's included) end.
    run_sql(
        pg,
        pg_db,
        f"ALTER ROLE {role} NOLOGIN",
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'",
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while True:
        lag = (await client.get(f"/api/v1/pipelines/{pid}/lag", headers=admin)).json()
        if lag.get("warning"):
            break
        assert loop.time() < deadline, lag
        await asyncio.sleep(1.0)
    assert lag["state"] == "RUNNING" and lag["connector"]["state"] == "RUNNING", lag
    assert "cannot be reached" in lag["warning"] or "nobody has read" in lag["warning"], lag

    # Back up: Debezium reconnects by itself, changes flow again and the warning goes away.
    run_sql(pg, pg_db, f"ALTER ROLE {role} LOGIN", "UPDATE app.items SET name = 'after' WHERE id <= 5")
    await converge(pg, pg_db, target_db, query.format("app"), query.format("copy"), timeout=120)
    deadline = loop.time() + 30
    while (await client.get(f"/api/v1/pipelines/{pid}/lag", headers=admin)).json().get("warning"):
        assert loop.time() < deadline
        await asyncio.sleep(1.0)
    assert (await client.delete(f"/api/v1/pipelines/{pid}", headers=admin)).status_code == 204
    assert slots(pg, pg_db) == []


async def test_sink_connect_needs_a_jdbc_sink_plugin_on_the_cluster(
    kafka_env, client, admin, pg, pg_db, target_db
) -> None:  # noqa: F811
    """This cluster has no JDBC sink plugin: sink 'connect' is refused, naming the sink plugins it does have."""
    run_sql(pg, pg_db, *SEED[:2])
    src, tgt = await make_connections(client, admin, pg, pg_db, target_db)
    body = pipeline_body(
        src,
        tgt,
        source_schema="app",
        target_schema="copy",
        tables=["items"],
        mode="CDC_ONLY",
        engine="kafka_connect",
        sink="connect",
    )
    r = await client.post("/api/v1/pipelines", headers=admin, json=body)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"][0]
    assert detail["loc"][-1] == "sink" and "no JDBC sink connector plugin" in detail["msg"]
    assert "FileStreamSinkConnector" in detail["msg"]
    assert (await client.get("/api/v1/pipelines", headers=admin)).json() == []  # nothing saved
    body.update(engine="embedded")
    r = await client.post("/api/v1/pipelines", headers=admin, json=body)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "sink"
