"""Metrics history speed: 30 days of 10-s points for 50 pipelines, read back as charts, on SQLite and PostgreSQL.

The points are laid out the way the app keeps them (core.monitoring.metrics): raw 10-s points for the
last 48 h, 1-minute rollups for 14 days, 1-hour rollups for 30 days, each with one table's points beside
the pipeline-wide one (a one-table pipeline writes both), bulk-inserted with the values the rollups would
have computed. Then `metrics.history(actor, pid, range)` (every metric) is timed for each of the 50
pipelines, for the ranges 30d, 24h and 1h, over several rounds, and `sparklines` (all pipelines, one query)
too; p50/p95/max per round and overall. Goal: history p95 < 100 ms on both app databases. The table's
size (rows per grain, bytes) is printed.

    .venv/bin/python benchmarks/monitoring.py [--pipelines 50] [--days 30] [--rounds 3] [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import gc
import io
import math
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text  # noqa: E402

from core.monitoring import metrics  # noqa: E402
from core.users import Actor  # noqa: E402
from data import db  # noqa: E402
from data import metrics as metrics_db  # noqa: E402
from data.db import session_scope  # noqa: E402
from tests.core.monitoring.test_metrics import make_pipelines  # noqa: E402 - the same stored pipelines as the tests
from tests.pgcluster import PgCluster  # noqa: E402

ACTOR = Actor(id=1, email="bench@example.com", role="viewer")
RANGES = ("30d", "24h", "1h")
CHUNK = 20_000  # rows per executemany
GOAL_MS = 100.0


def point(pid: int, grain: int, ts: datetime, table: str) -> dict:
    """A point with the values a busy pipeline would have: a daily wave of throughput, lag following it."""
    samples = grain // metrics.RAW
    wave = 1 + math.sin((ts.timestamp() / 86400 + pid / 7) * 2 * math.pi)
    rows = int(200 * wave * grain)  # ~200 rows/s on average
    out = {
        "pipeline_id": pid,
        "grain": grain,
        "ts": ts,
        "table_name": table,
        "samples": samples,
        "inserts": rows // 2,
        "updates": rows // 3,
        "deletes": rows // 10,
        "load_rows": 0,
        "errors": 0,
        "retries": 0,
        "latency_p50_ms": None,
        "latency_p95_ms": None,
        "latency_max_ms": None,
        "lag_bytes": None,
        "lag_seconds": None,
        "retained_wal_bytes": None,
    }
    if not table:
        out.update(
            latency_p50_ms=3 + wave,
            latency_p95_ms=20 + 10 * wave,
            latency_max_ms=80 + 40 * wave,
            lag_bytes=int(50_000 * wave),
            lag_seconds=0.2 * wave,
            retained_wal_bytes=int(16_000_000 + 4_000_000 * wave),
        )
    return out


def points(pids: list[int], grain: int, start: datetime, end: datetime) -> Iterator[dict]:
    """Every point of `grain` in [start, end) of every pipeline, a pipeline-wide and a table one each."""
    step = timedelta(seconds=grain)
    for pid in pids:
        ts = metrics.bucket_of(start, grain)
        while ts < end:
            yield point(pid, grain, ts, "")
            yield point(pid, grain, ts, "app.orders")
            ts += step


def fill(pids: list[int], days: float, now: datetime) -> dict[int, float]:
    """Bulk-insert the history; seconds each grain took."""
    spans = {
        metrics.RAW: min(days, 2.0),  # 48 h of raw points
        metrics.MINUTE: min(days, 14.0),
        metrics.HOUR: days,
    }
    took = {}
    for grain, span_days in spans.items():
        began = time.perf_counter()
        end = metrics.bucket_of(now, grain) if grain > metrics.RAW else now
        batch: list[dict] = []
        for p in points(pids, grain, now - timedelta(days=span_days), end):
            batch.append(p)
            if len(batch) >= CHUNK:
                _insert(batch)
                batch = []
        _insert(batch)
        took[grain] = time.perf_counter() - began
    return took


def _insert(batch: list[dict]) -> None:
    """SQLite: the app's own bulk insert; PostgreSQL: COPY (the same rows, five times faster to generate)."""
    if not batch:
        return
    with session_scope() as session:
        if session.get_bind().dialect.name == "sqlite":
            metrics_db.insert_points(session=session, rows=batch)
            return
        buf = io.StringIO()
        for p in batch:
            buf.write("\t".join(_copy_value(p[c]) for c in metrics_db.COLUMNS) + "\n")
        buf.seek(0)
        cursor = session.connection().connection.cursor()
        cursor.copy_expert(f"COPY metric_samples ({', '.join(metrics_db.COLUMNS)}) FROM STDIN", buf)


