"""The kafka_connect engine with a SQL Server source, on the real tansu stack, without a SQL Server.

SQL Server is faked at the pyodbc boundary (FakeMssql of tests/core/test_mssql_engine.py: catalog,
CDC checks, the full load's SELECT). Of Kafka Connect only the starting of the connector is
replaced: `ensure_connector` records the config it would PUT and reports RUNNING, and the status
watch is off. Debezium's part is played by this test: change events shaped as Debezium's SQL
Server connector documents them (JSON without schemas, decimal string, adaptive time precision,
binary hex) are produced with confluent_kafka into the real tansu topics the worker subscribes to.
Everything else is real: KafkaCdcWorker (driven directly in a thread, as the runner runs it) ->
consumer -> core/kafka/mssql_values.py -> PgApplier -> a real PostgreSQL target, with the Kafka
offsets in cdc_studio.offsets.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from core.cdc.sink import ChangeSink
from core.config import get_settings
from core.connectors.base import ConnectionSpec
from core.fullload import TablePlan
from core.kafka import debezium
from core.kafka.connect_client import ConnectorStatus, TaskStatus
from core.kafka.engine import KafkaCdcWorker
from core.plans import CdcPlan
from tests.core.cdc.test_engine_mssql import FakeMssql, install, recorded  # noqa: F401 - fixture
from tests.core.kafka.test_engine import kafka_env  # noqa: F401 - fixture
from tests.pgcluster import PgCluster
from tests.workerthread import Run
from tests.workerthread import running as worker_running
from tests.workerthread import wait_for as worker_wait_for

SOURCE = ConnectionSpec(
    kind="sqlserver", host="mssql.invalid", port=1433, database="Shop", username="sa", password="pw"
)
# sys.columns of dbo.orders: name, type, max_length (bytes), precision, scale, nullable
COLUMNS = [
    ("id", "int", 4, 10, 0, False),
    ("name", "nvarchar", 100, 0, 0, True),
    ("amount", "decimal", 9, 18, 4, True),
    ("price", "money", 8, 19, 4, True),
    ("created", "datetime2", 8, 27, 7, True),
    ("legacy", "datetime", 8, 23, 3, True),
    ("day", "date", 3, 10, 0, True),
    ("at", "time", 5, 12, 3, True),
    ("paid", "bit", 1, 1, 0, True),
    ("token", "uniqueidentifier", 16, 0, 0, True),
    ("blob", "varbinary", -1, 0, 0, True),
    ("seen", "datetimeoffset", 10, 34, 7, True),
    ("score", "float", 8, 53, 0, True),
]
NAMES = [c[0] for c in COLUMNS]
PLAN_TABLES = [TablePlan("dbo", "orders", "sales", "orders")]


def row(id_: int, name: str | None, **values: Any) -> dict[str, Any]:
    """A row as Debezium's SQL Server connector writes it (JSON without schemas); unnamed columns are null."""
    out: dict[str, Any] = dict.fromkeys(NAMES)
    out.update(id=id_, name=name, **values)
    return out


# Debezium JSON values (as documented) and what the target must print for them (::text, UTC).
R1 = row(
    1,
    "first 'q'\ttab\nnew line \\ ü €",
    amount="12345678901234.5678",
    price="-922337203685477.5808",
    created=1709211956123456700,
    legacy=1709211956123,
    day=19782,
    at=49556123,
    paid=True,
    token="6F9619FF-8B86-D011-B42D-00C04FC964FF",
    blob="00ff105c",
    seen="2024-01-01T21:34:05.1234567Z",
    score=0.1,
)
R1_TEXT = (
    "1",
    "first 'q'\ttab\nnew line \\ ü €",
    "12345678901234.5678",
    "-922337203685477.5808",
    "2024-02-29 13:05:56.123457",
    "2024-02-29 13:05:56.123",
    "2024-02-29",
    "13:45:56.123",
    "true",
    "6f9619ff-8b86-d011-b42d-00c04fc964ff",
    "\\x00ff105c",
    "2024-01-01 21:34:05.123457+00",
    "0.1",
)
R2 = row(2, "two", amount="-0.0001", created=-62135596800000000000, day=-719162, at=0, paid=False, blob="")
R2_TEXT = (
    "2",
    "two",
    "-0.0001",
    None,
    "0001-01-01 00:00:00",
    None,
    "0001-01-01",
    "00:00:00",
    "false",
    None,
    "\\x",
    None,
    None,
)
R3 = row(3, "three")
R1_V2 = {**R1, "name": "renamed", "amount": "1.0000", "paid": False, "seen": "2024-06-30T22:00:00Z"}
R1_V2_TEXT = ("1", "renamed", "1.0000") + R1_TEXT[3:8] + ("false",) + R1_TEXT[9:11] + ("2024-06-30 22:00:00+00", "0.1")
R20 = {**R2, "id": 20, "name": "moved key"}
R20_TEXT = ("20", "moved key") + R2_TEXT[2:]


