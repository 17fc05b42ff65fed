"""Large transactions streamed while in progress (pgoutput protocol 2): decoder, real stream, engine.

The walsender streams a transaction once it outgrows logical_decoding_work_mem; these tests set
it to its minimum (64kB) so a few thousand rows are enough.
"""

from __future__ import annotations

import struct
import time

import pytest

from core.cdc import batcher, pg_source
from core.cdc.applier import PgApplier
from core.cdc.engine import drop_source_objects
from core.cdc.events import ChangeEvent
from core.cdc.pg_source import LogicalStream, create_slot, ensure_publication, publication_name, slot_name
from core.cdc.pgoutput import (
    UNCOMMITTED,
    Decoder,
    RawInsert,
    StreamAbort,
    StreamStart,
    StreamStop,
    TxnEnd,
    pg_timestamp,
    settle,
)
from core.fullload import TablePlan
from core.plans import CdcPlan
from tests.core.cdc.test_pgoutput import COLS, TS, relation, tupledata
from tests.core.fullload.test_fullload import execute, spec, target_db  # noqa: F401
from tests.pgcluster import PgCluster
from tests.workerthread import Recorded, running, wait_for

# -- hand-built protocol 2 messages ---------------------------------------------------------------


STOP = b"E"


def stream_start(xid: int, first: bool) -> bytes:
    return b"S" + struct.pack(">IB", xid, first)


def stream_commit(xid: int, commit_lsn: int, end_lsn: int, ts: int) -> bytes:
    return b"c" + struct.pack(">IBQQq", xid, 0, commit_lsn, end_lsn, ts)


def stream_abort(xid: int, subxid: int) -> bytes:
    return b"A" + struct.pack(">II", xid, subxid)


def in_stream(message: bytes, xid: int) -> bytes:
    """A v1 message as it comes inside a stream block: the (sub)transaction's xid after the type byte."""
    return message[:1] + struct.pack(">I", xid) + message[1:]


def s_insert(rel_id: int, values: list) -> bytes:
    return b"I" + struct.pack(">I", rel_id) + b"N" + tupledata(values)


def s_update(rel_id: int, values: list) -> bytes:
    return b"U" + struct.pack(">I", rel_id) + b"N" + tupledata(values)


def test_stream_blocks_decode_with_their_subtransactions() -> None:
    d = Decoder()
    items: list = []
    for m in (
        stream_start(700, True),
        in_stream(relation(1, "public", "t", COLS), 700),
        in_stream(s_insert(1, ["1", "a", None]), 700),
        in_stream(s_insert(1, ["2", "b", "x"]), 701),  # in subtransaction 701
        STOP,
        stream_start(700, False),
        in_stream(s_update(1, ["1", "a2", None]), 700),
        STOP,
    ):
        items.extend(d.decode(m))
    assert d.open_streams == {700}
    assert [type(i) for i in items] == [
        StreamStart,
        type(items[1]),
        RawInsert,
        RawInsert,
        StreamStop,
        StreamStart,
        ChangeEvent,
        StreamStop,
    ]
    assert items[0] == StreamStart(700, True) and items[5] == StreamStart(700, False)
    ins1, ins2, upd = items[2], items[3], items[6]
    assert (ins1.position, ins1.xid, ins1.after) == (UNCOMMITTED, 700, {"id": "1", "name": "a", "note": None})
    assert (ins2.xid, ins2.after["name"]) == (701, "b")
    assert (upd.op, upd.position, upd.xid, upd.after["name"]) == ("update", UNCOMMITTED, 700, "a2")

    # Outside the blocks, a whole transaction reads as in protocol 1 (the state of the stream is apart).
    assert d.decode(b"B" + struct.pack(">QqI", 5000, TS, 900)) == []
    (plain,) = d.decode(s_insert(1, ["9", "z", None]))
    assert (plain.position, plain.xid) == (5000, 900)
    (end,) = d.decode(b"C" + struct.pack(">BQQq", 0, 5000, 5010, TS))
    assert end == TxnEnd(900, 5000, 5010, pg_timestamp(TS)) and not end.streamed

    (abort,) = d.decode(stream_abort(700, 701))
    assert abort == StreamAbort(700, 701) and d.open_streams == {700}
    (commit,) = d.decode(stream_commit(700, 6000, 6020, TS + 5))
    assert commit == TxnEnd(700, 6000, 6020, pg_timestamp(TS + 5), True)
    assert d.open_streams == set()
    events = [ins1, upd]
    settle(events, commit)
    assert all((e.position, e.xid, e.commit_time) == (6000, 700, commit.commit_time) for e in events)

    d.decode(stream_start(800, True))
    (whole,) = d.decode(stream_abort(800, 800))
    assert whole == StreamAbort(800, 800) and d.open_streams == set()


