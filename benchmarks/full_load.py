"""Full-load speed against the physical limit, measured in the same run.

Starts a throwaway PostgreSQL cluster, builds a table with mixed types in a source database,
then times (1) `psql COPY TO STDOUT (FORMAT binary) | psql COPY FROM STDIN (FORMAT binary)` into
a pre-created empty table with the same DDL (primary key included) and (2) `run_full_load`
(auto-create + drop_recreate, the code a pipeline runs) into another schema of the target
database, and prints both and the ratio, per round and as the median over rounds (the order
alternates so neither side always runs on a warmer cache). Both targets are counted.

Ours creates the table, COPYs with FREEZE and builds the primary key after the rows are in (one
sorted index build instead of row-by-row index maintenance), all in the load's one transaction.

    .venv/bin/python benchmarks/full_load.py [--rows 2000000] [--rounds 3] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.connectors.base import ConnectionSpec  # noqa: E402
from core.fullload import LoadOptions, TablePlan, TableProgress, run_full_load  # noqa: E402
from tests.pgcluster import PgCluster  # noqa: E402

SOURCE_DB, TARGET_DB = "bench_src", "bench_tgt"
TABLE_DDL = """
CREATE TABLE {name} (
    id bigint PRIMARY KEY,
    qty integer NOT NULL,
    amount numeric(12,2),
    note text,
    created_at timestamptz NOT NULL,
    active boolean,
    ref uuid,
    attrs jsonb
)"""
FILL_SQL = """
INSERT INTO public.t
SELECT g, g %% 1000, (g %% 1000000) / 100.0,
       md5(g::text) || substr(md5((g * 7)::text), 1, 28),
       timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second',
       g %% 3 = 0, md5((g * 13)::text)::uuid,
       jsonb_build_object('k', g %% 10, 'tag', 'x' || (g %% 100))
FROM generate_series(1, %s) g
"""
# Room for the whole copy in WAL without a checkpoint in the middle of either measurement.
CLUSTER_CONF = {"max_wal_size": "'16GB'", "checkpoint_timeout": "'1h'", "shared_buffers": "'256MB'"}


def build_source(pg: PgCluster, rows: int) -> int:
    """The source table, vacuumed and analyzed (so neither run pays for hint bits); its size in bytes."""
    pg.create_database(SOURCE_DB)
    pg.create_database(TARGET_DB)
    conn = pg.connect(SOURCE_DB)
    with conn.cursor() as cur:
        cur.execute(TABLE_DDL.format(name="public.t"))
        cur.execute(FILL_SQL, (rows,))
        cur.execute("VACUUM (FREEZE, ANALYZE) public.t")
        cur.execute("SELECT pg_table_size('public.t')")
        size = cur.fetchone()[0]
    conn.close()
    return size


def _sql(pg: PgCluster, db: str, statement: str) -> list[tuple]:
    conn = pg.connect(db)
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def settle(pg: PgCluster) -> None:
    """A checkpoint on both databases' cluster and a warm read of the source, before each measurement."""
    _sql(pg, "postgres", "CHECKPOINT")
    _sql(pg, SOURCE_DB, "SELECT count(*) FROM public.t")


def time_psql(pg: PgCluster, schema: str) -> float:
    """Seconds for the psql binary COPY pipe into a pre-created empty table."""
    _sql(pg, TARGET_DB, f"DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}")
    _sql(pg, TARGET_DB, TABLE_DDL.format(name=f"{schema}.t"))
    settle(pg)
    base = f"psql -X -q -v ON_ERROR_STOP=1 -h {pg.host} -p {pg.port} -U {pg.user}"
    pipeline = (
        f'{base} -d {SOURCE_DB} -c "COPY public.t TO STDOUT (FORMAT binary)" | '
        f'{base} -d {TARGET_DB} -c "COPY {schema}.t FROM STDIN (FORMAT binary)"'
    )
    env = {**os.environ, "PGPASSWORD": pg.password}
    started = time.perf_counter()
    subprocess.run(["bash", "-o", "pipefail", "-c", pipeline], check=True, env=env)
    return time.perf_counter() - started


