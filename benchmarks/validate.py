"""Data check speed against the physical limit, measured in the same run (#16).

Starts a throwaway PostgreSQL cluster, builds the same table of mixed types (N rows) in a source and a target
database, then per round times:
  limit  one server-side hash scan of each table, both run at once by psql
         (`SELECT bit_xor(hashtextextended(t::text, 0)) FROM t`): reading both tables once;
  clean  a full data check of the table (core.datacheck.engine, the code a pipeline's check runs) that
         finds nothing;
  locate the same after 10 rows were changed on the target: the check localizes them (segments split down
         to rows) and must report exactly those 10.
It prints every round, the ratios limit/clean (goal >= 0.8) and locate/clean (goal <= 1.5), their median and
spread, and the peak RSS of this process (the checker; goal < 300 MB).

    .venv/bin/python benchmarks/validate.py [--rows 2000000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.connectors.base import ConnectionSpec  # noqa: E402
from core.datacheck.engine import Reader, TableValidator  # noqa: E402
from tests.pgcluster import PgCluster, _as_pg_user, _pg_bin  # noqa: E402

SOURCE_DB, TARGET_DB = "bench_src", "bench_tgt"
BUILD = """
CREATE TABLE public.facts (
    id bigint PRIMARY KEY, qty integer NOT NULL, amount numeric(12,2), label text, at timestamptz,
    doc jsonb, flag boolean, ratio double precision
);
INSERT INTO public.facts
SELECT g, g % 1000, (g % 100000) / 100.0, 'label ' || (g % 5000), '2026-01-01'::timestamptz + g * interval '1 s',
       jsonb_build_object('g', g % 97), g % 2 = 0, g / 7.0
FROM generate_series(1, {rows}) g;
ANALYZE public.facts;
"""
LIMIT_SQL = "SELECT bit_xor(hashtextextended(t::text, 0)) FROM public.facts t"


def spec(pg: PgCluster, db: str) -> ConnectionSpec:
    return ConnectionSpec(
        kind="postgresql", host=pg.host, port=pg.port, database=db, username=pg.user, password=pg.password
    )


def psql(pg: PgCluster, db: str, sql: str) -> subprocess.Popen:
    cmd = [_pg_bin("psql"), "-h", pg.host, "-p", str(pg.port), "-U", pg.user, "-d", db, "-qAt", "-c", sql]
    return subprocess.Popen(_as_pg_user(cmd), stdout=subprocess.DEVNULL, env={**os.environ, "PGPASSWORD": pg.password})


def limit(pg: PgCluster) -> float:
    began = time.perf_counter()
    procs = [psql(pg, db, LIMIT_SQL) for db in (SOURCE_DB, TARGET_DB)]
    for p in procs:
        assert p.wait() == 0, "psql failed"
    return time.perf_counter() - began


def check(pg: PgCluster) -> tuple[float, int]:
    began = time.perf_counter()
    source, target = Reader(spec(pg, SOURCE_DB), is_source=True), Reader(spec(pg, TARGET_DB), is_source=False)
    try:
        validator = TableValidator(source, target, ("public", "facts"), ("public", "facts"))
        try:
            found = validator.find_differences()
        finally:
            validator.close()
    finally:
        source.close()
        target.close()
    return time.perf_counter() - began, len(found.candidates)


def run_sql(pg: PgCluster, db: str, sql: str) -> None:
    conn = pg.connect(db)
    with conn.cursor() as cur:
        cur.execute(sql)
    conn.close()


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):.2f} (min {min(values):.2f}, max {max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    pg = PgCluster.start()
    try:
        for db in (SOURCE_DB, TARGET_DB):
            pg.create_database(db)
            run_sql(pg, db, BUILD.format(rows=args.rows))
        print(f"{args.rows:,} rows on each side; {args.rounds} round(s)")
        ratios, locate_ratios = [], []
        for n in range(1, args.rounds + 1):
            lim = limit(pg)
            clean, found = check(pg)
            assert found == 0, f"a clean check found {found} differences"
            step = max(1, args.rows // 10)
            ids = ", ".join(str(1 + i * step) for i in range(10))
            run_sql(pg, TARGET_DB, f"UPDATE public.facts SET label = 'changed' WHERE id IN ({ids})")
            located, found = check(pg)
            assert found == 10, f"expected 10 differences, found {found}"
            run_sql(pg, TARGET_DB, f"UPDATE public.facts SET label = 'label ' || (id % 5000) WHERE id IN ({ids})")
            ratios.append(lim / clean)
            locate_ratios.append(located / clean)
            print(
                f"round {n}: limit {lim:.2f} s, clean check {clean:.2f} s, locate 10 {located:.2f} s  "
                f"limit/clean {lim / clean:.2f}  locate/clean {located / clean:.2f}"
            )
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"limit/clean (goal >= 0.8): {spread(ratios)}")
        print(f"locate/clean (goal <= 1.5): {spread(locate_ratios)}")
        print(f"peak RSS of the checker: {rss_mb:.0f} MB (goal < 300)")
    finally:
        pg.stop()


if __name__ == "__main__":
    main()
