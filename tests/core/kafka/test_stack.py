"""Smoke test of the Kafka stack: PostgreSQL -> Debezium (Kafka Connect) -> tansu -> confluent-kafka consumer."""

from __future__ import annotations

import json
import time
import uuid

import httpx
from confluent_kafka import Consumer, Message

from tests.kafkastack import KafkaStack
from tests.pgcluster import PgCluster


def _connector_config(pg: PgCluster, dbname: str, prefix: str) -> dict[str, str]:
    return {
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "database.hostname": pg.host,
        "database.port": str(pg.port),
        "database.user": pg.user,
        "database.password": pg.password,
        "database.dbname": dbname,
        "topic.prefix": prefix,
        "plugin.name": "pgoutput",
        "slot.name": prefix,
        "publication.name": prefix,
        "publication.autocreate.mode": "filtered",
        "table.include.list": "public.items",
        "snapshot.mode": "no_data",
        "decimal.handling.mode": "string",
        "heartbeat.interval.ms": "1000",
        # One partition per change topic keeps every change of the table in commit order.
        "topic.creation.default.partitions": "1",
        "topic.creation.default.replication.factor": "1",
    }


def _wait_running(client: httpx.Client, name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    status: dict = {}
    while time.monotonic() < deadline:
        r = client.get(f"/connectors/{name}/status")
        if r.status_code == 200:
            status = r.json()
            tasks = status.get("tasks") or []
            assert not any(t["state"] == "FAILED" for t in tasks), status
            if status["connector"]["state"] == "RUNNING" and tasks and all(t["state"] == "RUNNING" for t in tasks):
                return
        time.sleep(0.3)
    raise AssertionError(f"connector {name} not RUNNING within {timeout} s: {status}")


def _wait_topic(consumer: Consumer, topic: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while topic not in consumer.list_topics(timeout=5).topics:
        assert time.monotonic() < deadline, f"topic {topic} was not created within {timeout} s"
        time.sleep(0.3)


def _consume(bootstrap: str, topic: str, count: int, timeout: float = 60) -> list:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"smoke-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            # tansu holds a join for about half the session timeout; librdkafka's default heartbeat
            # interval (3 s) would let a 3 s session expire and replay the topic from the start.
            "session.timeout.ms": 3000,
            "heartbeat.interval.ms": 1000,
        }
    )
    try:
        _wait_topic(consumer, topic)
        consumer.subscribe([topic])
        messages: list = []
        deadline = time.monotonic() + timeout
        while len(messages) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            messages.append(msg)
        return messages
    finally:
        consumer.close()


def _drop_slot_and_publication(pg: PgCluster, dbname: str, name: str, timeout: float = 30) -> None:
    """Debezium leaves its slot and publication behind when the connector is deleted."""
    conn = pg.connect(dbname)
    try:
        with conn.cursor() as cur:
            deadline = time.monotonic() + timeout
            while True:
                cur.execute("SELECT active FROM pg_replication_slots WHERE slot_name = %s", (name,))
                row = cur.fetchone()
                if row is None:
                    break
                if not row[0]:
                    cur.execute("SELECT pg_drop_replication_slot(%s)", (name,))
                    break
                assert time.monotonic() < deadline, f"slot {name} still active {timeout} s after deleting the connector"
                time.sleep(0.3)
            cur.execute("SELECT quote_ident(%s)", (name,))
            cur.execute(f"DROP PUBLICATION IF EXISTS {cur.fetchone()[0]}")
            cur.execute("SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s", (name,))
            assert cur.fetchone()[0] == 0
            cur.execute("SELECT count(*) FROM pg_publication WHERE pubname = %s", (name,))
            assert cur.fetchone()[0] == 0
    finally:
        conn.close()


def _decode(msg: Message) -> tuple[dict | None, dict | None]:
    key = json.loads(msg.key()) if msg.key() is not None else None
    value = json.loads(msg.value()) if msg.value() is not None else None
    return key, value


def test_postgres_changes_flow_through_debezium_into_kafka(kafka_stack: KafkaStack, pg: PgCluster, pg_db: str) -> None:
    prefix = f"smoke_{uuid.uuid4().hex[:10]}"
    topic = f"{prefix}.public.items"
    conn = pg.connect(pg_db)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE public.items (id integer PRIMARY KEY, name text NOT NULL, price numeric(10,2))")

    client = httpx.Client(base_url=kafka_stack.connect_url, timeout=30)
    try:
        r = client.post("/connectors", json={"name": prefix, "config": _connector_config(pg, pg_db, prefix)})
        assert r.status_code == 201, r.text
        _wait_running(client, prefix)
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s", (prefix,))
            assert cur.fetchone()[0] == 1, "the running task has created its slot"
            cur.execute("INSERT INTO public.items VALUES (1, 'apple', 1.50), (2, 'pear', 2.25)")
            cur.execute("UPDATE public.items SET name = 'green apple' WHERE id = 1")
            cur.execute("DELETE FROM public.items WHERE id = 2")

        messages = _consume(kafka_stack.bootstrap, topic, count=5)
        decoded = [_decode(m) for m in messages]
        assert len(decoded) == 5, decoded
        ops = [(key, value["op"] if value else None) for key, value in decoded]
        assert ops == [({"id": 1}, "c"), ({"id": 2}, "c"), ({"id": 1}, "u"), ({"id": 2}, "d"), ({"id": 2}, None)]

        (_, ins1), (_, ins2), (_, upd), (_, dele), (_, tomb) = decoded
        assert ins1["before"] is None and ins1["after"] == {"id": 1, "name": "apple", "price": "1.50"}
        assert ins2["after"] == {"id": 2, "name": "pear", "price": "2.25"}
        # Default replica identity: no before image on update, only the key on delete.
        assert upd["before"] is None and upd["after"] == {"id": 1, "name": "green apple", "price": "1.50"}
        assert dele["after"] is None and dele["before"]["id"] == 2
        assert tomb is None, "a delete is followed by a tombstone"

        sources = [value["source"] for _, value in decoded[:4]]
        assert all(s["db"] == pg_db and s["schema"] == "public" and s["table"] == "items" for s in sources)
        lsns = [s["lsn"] for s in sources]
        assert all(isinstance(lsn, int) and lsn > 0 for lsn in lsns)
        assert lsns == sorted(set(lsns)), "changes arrive in WAL order"
        tx_ids = [s["txId"] for s in sources]
        assert tx_ids[0] == tx_ids[1] < tx_ids[2] < tx_ids[3], "one transaction per statement"
    finally:
        client.delete(f"/connectors/{prefix}")
        client.close()
        conn.close()
        _drop_slot_and_publication(pg, pg_db, prefix)