# -- a real server --------------------------------------------------------------------------------


@pytest.fixture
def small_work_mem(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pg_source, "STREAM_WORK_MEM", "64kB")


def test_the_server_streams_a_large_transaction_and_its_aborts(pg: PgCluster, pg_db: str) -> None:
    s = spec(pg, pg_db)
    execute(pg, pg_db, "CREATE TABLE public.big (id int PRIMARY KEY, pad text)")
    ensure_publication(s, publication_name(1), [("public", "big")])
    create_slot(s, slot_name(1))
    conn = pg.connect(pg_db, autocommit=False)
    try:
        with conn.cursor() as cur:
            cur.execute("INSERT INTO big SELECT g, repeat('x', 100) FROM generate_series(1, 3000) g")
            cur.execute("SAVEPOINT sp")
            cur.execute("INSERT INTO big SELECT g, repeat('y', 100) FROM generate_series(3001, 6000) g")
            cur.execute("ROLLBACK TO SAVEPOINT sp")
            cur.execute("INSERT INTO big SELECT g, repeat('z', 100) FROM generate_series(6001, 6100) g")
        conn.commit()
        with conn.cursor() as cur:
            cur.execute("INSERT INTO big SELECT g, 'gone' FROM generate_series(10001, 13000) g")
        conn.rollback()
    finally:
        conn.close()
    try:
        with LogicalStream(s, slot_name(1), publication_name(1), stream_work_mem="64kB") as stream:
            stream.start()
            assert stream.streaming
            items: list = []
            deadline = time.monotonic() + 20
            while not any(isinstance(i, TxnEnd) for i in items) or not any(
                isinstance(i, StreamAbort) and i.xid == i.subxid for i in items
            ):
                assert time.monotonic() < deadline, [type(i).__name__ for i in items][-20:]
                items.extend(stream.poll(0.2))
    finally:
        drop_source_objects(s, 1)
    starts = [i for i in items if isinstance(i, StreamStart)]
    assert starts and starts[0].first, "a 3,000-row transaction over 64kB must be streamed"
    (commit,) = [i for i in items if isinstance(i, TxnEnd)]
    assert commit.streamed and commit.xid == starts[0].xid
    aborts = [i for i in items if isinstance(i, StreamAbort)]
    sub = [a for a in aborts if a.xid == commit.xid]
    assert len(sub) == 1 and sub[0].subxid != commit.xid  # the savepoint's rows
    (whole,) = [a for a in aborts if a.xid == a.subxid]
    events = [i for i in items if isinstance(i, ChangeEvent)]
    # After ROLLBACK TO SAVEPOINT the rows go into a new subtransaction: only the aborted one's are dropped.
    kept = [e for e in events if e.xid not in (sub[0].subxid, whole.xid)]
    assert sorted(int(e.after["id"]) for e in kept) == [*range(1, 3001), *range(6001, 6101)]