def lsn_text(n: int) -> str:
    return f"00000027:{n:08x}:0005"


def envelope(op: str, before: dict | None, after: dict | None, lsn: int, serial: int = 1) -> dict:
    """A change event value of Debezium's SQL Server connector (JSON converter, schemas off)."""
    return {
        "before": before,
        "after": after,
        "op": op,
        "ts_ms": 1559729471739,
        "transaction": None,
        "source": {
            "version": "3.2.0.Final",
            "connector": "sqlserver",
            "name": "cdcstudio",
            "ts_ms": 1559729468470,
            "snapshot": "false",
            "db": "Shop",
            "sequence": None,
            "schema": "dbo",
            "table": "orders",
            "change_lsn": lsn_text(lsn - 2),
            "commit_lsn": lsn_text(lsn),
            "event_serial_no": serial,
        },
    }


# --------------------------------------------------------------------------------------------


@pytest.fixture
def stack_env(kafka_env, kafka_stack, monkeypatch: pytest.MonkeyPatch) -> Any:  # noqa: F811
    """The stack's addresses, and an installation tag of its own so topics never meet another run's."""
    monkeypatch.setenv("CDC_STUDIO_INSTANCE", "ms" + uuid.uuid4().hex[:8])
    get_settings.cache_clear()
    yield kafka_stack
    get_settings.cache_clear()


@dataclass
class Fake:
    server: FakeMssql
    puts: list[tuple[str, dict[str, str]]]
    order: list[str]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, stack_env) -> Fake:  # noqa: ANN001
    server = FakeMssql()
    server.table("dbo", "orders", COLUMNS, ["id"])
    install(monkeypatch, server)
    puts: list[tuple[str, dict[str, str]]] = []
    order: list[str] = []

    def ensure_connector(
        self: KafkaCdcWorker, client: Any, name: str | None = None, config: dict[str, str] | None = None
    ) -> ConnectorStatus:
        name = name or self.connector
        puts.append((name, config or self.connector_config()))
        order.append("connector RUNNING")
        status = ConnectorStatus(
            name=name, state="RUNNING", worker_id="w:8083", type="source", tasks=[TaskStatus(0, "RUNNING", "w:8083")]
        )
        self._connector_seen(status)
        # Debezium's first heartbeat, once it streams (the engine waits for it before a full load).
        from confluent_kafka import Producer

        producer = Producer({"bootstrap.servers": stack_env.bootstrap})
        producer.produce(f"__debezium-heartbeat.{self.prefix}", key=b'{"serverName":"x"}', value=b'{"ts_ms":1}')
        producer.flush(10)
        order.append("heartbeat")
        return status

    monkeypatch.setattr(KafkaCdcWorker, "ensure_connector", ensure_connector)
    monkeypatch.setattr(KafkaCdcWorker, "_watch_connector", lambda self, client: None)
    server.on_select = lambda key: order.append(f"full load read {key[0]}.{key[1]}")
    return Fake(server, puts, order)


def make_plan(pg: PgCluster, db: str, pipeline_id: int, mode: str) -> CdcPlan:
    target = ConnectionSpec(
        kind="postgresql", host=pg.host, port=pg.port, database=db, username=pg.user, password=pg.password
    )
    return CdcPlan(
        pipeline_id=pipeline_id,
        source=SOURCE,
        target=target,
        tables=list(PLAN_TABLES),
        mode=mode,
        auto_create=True,
        target_table_policy="fail",
        engine="kafka_connect",
    )


@contextmanager
def running(plan: CdcPlan, sink: ChangeSink | None = None) -> Iterator[Run]:
    """The Kafka worker in a thread (Connect's side faked by `fake`), reporting to `sink`."""
    with worker_running(plan, KafkaCdcWorker, timeout_s=60, sink=sink) as run:
        yield run