def time_ours(pg: PgCluster, schema: str, profile: bool) -> tuple[float, int, list[TableProgress]]:
    """Seconds for run_full_load (auto-create, drop_recreate) of the table; rows copied; progress seen."""

    def spec(db: str) -> ConnectionSpec:
        return ConnectionSpec(
            kind="postgresql", host=pg.host, port=pg.port, database=db, username=pg.user, password=pg.password
        )

    settle(pg)
    seen: list[TableProgress] = []
    options = LoadOptions(auto_create=True, target_table_policy="drop_recreate")
    plans = [TablePlan("public", "t", schema, "t")]
    profiler = cProfile.Profile() if profile else None
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    result = run_full_load(spec(SOURCE_DB), spec(TARGET_DB), plans, options, seen.append, threading.Event())
    if profiler:
        profiler.disable()
    elapsed = time.perf_counter() - started
    if result.status != "COMPLETED":
        raise SystemExit(f"full load failed: {result.tables[0].error}")
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(15)
    return elapsed, result.rows_copied, seen


def count(pg: PgCluster, db: str, table: str) -> int:
    return _sql(pg, db, f"SELECT count(*) FROM {table}")[0][0]


def line(label: str, rows: int, seconds: float) -> str:
    return f"  {label:<30} {rows:>10,} rows  {seconds:6.2f} s  {rows / seconds:>9,.0f} rows/s"


def measure_round(pg: PgCluster, i: int, expected: int, profile: bool) -> tuple[float, float]:
    """One round of both measurements (order alternates between rounds); (psql seconds, our seconds)."""
    ours_first = i % 2 == 0
    if ours_first:
        ours_s, rows, seen = time_ours(pg, "ours", profile)
    psql_s = time_psql(pg, "psql_copy")
    if not ours_first:
        ours_s, rows, seen = time_ours(pg, "ours", profile)
    got_psql, got_ours = count(pg, TARGET_DB, "psql_copy.t"), count(pg, TARGET_DB, "ours.t")
    assert got_psql == expected == got_ours == rows, (expected, got_psql, got_ours, rows)
    running = [p.rows_copied for p in seen if p.status == "RUNNING"]
    print(f"round {i}{' (ours first)' if ours_first else ''}:")
    print(line("psql COPY binary | psql COPY", expected, psql_s))
    print(line("run_full_load (ours)", rows, ours_s))
    print(
        f"  ratio ours/psql {psql_s / ours_s:.2f}; target counts verified ({got_ours:,}); "
        f"{len(running)} progress updates, last estimate {running[-1] / rows:.0%} of the final count"
    )
    return psql_s, ours_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--rounds", type=int, default=3, help="measure both this many times (order alternates)")
    parser.add_argument("--profile", action="store_true", help="cProfile the app's load (slows it down)")
    args = parser.parse_args()
    pg = PgCluster.start(extra_conf=CLUSTER_CONF)
    try:
        started = time.perf_counter()
        size = build_source(pg, args.rows)
        print(f"source: {args.rows:,} rows, {size / 2**20:.0f} MiB, built in {time.perf_counter() - started:.1f} s")
        expected = count(pg, SOURCE_DB, "public.t")
        times = [measure_round(pg, i, expected, args.profile) for i in range(1, args.rounds + 1)]
        psql_s = statistics.median(t[0] for t in times)
        ours_s = statistics.median(t[1] for t in times)
        print(f"median of {len(times)} round(s):")
        print(line("psql COPY binary | psql COPY", expected, psql_s))
        print(line("run_full_load (ours)", expected, ours_s))
        print(f"  ratio ours/psql {psql_s / ours_s:.2f}")
    finally:
        pg.stop()


if __name__ == "__main__":
    main()
