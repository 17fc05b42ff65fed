"""Every type of the full-load round trip also round-trips through the embedded CDC engine.

Real PostgreSQL end to end: source DML -> WAL -> pgoutput -> decoder -> applier -> target, by a
CdcWorker running in a thread as the runner runs it. Inserts, updates of every column, a key
change and deletes; the target must equal the source row for row (psycopg2 values and an md5 of
the rows as text), including NaN, infinities, unicode, arrays, enums and NULLs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from core.cdc import batcher
from core.cdc.applier import PgApplier
from core.cdc.engine import CdcWorker, drop_source_objects
from core.fullload import TablePlan
from core.plans import CdcPlan
from tests.core.fullload.test_fullload import ALL_TYPES_DDL, execute, snapshot_of, spec, target_db  # noqa: F401
from tests.pgcluster import PgCluster
from tests.workerthread import Recorded

PIPELINE_ID = 9101
KEYS = {"Order": ["Group", "select"], "select": ["Order", "Key"]}
_PIECES = [p.strip() for p in ALL_TYPES_DDL.split(";\n") if p.strip()]
DDL = [p for p in _PIECES if not p.startswith("INSERT")]
INSERTS = [p for p in _PIECES if p.startswith("INSERT")]
_ORDER_COLUMNS = 'i2, i4, i8, n20, n, r, d, t, vc, c, b, dt, tm, ts, tstz, iv, u, j, jb, "by", ia, ta, m, "MixedCase"'

CHANGES = [
    # Swap every non-key value of two rows in one statement: each becomes an update of every column.
    f'UPDATE "Shop"."Order" o SET ({_ORDER_COLUMNS}) = (SELECT {_ORDER_COLUMNS} FROM "Shop"."Order" x '
    "WHERE x.\"Group\" = 1 AND x.\"select\" = CASE o.\"select\" WHEN 'a' THEN 'b' ELSE 'a' END) "
    'WHERE o."Group" = 1',
    # NULLs replaced by values and values by NULLs.
    f'UPDATE "Shop"."Order" o SET ({_ORDER_COLUMNS}) = (SELECT {_ORDER_COLUMNS} FROM "Shop"."Order" x '
    "WHERE x.\"Group\" = 3 AND x.\"select\" = CASE o.\"select\" WHEN 'nulls' THEN 'small' ELSE 'nulls' END) "
    'WHERE o."Group" = 3',
    # A primary-key change, and a delete.
    'UPDATE "Shop"."Order" SET "Group" = 4, "select" = E\'moved\\nkey\' WHERE "Group" = 2',
    'DELETE FROM "Shop"."Order" WHERE "Group" = 1 AND "select" = \'b\'',
    'UPDATE "Shop"."select" SET ma = \'{ok,NULL,"it\'\'s"}\', m = NULL WHERE "Key" = 1 AND "Order" = \'x\'',
    'UPDATE "Shop"."select" SET "Key" = 9 WHERE "Order" = \'z\' AND "Key" = 3',
    'DELETE FROM "Shop"."select" WHERE "Order" = \'y\'',
]


@pytest.fixture
def worker(pg: PgCluster, pg_db: str, target_db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[CdcWorker]:  # noqa: F811
    for statement in DDL:
        execute(pg, pg_db, statement)
    yield from _running(
        pg,
        pg_db,
        target_db,
        monkeypatch,
        [TablePlan("Shop", "Order", "Copy", "Order"), TablePlan("Shop", "select", "Copy", "select")],
    )


def _running(
    pg: PgCluster,
    pg_db: str,
    target_db: str,
    monkeypatch: pytest.MonkeyPatch,  # noqa: F811
    tables: list[TablePlan],
) -> Iterator[CdcWorker]:
    """A CdcWorker on `tables` in a thread, as the runner runs it; stopped and its slot dropped afterwards."""
    recorded = Recorded()  # the worker's sink: what it applied (no app database in this test)
    plan = CdcPlan(
        pipeline_id=PIPELINE_ID,
        source=spec(pg, pg_db),
        target=spec(pg, target_db),
        tables=tables,
        mode="CDC_ONLY",
        auto_create=True,
        target_table_policy="fail",
    )
    stop = threading.Event()
    streaming = threading.Event()
    w = CdcWorker(plan, stop, on_streaming=streaming.set, sink=recorded)
    failures: list[BaseException] = []

    def run() -> None:
        try:
            w.run()
        except BaseException as exc:  # surfaced by the test below
            failures.append(exc)
            streaming.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert streaming.wait(30) and not failures, failures
    w.failures = failures  # type: ignore[attr-defined]
    w.recorded = recorded  # type: ignore[attr-defined]
    try:
        yield w
    finally:
        stop.set()
        thread.join(30)
        drop_source_objects(plan.source, PIPELINE_ID)


def converge(pg: PgCluster, source_db: str, target_db: str, w: CdcWorker, timeout_s: float = 30) -> None:  # noqa: F811
    """Wait until both tables are equal on source and target (ordered rows and md5), then assert it."""
    deadline = time.monotonic() + timeout_s
    while True:
        assert not w.failures, w.failures  # type: ignore[attr-defined]
        pairs = [
            (snapshot_of(pg, source_db, "Shop", t, k), snapshot_of(pg, target_db, "Copy", t, k))
            for t, k in KEYS.items()
        ]
        if all(s == t for s, t in pairs) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    for (source_rows, source_md5), (target_rows, target_md5) in pairs:
        assert target_rows == source_rows
        assert target_md5 == source_md5


def test_every_type_round_trips_through_cdc(pg: PgCluster, pg_db: str, target_db: str, worker: CdcWorker) -> None:  # noqa: F811
    for statement in INSERTS:
        execute(pg, pg_db, statement)
    converge(pg, pg_db, target_db, worker)
    assert worker.counters.inserts == 9

    for statement in CHANGES:
        execute(pg, pg_db, statement)
    converge(pg, pg_db, target_db, worker)
    source_rows, _ = snapshot_of(pg, pg_db, "Shop", "Order", KEYS["Order"])
    assert len(source_rows) == 4 and any("moved\\nkey" in r for r in source_rows)
    assert worker.counters.deletes == 2 and worker.counters.updates >= 7
    ops = [(e.op, e.table) for e in worker.recorded]  # type: ignore[attr-defined]
    assert ops.count(("delete", "Order")) == 1 and ops.count(("delete", "select")) == 1
    assert sum(1 for e in worker.recorded if e.op == "update") == worker.counters.updates  # type: ignore[attr-defined]


def test_large_transaction_in_parts_with_a_new_column(
    pg: PgCluster,
    pg_db: str,
    target_db: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A transaction larger than a batch is applied in parts as it arrives and committed once; a column
    added in its middle undoes the parts (their open target transaction would block the ALTER) and the
    whole transaction is applied again after the target got the column."""
    monkeypatch.setattr(batcher, "BATCH_EVENTS", 1000)
    monkeypatch.setattr(batcher, "PART_EVENTS", 500)
    calls: list[str] = []
    for name in ("apply_part", "rollback"):
        method = getattr(PgApplier, name)
        monkeypatch.setattr(PgApplier, name, lambda self, *a, _m=method, _n=name: (calls.append(_n), _m(self, *a))[1])
    execute(pg, pg_db, "CREATE SCHEMA big; CREATE TABLE big.t (id int PRIMARY KEY, v text)")
    workers = _running(pg, pg_db, target_db, monkeypatch, [TablePlan("big", "t", "big", "t")])
    w = next(workers)
    try:
        execute(
            pg,
            pg_db,
            "BEGIN; INSERT INTO big.t SELECT g, 'v' || g FROM generate_series(1, 25000) g; "
            "ALTER TABLE big.t ADD COLUMN extra int; "
            "UPDATE big.t SET extra = id, v = 'u' WHERE id % 1000 = 0; "
            "DELETE FROM big.t WHERE id <= 10; "
            "INSERT INTO big.t SELECT g, 'w', g FROM generate_series(25001, 27000) g; COMMIT",
        )
        execute(pg, pg_db, "UPDATE big.t SET v = 'after' WHERE id = 11")
        digest = "SELECT count(*), md5(string_agg(t::text, ',' ORDER BY id)) FROM big.t t"
        deadline = time.monotonic() + 60
        while rows(pg, target_db, digest) != rows(pg, pg_db, digest):
            assert not w.failures, w.failures  # type: ignore[attr-defined]
            assert time.monotonic() < deadline, (rows(pg, target_db, digest), rows(pg, pg_db, digest))
            time.sleep(0.2)
        assert rows(pg, target_db, digest)[0][0] == 26990
        assert w.counters.inserts == 27000 and w.counters.deletes == 10
        assert "rollback" in calls and calls.count("apply_part") >= 2, calls  # parts, undone, then parts again
    finally:
        next(workers, None)


def rows(pg: PgCluster, db: str, query: str) -> list[tuple]:
    conn = pg.connect(db)
    try:
        with conn.cursor() as cur:
            cur.execute(query)
            return cur.fetchall()
    finally:
        conn.close()