def _ordered(pg: PgCluster, db: str, table: str) -> list[tuple]:
    conn = pg.connect(db)
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT id, n, pad FROM public.{table} ORDER BY id")
            return cur.fetchall()
    finally:
        conn.close()


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How often the engine applied parts ahead and rolled them back."""
    counts = {"apply_part": 0, "rollback": 0}
    for name in counts:
        original = getattr(PgApplier, name)

        def counting(self, *args, _original=original, _name=name):  # noqa: ANN001, ANN202
            counts[_name] += 1
            return _original(self, *args)

        monkeypatch.setattr(PgApplier, name, counting)
    return counts


@pytest.fixture
def recorded() -> Recorded:
    """The sink the worker reports applied changes to (no app database in these tests)."""
    return Recorded()


def test_engine_applies_streamed_transactions_exactly(
    pg: PgCluster,
    pg_db: str,
    target_db: str,  # noqa: F811
    small_work_mem,
    recorded,
    calls,
    monkeypatch,
) -> None:
    monkeypatch.setattr(batcher, "PART_EVENTS", 500)  # parts of the streamed transactions are applied ahead
    for db in (pg_db, target_db):
        execute(pg, db, "CREATE TABLE public.acc (id int PRIMARY KEY, n int NOT NULL, pad text)")
    execute(pg, pg_db, "INSERT INTO acc SELECT g, 0, 'before' FROM generate_series(1, 100) g")
    execute(pg, target_db, "INSERT INTO acc SELECT g, 0, 'before' FROM generate_series(1, 100) g")
    plan = CdcPlan(
        pipeline_id=9301,
        source=spec(pg, pg_db),
        target=spec(pg, target_db),
        tables=[TablePlan("public", "acc", "public", "acc")],
        mode="CDC_ONLY",
        auto_create=False,
        target_table_policy="append",
    )
    big = pg.connect(pg_db, autocommit=False)
    small = pg.connect(pg_db)
    try:
        with running(plan, sink=recorded) as run:
            with big.cursor() as cur:
                # A large transaction: new rows, updates of old ones, a rolled back savepoint...
                cur.execute("INSERT INTO acc SELECT g, 1, repeat('a', 80) FROM generate_series(1001, 4000) g")
                cur.execute("UPDATE acc SET n = n + 1 WHERE id <= 50")
                cur.execute("SAVEPOINT sp")
                cur.execute("INSERT INTO acc SELECT g, 9, 'rolled back' FROM generate_series(5001, 7000) g")
                cur.execute("UPDATE acc SET n = n + 100")
                cur.execute("ROLLBACK TO SAVEPOINT sp")
                # ... while small transactions commit in between (they are applied first) ...
                time.sleep(0.5)
                with small.cursor() as scur:
                    scur.execute("INSERT INTO acc VALUES (8001, 1, 'small one')")
                    scur.execute("UPDATE acc SET n = n + 10 WHERE id = 99")
                cur.execute("INSERT INTO acc SELECT g, 2, repeat('b', 80) FROM generate_series(4001, 6000) g")
                cur.execute("DELETE FROM acc WHERE id BETWEEN 1001 AND 1100")
            big.commit()
            with big.cursor() as cur:  # a large transaction that rolls back entirely
                cur.execute("INSERT INTO acc SELECT g, 5, 'never' FROM generate_series(9001, 12000) g")
            big.rollback()
            with small.cursor() as scur:
                scur.execute("INSERT INTO acc VALUES (8002, 1, 'after')")
            source = _ordered(pg, pg_db, "acc")
            wait_for(run, lambda: _ordered(pg, target_db, "acc") == source, timeout_s=60)
    finally:
        big.close()
        small.close()
        drop_source_objects(spec(pg, pg_db), 9301)
    assert len(source) == 100 + 3000 + 2000 - 100 + 2
    # Parts went ahead while the transaction streamed; the small commit in between rolled them back.
    assert calls["apply_part"] > 0 and calls["rollback"] > 0, calls
    assert not [e for e in recorded if e.after and e.after.get("pad") in ("rolled back", "never")]
    streamed = [e for e in recorded if e.after and e.after.get("pad") == "a" * 80]
    assert len(streamed) == 3000 and len({e.position for e in streamed}) == 1 and streamed[0].position > 0
    assert streamed[0].position != UNCOMMITTED and streamed[0].commit_time is not None


def test_stop_in_the_middle_of_a_streamed_transaction_loses_nothing(
    pg: PgCluster,
    pg_db: str,
    target_db: str,
    small_work_mem,
    recorded,
    calls,  # noqa: F811
    monkeypatch,
) -> None:
    monkeypatch.setattr(batcher, "PART_EVENTS", 500)
    for db in (pg_db, target_db):
        execute(pg, db, "CREATE TABLE public.acc (id int PRIMARY KEY, n int NOT NULL, pad text)")
    plan = CdcPlan(
        pipeline_id=9302,
        source=spec(pg, pg_db),
        target=spec(pg, target_db),
        tables=[TablePlan("public", "acc", "public", "acc")],
        mode="CDC_ONLY",
        auto_create=False,
        target_table_policy="append",
    )
    big = pg.connect(pg_db, autocommit=False)
    try:
        with running(plan, sink=recorded) as run:
            with big.cursor() as cur:
                cur.execute("INSERT INTO acc SELECT g, 1, repeat('a', 80) FROM generate_series(1, 4000) g")
            # Parts were applied in an open target transaction: stopping rolls them back.
            wait_for(run, lambda: _slot_sent_something(pg, pg_db), timeout_s=20)
            time.sleep(0.5)
        assert _ordered(pg, target_db, "acc") == []
        with big.cursor() as cur:
            cur.execute("INSERT INTO acc SELECT g, 2, 'tail' FROM generate_series(4001, 4100) g")
        big.commit()
        with running(plan, sink=recorded) as run:  # the server streams the transaction again from its start
            source = _ordered(pg, pg_db, "acc")
            wait_for(run, lambda: _ordered(pg, target_db, "acc") == source, timeout_s=60)
    finally:
        big.close()
        drop_source_objects(spec(pg, pg_db), 9302)
    assert len(source) == 4100
    assert calls["apply_part"] > 0


def _slot_sent_something(pg: PgCluster, db: str) -> bool:
    conn = pg.connect(db)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_stat_replication_slots WHERE stream_txns > 0")
            return cur.fetchone()[0] > 0
    finally:
        conn.close()
