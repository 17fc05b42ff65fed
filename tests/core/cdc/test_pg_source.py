"""The PostgreSQL side of CDC against a real cluster: publication, slot, snapshot handoff, stream, drop."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg2
import psycopg2.extras
import pytest

from core.cdc.events import ChangeEvent
from core.cdc.pg_source import (
    LogicalStream,
    SlotBusy,
    SlotExists,
    check_replica_identity,
    check_wal_level,
    create_slot,
    create_slot_with_snapshot,
    drop_slot_and_publication,
    emit_heartbeat,
    ensure_publication,
    publication_name,
    slot_name,
    slot_status,
    stream_application_name,
)
from core.cdc.pgoutput import TxnEnd
from core.connectors.base import ConnectionSpec
from core.errors import ConnectorError, ValidationFailed
from tests.pgcluster import PgCluster

SLOT = slot_name(7)
PUB = publication_name(7)


@pytest.fixture
def spec(pg: PgCluster, pg_db: str) -> ConnectionSpec:
    return ConnectionSpec(
        kind="postgresql", host=pg.host, port=pg.port, database=pg_db, username=pg.user, password=pg.password
    )


@pytest.fixture
def source(pg: PgCluster, pg_db: str, spec: ConnectionSpec) -> Iterator:
    """An autocommit session with table t(id, v) published; slot and publication dropped afterwards."""
    conn = pg.connect(pg_db)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
    ensure_publication(spec, PUB, [("public", "t")])
    yield conn
    conn.close()
    drop_slot_and_publication(spec, SLOT, PUB, timeout_s=10)


def _sql(conn, statement: str, args: tuple = ()) -> list:
    with conn.cursor() as cur:
        cur.execute(statement, args)
        return cur.fetchall() if cur.description else []


def _read(stream: LogicalStream, txns: int, timeout_s: float = 15) -> list:
    items: list = []
    deadline = time.monotonic() + timeout_s
    while sum(isinstance(i, TxnEnd) for i in items) < txns:
        assert time.monotonic() < deadline, f"only {items} arrived"
        items.extend(stream.poll(0.2))
    return items


def _ids(items: list) -> list[int]:
    return [int(e.after["id"]) for e in items if isinstance(e, ChangeEvent) and e.op == "insert"]


def _wait(condition, timeout_s: float = 10, stream: LogicalStream | None = None) -> None:
    """Poll `condition` (keeping the stream's session served) until it holds."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        if stream is not None:
            assert stream.poll(0.1) == []
        else:
            time.sleep(0.1)


def test_names() -> None:
    assert slot_name(42) == "cdc_studio_p42" and publication_name(42) == "cdc_studio_p42"


def test_ensure_publication_creates_then_sets_tables(source, spec: ConnectionSpec) -> None:
    _sql(source, 'CREATE TABLE "Odd Name" (id int PRIMARY KEY)')

    def published() -> list:
        return _sql(
            source, "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = %s ORDER BY 2", (PUB,)
        )

    assert published() == [("public", "t")]
    assert ensure_publication(spec, PUB, [("public", "t")]) == "unchanged"
    assert ensure_publication(spec, PUB, [("public", "t"), ("public", "Odd Name")]) == "altered"
    assert published() == [("public", "Odd Name"), ("public", "t")]
    assert ensure_publication(spec, PUB, [("public", "Odd Name")]) == "altered"
    assert published() == [("public", "Odd Name")]
    with pytest.raises(ValidationFailed):
        ensure_publication(spec, PUB, [])
    with pytest.raises(ConnectorError, match="does not exist"):
        ensure_publication(spec, publication_name(8), [("public", "missing")])


def test_checks(source, spec: ConnectionSpec) -> None:
    assert check_wal_level(spec) == []
    _sql(source, "CREATE TABLE nopk (a int, b text); CREATE TABLE nothing (id int PRIMARY KEY)")
    _sql(source, "ALTER TABLE nothing REPLICA IDENTITY NOTHING")
    problems = check_replica_identity(
        spec, [("public", "t"), ("public", "nopk"), ("public", "nothing"), ("public", "ghost")]
    )
    assert len(problems) == 3
    assert 'ALTER TABLE "public"."nopk" ADD PRIMARY KEY (...)' in problems[0]
    assert "no primary key" in problems[0]
    assert "NOTHING" in problems[1] and "ghost" in problems[2] and "does not exist" in problems[2]
    # Capture works under REPLICA IDENTITY FULL (the missing key is refused apart: the target needs one).
    _sql(source, "ALTER TABLE nopk REPLICA IDENTITY FULL")
    assert check_replica_identity(spec, [("public", "nopk")]) == []


def test_snapshot_handoff_has_no_gap_and_no_duplicate(source, pg: PgCluster, pg_db: str, spec: ConnectionSpec) -> None:
    _sql(source, "INSERT INTO t SELECT g, 'before' FROM generate_series(1, 3) g")
    handle = create_slot_with_snapshot(spec, SLOT)
    try:
        assert handle.snapshot_name and handle.consistent_point > 0
        _sql(source, "INSERT INTO t VALUES (4, 'after'), (5, 'after')")
        _sql(source, "UPDATE t SET v = 'after' WHERE id = 1")
        reader = pg.connect(pg_db, autocommit=False)
        try:
            reader.set_session(isolation_level="REPEATABLE READ", readonly=True)
            with reader.cursor() as cur:
                cur.execute("SET TRANSACTION SNAPSHOT %s", (handle.snapshot_name,))
                cur.execute("SELECT id, v FROM t ORDER BY id")
                assert cur.fetchall() == [(1, "before"), (2, "before"), (3, "before")]
        finally:
            reader.close()
    finally:
        handle.close()
    assert slot_status(spec, SLOT)["confirmed_flush_lsn"] == handle.consistent_point

    with LogicalStream(spec, SLOT, PUB) as stream:
        stream.start()
        items = _read(stream, 2)
    events = [i for i in items if isinstance(i, ChangeEvent)]
    assert _ids(items) == [4, 5]
    assert [(e.op, e.key) for e in events] == [
        ("insert", {"id": "4"}),
        ("insert", {"id": "5"}),
        ("update", {"id": "1"}),
    ]
    assert all(e.position > handle.consistent_point for e in events)


def test_create_slot_twice_says_it_exists(source, spec: ConnectionSpec) -> None:
    info = create_slot(spec, SLOT)
    assert info.slot_name == SLOT and info.consistent_point > 0
    with pytest.raises(SlotExists, match=f"replication slot {SLOT} already exists"):
        create_slot(spec, SLOT)
    with pytest.raises(SlotExists):
        create_slot_with_snapshot(spec, SLOT)
    with pytest.raises(ValidationFailed):
        create_slot(spec, "Bad-Name")


def test_confirm_advances_the_slot_and_restart_resumes_after_it(source, spec: ConnectionSpec) -> None:
    create_slot(spec, SLOT)
    for i in (1, 2):
        _sql(source, "INSERT INTO t VALUES (%s, 'x')", (i,))
    with LogicalStream(spec, SLOT, PUB, auto_advance=False) as stream:
        stream.start()
        first, second = [i for i in _read(stream, 2) if isinstance(i, TxnEnd)]
        assert first.end_lsn < second.commit_lsn
        stream.confirm(first.end_lsn)
        _wait(lambda: slot_status(spec, SLOT)["confirmed_flush_lsn"] == first.end_lsn, stream=stream)
        # the second transaction is delivered but not confirmed: nothing moves the slot past it
        stream.poll(0.5)
        assert slot_status(spec, SLOT)["confirmed_flush_lsn"] == first.end_lsn

    with LogicalStream(spec, SLOT, PUB) as stream:
        stream.start()
        items = _read(stream, 1)
        assert _ids(items) == [2]
        assert items[-1].end_lsn == second.end_lsn
        assert stream.poll(0.5) == []


def test_start_lsn_skips_what_the_target_already_has(source, spec: ConnectionSpec) -> None:
    create_slot(spec, SLOT)
    for i in (1, 2, 3):
        _sql(source, "INSERT INTO t VALUES (%s, 'x')", (i,))
    with LogicalStream(spec, SLOT, PUB) as stream:
        stream.start()
        ends = [i for i in _read(stream, 3) if isinstance(i, TxnEnd)]
    with LogicalStream(spec, SLOT, PUB) as stream:  # nothing confirmed; the target applied up to txn 2
        stream.start(start_lsn=ends[1].commit_lsn + 1)
        assert _ids(_read(stream, 1)) == [3]


def test_keepalives_move_an_idle_slot(source, spec: ConnectionSpec) -> None:
    """Changes to unpublished tables, or a heartbeat, still let the slot release WAL."""
    create_slot(spec, SLOT)
    _sql(source, "CREATE TABLE other (id int)")
    with LogicalStream(spec, SLOT, PUB, status_interval_s=1) as stream:
        stream.start()
        start = slot_status(spec, SLOT)["confirmed_flush_lsn"]
        _sql(source, "INSERT INTO other SELECT generate_series(1, 1000)")
        heartbeat = emit_heartbeat(spec)
        assert heartbeat > start
        _wait(lambda: slot_status(spec, SLOT)["confirmed_flush_lsn"] >= heartbeat, stream=stream)
        status = slot_status(spec, SLOT)
        assert status["active"] and status["lag_bytes"] >= 0 and status["retained_wal_bytes"] >= 0
        # with a delivered but unconfirmed transaction the keepalive rule holds back
        _sql(source, "INSERT INTO t VALUES (1, 'x')")
        (end,) = [i for i in _read(stream, 1) if isinstance(i, TxnEnd)]
        held = slot_status(spec, SLOT)["confirmed_flush_lsn"]
        assert held < end.end_lsn
        emit_heartbeat(spec)
        for _ in range(10):
            assert stream.poll(0.1) == []
        assert slot_status(spec, SLOT)["confirmed_flush_lsn"] == held
        stream.confirm(end.end_lsn)
        later = emit_heartbeat(spec)
        _wait(lambda: slot_status(spec, SLOT)["confirmed_flush_lsn"] >= later, stream=stream)


def test_drop_while_streaming_leaves_nothing(source, spec: ConnectionSpec) -> None:
    create_slot(spec, SLOT)
    stream = LogicalStream(spec, SLOT, PUB)
    stream.start()
    try:
        stream.poll(0.2)
        assert slot_status(spec, SLOT)["active"]
        drop_slot_and_publication(spec, SLOT, PUB, timeout_s=10)
        assert slot_status(spec, SLOT) is None
        assert _sql(source, "SELECT count(*) FROM pg_replication_slots")[0][0] == 0
        assert _sql(source, "SELECT count(*) FROM pg_publication WHERE pubname = %s", (PUB,))[0][0] == 0
        drop_slot_and_publication(spec, SLOT, PUB)  # again: nothing to do
        with pytest.raises(ConnectorError):
            for _ in range(20):
                stream.poll(0.1)
    finally:
        stream.close()


def test_drop_waits_for_a_foreign_client_then_says_who(source, pg: PgCluster, pg_db: str, spec: ConnectionSpec) -> None:
    create_slot(spec, SLOT)
    other = psycopg2.connect(
        pg.dsn(pg_db), application_name="someone-else", connection_factory=psycopg2.extras.LogicalReplicationConnection
    )
    try:
        other.cursor().start_replication(
            slot_name=SLOT, decode=False, options={"proto_version": "1", "publication_names": PUB}
        )
        _wait(lambda: slot_status(spec, SLOT)["active"])
        with pytest.raises(SlotBusy, match="someone-else"):
            drop_slot_and_publication(spec, SLOT, PUB, timeout_s=1)
        assert slot_status(spec, SLOT) is not None
    finally:
        other.close()
    drop_slot_and_publication(spec, SLOT, PUB, timeout_s=10)
    assert slot_status(spec, SLOT) is None
    assert stream_application_name(SLOT) != "someone-else"
