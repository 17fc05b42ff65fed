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

`--app` measures the product instead: a real app process (its scheduler, monitoring and UI running) holds a
pipeline of the table, and each check is started with POST /api/v1/pipelines/{id}/data-checks and timed until
GET .../data-checks/{check_id} says `completed` (its counts step included, as users run it); a check's time is
its started_at..finished_at as the app recorded it (the wall time to the poll that saw it end is printed too);
the peak RSS is the app process's.

    .venv/bin/python benchmarks/validate.py [--rows 2000000] [--rounds 3] [--app]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from core.connectors.base import ConnectionSpec  # noqa: E402
from core.datacheck.engine import Reader, TableValidator  # noqa: E402
from tests.appprocess import AppProcess  # noqa: E402
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


def engine_check(pg: PgCluster) -> tuple[float, int]:
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


class AppCheck:
    """Checks run by the app, through its API (--app)."""

    def __init__(self, pg: PgCluster, workdir: Path) -> None:
        self.app = AppProcess(workdir / "data", workdir / "app.log")
        self.app.start()
        self.h = self.app.token()
        ids = []
        for name, db, usage in (("src", SOURCE_DB, "source"), ("tgt", TARGET_DB, "target")):
            body = {"name": name, "kind": "postgresql", "usage": usage, "host": pg.host, "port": pg.port,
                    "database": db, "username": pg.user, "password": pg.password}  # fmt: skip
            ids.append(self._post("/api/v1/connections", body)["id"])
        body = {"name": "bench", "source_connection_id": ids[0], "target_connection_id": ids[1],
                "source_schema": "public", "target_schema": "public", "tables": ["facts"],
                "mode": "FULL_LOAD_ONLY"}  # fmt: skip
        self.pid = self._post("/api/v1/pipelines", body)["id"]
        self.wall_s: list[float] = []  # each check from the POST to the poll that saw it completed

    def _post(self, path: str, body: dict) -> dict:
        r = httpx.post(f"{self.app.base}{path}", headers=self.h, json=body, timeout=60)
        assert r.status_code in (200, 201), r.text
        return r.json()

    def __call__(self, pg: PgCluster) -> tuple[float, int]:
        began = time.perf_counter()
        check_id = self._post(f"/api/v1/pipelines/{self.pid}/data-checks", {"mode": "full"})["id"]
        url = f"{self.app.base}/api/v1/pipelines/{self.pid}/data-checks/{check_id}"
        while (check := httpx.get(url, headers=self.h, timeout=60).json())["status"] == "running":
            time.sleep(0.25)  # a person's page polls every 2 s; polling faster only loads the app
        self.wall_s.append(time.perf_counter() - began)
        assert check["status"] == "completed", check
        # the check's own duration as the app recorded it (from the request to its end), free of the polling
        inside = datetime.fromisoformat(check["finished_at"]) - datetime.fromisoformat(check["started_at"])
        return inside.total_seconds(), sum(t["mismatched_rows"] or 0 for t in check["tables"])

    def peak_rss_mb(self) -> float:
        assert self.app.process is not None
        for line in Path(f"/proc/{self.app.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def close(self) -> None:
        self.app.terminate()


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
    parser.add_argument("--app", action="store_true", help="run the checks in a real app process, via its API")
    args = parser.parse_args()
    pg = PgCluster.start()
    app: AppCheck | None = None
    try:
        for db in (SOURCE_DB, TARGET_DB):
            pg.create_database(db)
            run_sql(pg, db, BUILD.format(rows=args.rows))
        if args.app:
            app = AppCheck(pg, Path(tempfile.mkdtemp(prefix="bench_validate_")))
        check = app if app is not None else engine_check
        print(
            f"{args.rows:,} rows on each side; {args.rounds} round(s); checks run by the {'app' if app else 'engine'}"
        )
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
        rss_mb = app.peak_rss_mb() if app else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"limit/clean (goal >= 0.8): {spread(ratios)}")
        print(f"locate/clean (goal <= 1.5): {spread(locate_ratios)}")
        print(f"peak RSS of the {'app process' if app else 'checker'}: {rss_mb:.0f} MB (goal < 300)")
        if app is not None:
            each = ", ".join(f"{x:.2f} s" for x in app.wall_s)
            print(f"the checks timed from outside (POST to the poll that saw them end, every 0.25 s): {each}")
    finally:
        if app is not None:
            app.close()
        pg.stop()


if __name__ == "__main__":
    main()
