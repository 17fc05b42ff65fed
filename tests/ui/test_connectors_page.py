"""The Connectors page against a real Kafka Connect: foreign connectors, actions, validated configs, roles."""

from __future__ import annotations

import asyncio
import json

import httpx
from nicegui.testing import User

from core import audit_trail, connect_cluster
from data.audit import AuditQuery
from tests.core.kafka.test_engine import kafka_env  # noqa: F401 - fixture
from tests.pgcluster import PgCluster
from tests.ui.helpers import WAIT, admin_actor, eventually, login, make_user, set_value, table_rows


def foreign_connector(pg: PgCluster, db: str, name: str) -> dict:
    """A Debezium connector someone else made on the cluster (not through CDC Studio)."""
    return {
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "database.hostname": pg.host,
        "database.port": str(pg.port),
        "database.user": pg.user,
        "database.password": pg.password,
        "database.dbname": db,
        "plugin.name": "pgoutput",
        "slot.name": name,
        "publication.name": name,
        "publication.autocreate.mode": "filtered",
        "table.include.list": "public.t",
        "topic.prefix": name,
        "snapshot.mode": "no_data",
    }


async def connector_state(stack, name: str, state: str, timeout: float = 60) -> None:  # noqa: ANN001
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with httpx.AsyncClient() as http:
        while True:
            r = await http.get(f"{stack.connect_url}/connectors/{name}/status")
            if r.status_code == 200 and r.json()["connector"]["state"] == state:
                return
            assert loop.time() < deadline, r.text
            await asyncio.sleep(0.5)


async def test_connectors_page_lists_acts_and_validates(
    kafka_env,
    kafka_stack,
    app_env,
    user: User,  # noqa: F811
    pg: PgCluster,
    pg_db: str,
) -> None:
    conn = pg.connect(pg_db)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id int PRIMARY KEY)")
    conn.close()
    name = f"foreign_{pg_db}"
    async with httpx.AsyncClient() as http:
        r = await http.post(
            f"{kafka_stack.connect_url}/connectors", json={"name": name, "config": foreign_connector(pg, pg_db, name)}
        )
        assert r.status_code == 201, r.text
    try:
        await connector_state(kafka_stack, name, "RUNNING")
        await login(user)
        await user.open("/connectors")
        await user.should_see(marker=f"connector-{name}", retries=WAIT)
        await user.should_see(marker="state-RUNNING", retries=WAIT)
        await user.should_see("Kafka Connect 4.", retries=WAIT)
        plugins = {r["class_name"] for r in table_rows(user, "plugins-table")}
        assert "io.debezium.connector.postgresql.PostgresConnector" in plugins

        user.find(marker=f"pause-{name}").click()
        await connector_state(kafka_stack, name, "PAUSED")
        await user.should_see(marker="state-PAUSED", retries=WAIT)
        user.find(marker=f"resume-{name}").click()
        await connector_state(kafka_stack, name, "RUNNING")

        # A new connector: Connect's validation shows per-field errors, and nothing is created.
        user.find(marker="new-connector").click()
        set_value(user, "connector-name", "broken")
        bad = {
            "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
            "topic.prefix": "b",
            "database.hostname": pg.host,
            "database.user": pg.user,
            "database.dbname": pg_db,
            "database.port": "not-a-port",
        }
        set_value(user, "connector-config", json.dumps(bad))
        user.find(marker="save-connector").click()
        await user.should_see(marker="error-database.port", retries=WAIT)
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"{kafka_stack.connect_url}/connectors/broken")).status_code == 404

        # A viewer sees the cluster but has no buttons.
        make_user("viewer@example.com", "viewer-password-1", "viewer")
        user.find(marker="logout").click()
        await user.should_see(marker="email", retries=WAIT)
        await login(user, "viewer@example.com", "viewer-password-1")
        await user.open("/connectors")
        await user.should_see(marker=f"connector-{name}", retries=WAIT)
        await user.should_not_see(marker=f"pause-{name}")
        await user.should_not_see(marker="new-connector")

        # the actions and a saved config are in the audit trail: the config as a diff, its password masked
        changed = foreign_connector(pg, pg_db, name) | {"name": name, "heartbeat.interval.ms": "60000"}
        await asyncio.to_thread(connect_cluster.save, admin_actor(), name, changed)
        query = AuditQuery(object_type="connector", object_id=name)
        trail = await asyncio.to_thread(audit_trail.search, admin_actor(), query)
        assert [e.action for e in trail] == ["connector.save", "connector.resume", "connector.pause"]
        assert trail[0].detail == "updated" and trail[0].changes == {"heartbeat.interval.ms": [None, "60000"]}
        assert pg.password not in str([e.model_dump() for e in trail])
        await connector_state(kafka_stack, name, "RUNNING")
    finally:
        async with httpx.AsyncClient() as http:
            await http.delete(f"{kafka_stack.connect_url}/connectors/{name}")
        await eventually(lambda: _drop_slot(pg, pg_db, name), timeout=30)


def _drop_slot(pg: PgCluster, db: str, name: str) -> bool:
    conn = pg.connect(db)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT active FROM pg_replication_slots WHERE slot_name = %s", (name,))
            row = cur.fetchone()
            if row is None:
                return True
            if row[0]:
                return False
            cur.execute("SELECT pg_drop_replication_slot(%s)", (name,))
            cur.execute(f'DROP PUBLICATION IF EXISTS "{name}"')
            return True
    finally:
        conn.close()