def _copy_value(v: object) -> str:
    if v is None:
        return "\\N"
    return v.isoformat() if isinstance(v, datetime) else str(v)


def table_size(url: str) -> str:
    """Rows per grain and bytes of metric_samples (with its primary-key index)."""
    with session_scope() as session:
        counts = metrics_db.count_points(session=session)
        if url.startswith("sqlite"):
            size = Path(url.removeprefix("sqlite:///")).stat().st_size
            where = "database file"
        else:
            size = session.execute(text("SELECT pg_total_relation_size('metric_samples')")).scalar() or 0
            where = "pg_total_relation_size"
    rows = ", ".join(f"grain {g}: {n:,}" for g, n in sorted(counts.items()))
    return f"{sum(counts.values()):,} rows ({rows}); {size / 2**20:.0f} MiB ({where})"


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def line(label: str, ms: list[float]) -> str:
    return f"{label:<22} p50 {statistics.median(ms):7.1f} ms  p95 {pct(ms, 0.95):7.1f} ms  max {max(ms):7.1f} ms"


def measure(pids: list[int], rounds: int) -> dict[str, list[float]]:
    """Times (ms) of history per pipeline per range and of sparklines, each round printed."""
    every: dict[str, list[float]] = {r: [] for r in RANGES}
    every["sparklines 1h"] = []
    every["sparklines 24h"] = []
    for i in range(1, rounds + 1):
        for r in RANGES:
            ms, points_read = [], 0
            for pid in pids:
                began = time.perf_counter()
                out = metrics.history(ACTOR, pid, r)
                ms.append((time.perf_counter() - began) * 1000)
                points_read = max(points_read, len(out["series"]["rows_per_second"]))
            every[r] += ms
            print(f"  round {i}  " + line(f"history {r} x{len(pids)}", ms) + f"  ({points_read} points a series)")
        for r in ("1h", "24h"):
            began = time.perf_counter()
            lines = metrics.sparklines(ACTOR, r)
            ms_one = (time.perf_counter() - began) * 1000
            every[f"sparklines {r}"].append(ms_one)
            print(f"  round {i}  sparklines {r}: {len(lines)} pipelines in {ms_one:.1f} ms")
    return every


def run_backend(name: str, url: str, args: argparse.Namespace) -> dict[str, list[float]]:
    """Fill one app database and time its readers."""
    db.init(url)
    now = datetime.now(UTC)
    pids = make_pipelines(args.pipelines)
    took = fill(pids, args.days, now)
    gc.collect()  # the generated points are gone: what is timed next is the readers only
    print(f"\n{name}: filled in " + ", ".join(f"grain {g} {s:.0f} s" for g, s in took.items()))
    print(f"{name}: metric_samples {table_size(url)}")
    every = measure(pids, args.rounds)
    db.get_engine(url).dispose()
    return every


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipelines", type=int, default=50)
    parser.add_argument("--days", type=float, default=30.0, help="days of history (hourly rollups)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    began = time.perf_counter()
    app_dir = Path(tempfile.mkdtemp(prefix="cdcstudio-bench-metrics-"))
    pg = PgCluster.start() if "postgresql" in backends else None
    results = {}
    try:
        for name in backends:
            if name == "sqlite":
                url = f"sqlite:///{app_dir / 'app.db'}"
            else:
                assert pg is not None
                pg.create_database("bench_app")
                url = f"postgresql+psycopg2://{pg.user}:{pg.password}@{pg.host}:{pg.port}/bench_app"
            results[name] = run_backend(name, url, args)
    finally:
        if pg is not None:
            pg.stop()
        shutil.rmtree(app_dir, ignore_errors=True)
    print(
        f"\nsummary ({args.pipelines} pipelines, {args.days:g} days, {args.rounds} rounds;"
        f" goal history p95 < {GOAL_MS:.0f} ms)"
    )
    for name, every in results.items():
        for label, ms in every.items():
            verdict = "" if label.startswith("sparklines") else ("  met" if pct(ms, 0.95) < GOAL_MS else "  NOT MET")
            print(f"  {name:<10} " + line(label if label.startswith("spark") else f"history {label}", ms) + verdict)
    print(f"total time {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
