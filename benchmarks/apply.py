"""Applier speed against the physical limit and PostgreSQL's own logical replication, in one run.

Starts a throwaway cluster with a target table (id bigint pk, a int, b text, c numeric(12,2),
d timestamptz) and times:

  copy      the physical limit: one COPY (text) of the same rows straight into an empty table
  inserts   PgApplier.apply() of N synthetic insert events in batches (events pre-built, as the
            decoder hands them over; N single-row source transactions grouped into batches
            are the same work for the applier)
  mixed     N events on the loaded table: 70% updates, 15% deletes, 15% inserts, in batches
  latency   apply() of one single-row transaction, repeated (p50/p99 ms)
  native    (--native) CREATE SUBSCRIPTION catching up one N-row transaction and N single-row
            transactions between two databases of the same cluster

    .venv/bin/python benchmarks/apply.py [--rows 200000] [--batch 10000] [--native] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.cdc.applier import PgApplier  # noqa: E402
from core.cdc.applier.copytext import rows_payload  # noqa: E402
from core.cdc.events import ChangeEvent  # noqa: E402
from core.connectors.base import ConnectionSpec  # noqa: E402
from tests.pgcluster import PgCluster  # noqa: E402

DDL = "CREATE TABLE {} (id bigint PRIMARY KEY, a int, b text, c numeric(12,2), d timestamptz)"
CLUSTER_CONF = {"max_wal_size": "'16GB'", "checkpoint_timeout": "'1h'", "shared_buffers": "'256MB'"}
T = ("public", "t")


def row(i: int, v: int = 0) -> dict[str, str | None]:
    return {
        "id": str(i),
        "a": str(i * 7 + v),
        "b": f"some text value {i} {v}",
        "c": f"{i % 100000}.{v % 100:02d}",
        "d": f"2024-01-{1 + i % 28:02d} 10:{i % 60:02d}:00+00",
    }


def insert_events(n: int, start: int = 1) -> list[ChangeEvent]:
    return [ChangeEvent("insert", "public", "t", {"id": str(i)}, None, row(i), i) for i in range(start, start + n)]


def mixed_events(n: int, existing: int, first_pos: int) -> list[ChangeEvent]:
    out = []
    for k in range(n):
        pos = first_pos + k
        r = k % 20
        if r < 14:
            i = 1 + (k * 7919) % existing
            out.append(ChangeEvent("update", "public", "t", {"id": str(i)}, None, row(i, k), pos))
        elif r < 17:
            i = 1 + (k * 104729) % existing
            out.append(ChangeEvent("delete", "public", "t", {"id": str(i)}, None, None, pos))
        else:
            i = existing + 1 + k
            out.append(ChangeEvent("insert", "public", "t", {"id": str(i)}, None, row(i), pos))
    return out


def run_batches(ap: PgApplier, events: list[ChangeEvent], batch: int) -> float:
    started = time.perf_counter()
    for s in range(0, len(events), batch):
        chunk = events[s : s + batch]
        ap.apply(chunk, chunk[-1].position)
    return time.perf_counter() - started


def copy_limit(pg: PgCluster, db: str, events: list[ChangeEvent]) -> float:
    conn = pg.connect(db, autocommit=False)
    with conn.cursor() as cur:
        cur.execute(DDL.format("copy_limit"))
        conn.commit()
        cols = ("id", "a", "b", "c", "d")
        data = rows_payload([tuple(e.after[c] for c in cols) for e in events]).encode()
        started = time.perf_counter()
        cur.copy_expert("COPY copy_limit FROM STDIN", io.BytesIO(data), size=1 << 18)
        conn.commit()
        took = time.perf_counter() - started
    conn.close()
    return took


def native(pg: PgCluster, rows: int, single: bool) -> float:
    """Seconds for a subscription to catch up `rows` inserts (one transaction, or one per row)."""
    src, dst = f"nsrc{int(single)}", f"ndst{int(single)}"
    pg.create_database(src)
    pg.create_database(dst)
    s, d = pg.connect(src), pg.connect(dst)
    try:
        with s.cursor() as cur:
            cur.execute(DDL.format("t") + "; CREATE PUBLICATION p FOR TABLE t")
            cur.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (f"slot_{src}",))
        with d.cursor() as cur:
            cur.execute(DDL.format("t"))
            cur.execute(
                f"CREATE SUBSCRIPTION sub_{src} CONNECTION '{pg.dsn(src)}' PUBLICATION p "
                f"WITH (create_slot = false, slot_name = 'slot_{src}', enabled = false, copy_data = false)"
            )
        with s.cursor() as cur:
            fill = (
                "INSERT INTO t SELECT g, g * 7, 'some text value ' || g, (g % 100000)::numeric, "
                "timestamptz '2024-01-01 00:00+00' + g * interval '1 s' FROM generate_series({}, {}) g"
            )
            if single:
                for lo in range(1, rows + 1, 5000):
                    txns = (f"BEGIN;{fill.format(g, g)};COMMIT" for g in range(lo, min(lo + 5000, rows + 1)))
                    cur.execute(";".join(txns))
            else:
                cur.execute(fill.format(1, rows))
        started = time.perf_counter()
        with d.cursor() as cur:
            cur.execute(f"ALTER SUBSCRIPTION sub_{src} ENABLE")
            while True:
                cur.execute("SELECT count(*) FROM t")
                if cur.fetchone()[0] >= rows:
                    break
                time.sleep(0.02)
        took = time.perf_counter() - started
        with d.cursor() as cur:
            cur.execute(
                f"ALTER SUBSCRIPTION sub_{src} DISABLE; ALTER SUBSCRIPTION sub_{src} SET (slot_name = NONE); "
                f"DROP SUBSCRIPTION sub_{src}"
            )
        with s.cursor() as cur:
            cur.execute("SELECT pg_drop_replication_slot(%s)", (f"slot_{src}",))
        return took
    finally:
        s.close()
        d.close()


def main() -> None:
    ap_ = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap_.add_argument("--rows", type=int, default=200_000)
    ap_.add_argument("--batch", type=int, default=10_000)
    ap_.add_argument("--native", action="store_true", help="also time CREATE SUBSCRIPTION catch-up")
    ap_.add_argument("--profile", action="store_true")
    args = ap_.parse_args()
    n = args.rows
    pg = PgCluster.start(CLUSTER_CONF)
    try:
        pg.create_database("bench")
        admin = pg.connect("bench")
        with admin.cursor() as cur:
            cur.execute(DDL.format("t"))
        spec = ConnectionSpec(
            kind="postgresql", host=pg.host, port=pg.port, database="bench", username=pg.user, password=pg.password
        )
        inserts = insert_events(n)
        limit = copy_limit(pg, "bench", inserts)
        print(f"copy (physical limit)   {n / limit:>9,.0f} rows/s  ({limit:.2f} s)")
        prof = cProfile.Profile() if args.profile else None
        with PgApplier(spec, 1, {T: T}) as ap:
            if prof:
                prof.enable()
            took = run_batches(ap, inserts, args.batch)
            print(
                f"apply inserts           {n / took:>9,.0f} rows/s  ({took:.2f} s, batches of {args.batch}, "
                f"{limit / took:.2f} of copy)"
            )
            with admin.cursor() as cur:
                cur.execute("VACUUM ANALYZE t")
            mixed = mixed_events(n, n, n + 1)
            took = run_batches(ap, mixed, args.batch)
            if prof:
                prof.disable()
            print(f"apply mixed 70/15/15    {n / took:>9,.0f} rows/s  ({took:.2f} s, upd/del/ins)")
            lat = []
            pos = 10 * n
            for i in range(1000):
                pos += 1
                e = ChangeEvent("update", "public", "t", {"id": str(1 + i)}, None, row(1 + i, 99), pos)
                t0 = time.perf_counter()
                ap.apply([e], pos)
                lat.append((time.perf_counter() - t0) * 1000)
            q = statistics.quantiles(lat, n=100)
            print(f"apply 1-row batch       p50 {q[49]:.2f} ms  p99 {q[98]:.2f} ms")
        admin.close()
        if prof:
            pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
        if args.native:
            for single in (False, True):
                took = native(pg, n, single)
                what = f"{n} single-row txns" if single else f"one {n}-row txn"
                print(f"native subscription     {n / took:>9,.0f} rows/s  ({took:.2f} s, {what})")
    finally:
        pg.stop()


if __name__ == "__main__":
    main()