def wait_for(run: Run, condition: Callable[[], bool], timeout_s: float = 60) -> None:
    worker_wait_for(run, condition, timeout_s, every_s=0.1)


def create_topic(bootstrap: str, topic: str) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        future.result(30)


def produce(bootstrap: str, topic: str, messages: list[tuple[dict, dict | None]]) -> None:
    """(key, value) pairs into partition 0 of `topic`, in order; a None value is a tombstone."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": False, "linger.ms": 0})
    for key, value in messages:
        producer.produce(
            topic,
            key=json.dumps(key).encode(),
            partition=0,
            value=None if value is None else json.dumps(value).encode(),
        )
        producer.flush(30)
    assert producer.flush(30) == 0


def query(pg: PgCluster, db: str, statement: str, params: tuple = ()) -> list[tuple]:
    conn = pg.connect(db)
    try:
        with conn.cursor() as cur:
            cur.execute(statement, params or None)
            return cur.fetchall()
    finally:
        conn.close()


def target_rows(pg: PgCluster, db: str) -> list[tuple]:
    if not query(pg, db, "SELECT to_regclass('sales.orders') IS NOT NULL")[0][0]:
        return []
    names = ", ".join(f'"{n}"::text' for n in NAMES)
    conn = pg.connect(db)
    try:
        with conn.cursor() as cur:
            cur.execute("SET TIME ZONE 'UTC'")
            cur.execute(f"SELECT {names} FROM sales.orders ORDER BY id")
            return cur.fetchall()
    finally:
        conn.close()


def stored_offsets(pg: PgCluster, db: str, pipeline_id: int) -> dict[str, int]:
    rows = query(pg, db, "SELECT source, position FROM cdc_studio.offsets WHERE pipeline_id = %s", (pipeline_id,))
    return {source: int(position) for source, position in rows}


def key(id_: int) -> dict:
    return {"id": id_}


# --------------------------------------------------------------------------------------------


def test_cdc_only_applies_debezium_sqlserver_events_and_resumes_after_stored_offsets(
    fake: Fake, stack_env, pg: PgCluster, target_db: str, recorded: list
) -> None:  # noqa: F811
    pid = 41
    plan = make_plan(pg, target_db, pid, "CDC_ONLY")
    topic = debezium.topic_name(pid, "dbo", "orders", "Shop")
    assert topic == f"{debezium.topic_prefix(pid)}.Shop.dbo.orders"
    create_topic(stack_env.bootstrap, topic)
    with running(plan, recorded) as run:
        # The connector config the worker would PUT: Debezium's SQL Server connector, no data snapshot.
        assert [name for name, _ in fake.puts] == [debezium.connector_name(pid)]
        config = fake.puts[0][1]
        assert config["connector.class"] == "io.debezium.connector.sqlserver.SqlServerConnector"
        assert config["database.names"] == "Shop"
        assert config["table.include.list"] == r"^dbo\.orders$"
        assert config["topic.prefix"] == debezium.topic_prefix(pid)
        assert config["schema.history.internal.kafka.topic"] == f"{debezium.topic_prefix(pid)}.schema-history"
        assert config["schema.history.internal.kafka.bootstrap.servers"] == stack_env.bootstrap
        assert config["snapshot.mode"] == "no_data"
        assert config["time.precision.mode"] == "adaptive" and config["decimal.handling.mode"] == "string"
        assert config["binary.handling.mode"] == "hex" and config["topic.creation.default.partitions"] == "1"
        assert list(run.worker._topics) == [topic]
        assert target_rows(pg, target_db) == []  # CDC_ONLY: the target table was created, empty

        produce(
            stack_env.bootstrap,
            topic,
            [
                (key(1), envelope("c", None, R1, 0x10)),
                (key(2), envelope("c", None, R2, 0x10)),
                (key(3), envelope("c", None, R3, 0x20)),
                (key(1), envelope("u", R1, R1_V2, 0x30, serial=2)),
                # a primary-key change: delete of the old key, its tombstone, create of the new key (one LSN)
                (key(2), envelope("d", R2, None, 0x40, serial=1)),
                (key(2), None),
                (key(20), envelope("c", None, R20, 0x40, serial=2)),
                (key(3), envelope("d", R3, None, 0x50)),
                (key(3), None),
            ],
        )
        wait_for(run, lambda: target_rows(pg, target_db) == [R1_V2_TEXT, R20_TEXT])
        wait_for(run, lambda: stored_offsets(pg, target_db, pid) == {f"kafka:{topic}:0": 8})
        c = run.worker.counters
        assert (c.inserts, c.updates, c.deletes) == (4, 1, 2)
    assert [e.op for e in recorded] == ["insert", "insert", "insert", "update", "delete", "insert", "delete"]

    # While the app is down more changes arrive; a new worker reads after the stored offset only.
    produce(
        stack_env.bootstrap,
        topic,
        [
            (key(1), envelope("u", R1_V2, {**R1_V2, "name": "after restart"}, 0x60, serial=2)),
            (key(30), envelope("c", None, row(30, "thirty", score=1e300), 0x70)),
        ],
    )
    recorded.clear()
    with running(plan, recorded) as run:
        wait_for(run, lambda: stored_offsets(pg, target_db, pid) == {f"kafka:{topic}:0": 10})
        wait_for(run, lambda: len(target_rows(pg, target_db)) == 3)
        time.sleep(1.0)  # anything read again would be counted by now
        assert run.worker.counters.events == 2
    assert [e.op for e in recorded] == ["update", "insert"]
    rows = target_rows(pg, target_db)
    assert rows[0] == ("1", "after restart") + R1_V2_TEXT[2:]
    assert rows[1] == R20_TEXT
    assert rows[2] == ("30", "thirty") + (None,) * 10 + ("1e+300",)


def test_full_load_starts_after_the_connector_runs_and_a_restart_does_not_load_again(
    fake: Fake, stack_env, pg: PgCluster, target_db: str, recorded: list
) -> None:  # noqa: F811
    pid = 42
    plan = make_plan(pg, target_db, pid, "FULL_LOAD_AND_CDC")
    topic = debezium.topic_name(pid, "dbo", "orders", "Shop")
    create_topic(stack_env.bootstrap, topic)
    # What the full load's SELECT returns, as pyodbc hands it over.
    fake.server.catalog[("dbo", "orders")].rows = [
        (
            1,
            "loaded",
            Decimal("1.0000"),
            Decimal("2.5000"),
            datetime(2024, 1, 1, 12, 0),
            None,
            None,
            None,
            True,
            None,
            None,
            None,
            0.5,
        ),
        (2, "loaded two", None, None, None, None, None, None, None, None, None, None, None),
    ]
    with running(plan, recorded) as run:
        # the load reads only after Debezium streams (its first heartbeat): nothing committed is missed
        assert fake.order == ["connector RUNNING", "heartbeat", "full load read dbo.orders"]
        assert run.worker.full_load_status == "COMPLETED"
        assert [r[:2] for r in target_rows(pg, target_db)] == [("1", "loaded"), ("2", "loaded two")]
        # The load marked the topic's position before its first message.
        assert stored_offsets(pg, target_db, pid) == {f"kafka:{topic}:0": -1}
        # Debezium also carries a change the load already copied (it committed while the load ran) and a
        # later one: applying both again converges.
        loaded1 = row(1, "loaded", amount="1.0000", price="2.5000", created=1704110400000000000, paid=True, score=0.5)
        produce(
            stack_env.bootstrap,
            topic,
            [
                (key(1), envelope("u", {**loaded1, "name": "before"}, loaded1, 0x10, serial=2)),
                (key(2), envelope("d", row(2, "loaded two"), None, 0x20)),
                (key(2), None),
                (key(1), envelope("u", loaded1, {**loaded1, "name": "changed"}, 0x30, serial=2)),
            ],
        )
        wait_for(run, lambda: stored_offsets(pg, target_db, pid) == {f"kafka:{topic}:0": 3})
        wait_for(run, lambda: [r[:2] for r in target_rows(pg, target_db)] == [("1", "changed")])
    rows = target_rows(pg, target_db)
    assert rows == [
        ("1", "changed", "1.0000", "2.5000", "2024-01-01 12:00:00", None, None, None, "true", None, None, None, "0.5")
    ]

    # A restart: no second full load (it would fail on the existing table), nothing applied twice.
    fake.order.clear()
    recorded.clear()
    with running(plan, recorded) as run:
        time.sleep(2.0)
        assert fake.order == ["connector RUNNING", "heartbeat"]
        assert run.worker.counters.events == 0
    assert recorded == []
    assert target_rows(pg, target_db) == rows
