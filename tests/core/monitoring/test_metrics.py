"""The metrics history on a real app database (SQLite file and PostgreSQL): rollups, retention, readers, sampler."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.config import get_settings
from core.errors import NotFound, ValidationFailed
from core.monitoring import counters, metrics, prometheus
from core.pipeline_schemas import TableStatus
from core.users import Actor
from data import db
from data import metrics as metrics_db
from data import monitoring as mon_db
from data.db import session_scope
from data.models import Connection, MetricSample, Pipeline, PipelineTable
from tests.pgcluster import PgCluster

VIEWER = Actor(id=1, email="v@example.com", role="viewer")
NOW = datetime(2026, 12, 1, 12, 0, 30, tzinfo=UTC)  # rollups take `now`: a fixed one makes buckets exact


@pytest.fixture(params=["sqlite", "postgresql"])
def app_db(request, tmp_path, monkeypatch) -> Iterator[str]:
    """A migrated app database of either kind, selected for this test only."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'app.db'}"
    else:
        pg: PgCluster = request.getfixturevalue("pg")
        name = request.getfixturevalue("pg_db")
        url = f"postgresql+psycopg2://{pg.user}:{pg.password}@{pg.host}:{pg.port}/{name}"
    monkeypatch.setattr(db, "_current_url", None)
    db.init(url)
    yield url
    db.get_engine(url).dispose()


def make_pipelines(n: int) -> list[int]:
    """`n` pipelines (on two stored connections) to hang points on."""
    with session_scope() as session:
        conns = [
            Connection(name=f"c{i}", kind="postgresql", host="127.0.0.1", port=5432, database="d", username="u")
            for i in range(2)
        ]
        session.add_all(conns)
        session.flush()
        pipes = [
            Pipeline(
                name=f"p{i}",
                source_connection_id=conns[0].id,
                target_connection_id=conns[1].id,
                source_database="d",
                source_schema="app",
                target_database="d",
                target_schema="copy",
                mode="CDC_ONLY",
            )
            for i in range(n)
        ]
        session.add_all(pipes)
        session.flush()
        ids = [int(p.id) for p in pipes]
    for pid in ids:
        counters.forget(pid)  # counters are per process: earlier tests' pipelines had these ids too
    return ids


def raw_points(pid: int, start: datetime, end: datetime, table: str = "") -> list[dict]:
    """Raw points every 10 s with varying values; every 7th bucket missing (so minutes differ in `samples`)."""
    out, i, ts = [], 0, start
    while ts < end:
        if i % 7 != 3:
            out.append(
                {
                    "pipeline_id": pid,
                    "grain": 10,
                    "ts": ts,
                    "table_name": table,
                    "samples": 1,
                    "inserts": i % 5,
                    "updates": i % 3,
                    "deletes": i % 2,
                    "load_rows": 7 if table else 0,
                    "errors": 1 if i % 50 == 0 else 0,
                    "retries": 0,
                    "latency_p50_ms": None if table or i % 11 == 0 else float(i % 13),
                    "latency_p95_ms": None if table else float(i % 17 + 20),
                    "latency_max_ms": None if table else float(i % 19 + 40),
                    "lag_bytes": None if table else (i * 37) % 1000,
                    "lag_seconds": None if table else (i % 23) / 4,
                    "retained_wal_bytes": None if table else 10_000 + i,
                }
            )
        i += 1
        ts += timedelta(seconds=10)
    return out


def expected(children: list[dict], start: datetime, span: int) -> dict:
    """What a rollup bucket must hold, computed plainly from its children."""
    inside = [c for c in children if start <= c["ts"] < start + timedelta(seconds=span)]
    lat = [c["latency_p50_ms"] for c in inside if c["latency_p50_ms"] is not None]
    return {
        "samples": len(inside),
        "inserts": sum(c["inserts"] for c in inside),
        "deletes": sum(c["deletes"] for c in inside),
        "errors": sum(c["errors"] for c in inside),
        "load_rows": sum(c["load_rows"] for c in inside),
        "latency_p50_ms": statistics.fmean(lat) if lat else None,
        "lag_seconds": statistics.fmean(c["lag_seconds"] for c in inside)
        if inside[0]["lag_seconds"] is not None
        else None,
        "latency_max_ms": max((c["latency_max_ms"] for c in inside if c["latency_max_ms"] is not None), default=None),
    }


def stored(grain: int, pid: int, table: str = "") -> dict[datetime, dict]:
    with session_scope() as session:
        rows = metrics_db.series(
            session=session, pipeline_id=pid, grain=grain, start=NOW - timedelta(days=400), tables=bool(table)
        )
    return {r["ts"]: r for r in rows if r["table_name"] == table}


def assert_bucket(row: dict, want: dict) -> None:
    for key, value in want.items():
        assert row[key] == pytest.approx(value), (row["ts"], key, row[key], value)


def test_rollups_sum_weight_and_max_idempotently_then_retention(app_db: str) -> None:
    a, b = make_pipelines(2)
    begin = datetime(2026, 12, 1, 9, 58, tzinfo=UTC)
    children = raw_points(a, begin, NOW) + raw_points(a, begin, NOW, "app.t") + raw_points(b, begin, NOW)
    with session_scope() as session:
        metrics_db.insert_points(session=session, rows=children)
    settings = get_settings()
    metrics.run_rollup(NOW, settings)

    minutes = stored(60, a)
    # Every finished minute from the first raw point, none for the minute still running at NOW.
    assert sorted(minutes) == [begin + timedelta(minutes=i) for i in range(122)]
    mine = [c for c in children if c["pipeline_id"] == a and c["table_name"] == ""]
    for ts, row in minutes.items():
        assert_bucket(row, expected(mine, ts, 60))
    table_minutes = stored(60, a, "app.t")
    assert len(table_minutes) == 122 and all(r["lag_seconds"] is None for r in table_minutes.values())
    assert sum(r["load_rows"] for r in table_minutes.values()) == 7 * sum(
        1 for c in children if c["table_name"] == "app.t" and c["ts"] < datetime(2026, 12, 1, 12, tzinfo=UTC)
    )

    hours = stored(3600, a)
    assert sorted(hours) == [datetime(2026, 12, 1, h, tzinfo=UTC) for h in (9, 10, 11)]
    for ts, row in hours.items():
        # The hour's mean weighs each minute by its raw points: it equals the mean over the raw points.
        want = expected(mine, ts, 3600)
        want.pop("latency_p50_ms")  # minutes with None among their raw points weigh those too
        assert_bucket(row, want)
    assert (
        stored(3600, b)[datetime(2026, 12, 1, 10, tzinfo=UTC)]["inserts"]
        == hours[datetime(2026, 12, 1, 10, tzinfo=UTC)]["inserts"]
    )

    # Running again (and again a minute later) counts nothing twice.
    before = {ts: dict(r) for ts, r in minutes.items()}
    metrics.run_rollup(NOW, settings)
    metrics.run_rollup(NOW + timedelta(seconds=5), settings)
    assert stored(60, a) == before
    assert {ts: r["inserts"] for ts, r in stored(3600, a).items()} == {ts: r["inserts"] for ts, r in hours.items()}

    # A raw point that arrives late for the last finished minute is taken in by the next run, once.
    late = datetime(2026, 12, 1, 11, 59, 50, tzinfo=UTC)
    assert all(c["ts"] != late for c in mine)  # a bucket the sampler had missed
    with session_scope() as session:
        session.merge(MetricSample(pipeline_id=a, grain=10, ts=late, table_name="", inserts=1000))
    last = datetime(2026, 12, 1, 11, 59, tzinfo=UTC)
    metrics.run_rollup(NOW, settings)
    metrics.run_rollup(NOW, settings)
    assert stored(60, a)[last]["inserts"] == before[last]["inserts"] + 1000

    # Retention: raw past metrics_raw_hours goes, the rollups stay; minutes past metrics_minute_days go.
    short = settings.model_copy(update={"metrics_raw_hours": 1.0, "metrics_minute_days": 1 / 24 / 2})
    out = metrics.run_rollup(NOW, short)
    assert out["purged_10"] > 0 and out["purged_60"] > 0
    assert min(stored(10, a)) >= NOW - timedelta(hours=1)
    assert min(stored(60, a)) >= NOW - timedelta(minutes=30)
    assert sorted(stored(3600, a)) == sorted(hours)


def test_history_reads_the_grain_for_the_range_and_validates(app_db: str) -> None:
    (a,) = make_pipelines(1)
    now = datetime.now(UTC)
    # 3 days of hourly rollups, then minutes for the last 2 hours, then raw points for the last 5 minutes.
    hour0 = metrics.bucket_of(now, 3600)
    rows = [
        {
            "pipeline_id": a,
            "grain": 3600,
            "ts": hour0 - timedelta(hours=h),
            "table_name": "",
            "samples": 360,
            "inserts": 3600,
            "lag_seconds": 2.0,
        }
        for h in range(2, 72)
    ]
    minute0 = metrics.bucket_of(now, 60)
    rows += [
        {
            "pipeline_id": a,
            "grain": 60,
            "ts": minute0 - timedelta(minutes=m),
            "table_name": "",
            "samples": 6,
            "inserts": 600,
            "lag_seconds": 4.0,
        }
        for m in range(6, 120)
    ]
    raw0 = metrics.bucket_of(now, 10)
    rows += [
        {
            "pipeline_id": a,
            "grain": 10,
            "ts": raw0 - timedelta(seconds=10 * i),
            "table_name": "",
            "inserts": 50,
            "updates": 20,
            "latency_p95_ms": 12.5,
            "lag_seconds": 6.0,
        }
        for i in range(30)
    ]
    with session_scope() as session:
        metrics_db.insert_points(session=session, rows=[MetricSample(**r).model_dump() for r in rows])

    month = metrics.history(VIEWER, a, "30d", metrics="rows_per_second,lag_seconds")
    assert month["grain_s"] == 3600 and month["step_s"] == 3600
    rps = dict(month["series"]["rows_per_second"])
    assert len(rps) >= 70 and rps[(hour0 - timedelta(hours=10)).isoformat()] == 1.0
    # Past the newest hourly rollup the chart goes on from the minutes and then the raw points.
    assert max(rps) >= (hour0 - timedelta(hours=1)).isoformat()

    hour = metrics.history(VIEWER, a, "1h", step="1m", metrics=["inserts_per_second", "lag_seconds"])
    assert hour["grain_s"] == 60
    assert dict(hour["series"]["inserts_per_second"])[(minute0 - timedelta(minutes=30)).isoformat()] == 10.0

    recent = metrics.history(VIEWER, a, "15m", metrics="rows_per_second,latency_p95_ms,updates_per_second")
    assert recent["grain_s"] == 10
    last = dict(recent["series"]["rows_per_second"])[(raw0 - timedelta(seconds=20)).isoformat()]
    assert last == 7.0  # (50 + 20) rows in 10 s
    assert {v for _t, v in recent["series"]["latency_p95_ms"]} == {12.5}

    for bad in ({"range": "2h"}, {"metrics": "rows,lag_bytes"}, {"step": "7x"}, {"step": "1s"}, {"metrics": ""}):
        with pytest.raises(ValidationFailed):
            metrics.history(VIEWER, a, **{"range": "1h", **bad})
    with pytest.raises(NotFound):
        metrics.history(VIEWER, a + 100, "1h")


def test_sparklines_current_and_table_stats(app_db: str) -> None:
    a, b = make_pipelines(2)
    now = datetime.now(UTC)
    raw0 = metrics.bucket_of(now, 10)
    rows = [
        {"pipeline_id": pid, "grain": 10, "ts": raw0 - timedelta(seconds=10 * i), "table_name": "", "inserts": n}
        for pid, n in ((a, 60), (b, 6))
        for i in range(3)
    ]
    with session_scope() as session:
        metrics_db.insert_points(session=session, rows=[MetricSample(**r).model_dump() for r in rows])
        minute = metrics.bucket_of(now, 60)
        mon_db.add_counts(session=session, pipeline_id=a, minute=minute, table_name="app.t", counts={"insert": 5})
        mon_db.add_counts(session=session, pipeline_id=a, minute=minute, table_name="app.u", counts={"delete": 2})
        session.add(
            PipelineTable(
                pipeline_id=a, source="app.t", target="copy.t", status="COMPLETED", rows_copied=50, rows_expected=200
            )
        )
    lines = metrics.sparklines(VIEWER, "1h")
    assert set(lines) == {a, b}
    assert sum(v for _t, v in lines[a]) * 60 == pytest.approx(180) and sum(
        v for _t, v in lines[b]
    ) * 60 == pytest.approx(18)

    now_a = metrics.current(VIEWER, a)
    assert now_a["inserts_per_second"] == pytest.approx(3.0) and now_a["rows_per_second"] == pytest.approx(3.0)
    assert now_a["totals"] == {"insert": 5, "update": 0, "delete": 2}
    assert now_a["last_change_at"] == minute.isoformat()

    stats = {s["source"]: s for s in metrics.table_stats(VIEWER, a)}
    assert stats["app.t"]["inserts"] == 5 and stats["app.t"]["full_load_pct"] == 25.0
    assert stats["app.u"]["deletes"] == 2 and stats["app.u"]["full_load_pct"] is None
    assert stats["app.t"]["last_change_at"] == minute.isoformat()


def test_sampler_takes_counters_and_merges_a_second_sample_in_the_bucket(app_db: str) -> None:
    (a,) = make_pipelines(1)
    applied = datetime.now(UTC)
    counters.note_applied(
        a,
        Counter({("app", "t", "insert"): 30, ("app", "t", "update"): 4, ("app", "u", "delete"): 1}),
        applied,
        (applied - timedelta(milliseconds=200), applied - timedelta(milliseconds=50)),
    )
    counters.note_error(a)
    metrics.sample()
    assert a not in counters.pending()
    counters.note_applied(a, Counter({("app", "t", "insert"): 5}), applied, (applied - timedelta(milliseconds=100),))
    metrics.sample()
    with session_scope() as session:
        points = metrics_db.series(session=session, pipeline_id=a, grain=10, start=applied - timedelta(minutes=1))
        tables = metrics_db.series(
            session=session, pipeline_id=a, grain=10, start=applied - timedelta(minutes=1), tables=True
        )
    assert sum(p["inserts"] for p in points) == 35 and sum(p["updates"] for p in points) == 4
    assert sum(p["deletes"] for p in points) == 1 and sum(p["errors"] for p in points) == 1
    assert max(p["latency_max_ms"] for p in points) == pytest.approx(200, abs=1)
    assert all(p["latency_p50_ms"] is not None for p in points)
    per_table = Counter()
    for t in tables:
        per_table[t["table_name"]] += t["inserts"] + t["updates"] + t["deletes"]
    assert per_table == {"app.t": 39, "app.u": 1}
    # Nothing noted and nothing running: no point at all.
    metrics.sample()
    with session_scope() as session:
        again = metrics_db.series(session=session, pipeline_id=a, grain=10, start=applied - timedelta(minutes=1))
    assert sum(p["inserts"] for p in again) == 35


def test_load_rows_are_deltas_of_the_live_tables() -> None:
    pid = 987_654
    status = lambda state, n: {"app.t": TableStatus(source="app.t", target="c.t", status=state, rows_copied=n)}  # noqa: E731
    assert metrics._load_deltas(pid, status("RUNNING", 400)) == {"app.t": 400}  # loading since the last sample
    assert metrics._load_deltas(pid, status("RUNNING", 1000)) == {"app.t": 600}
    assert metrics._load_deltas(pid, status("RUNNING", 250)) == {"app.t": 250}  # reloaded from the start
    assert metrics._load_deltas(pid + 1, status("COMPLETED", 5000)) == {}  # an earlier load: baseline only
    assert metrics._load_deltas(pid + 1, status("COMPLETED", 5000)) == {}


@pytest.mark.parametrize("table_labels", [False, True])
def test_prometheus_counters_histogram_and_opt_in_table_labels(tmp_path, monkeypatch, table_labels: bool) -> None:
    monkeypatch.setattr(db, "_current_url", None)
    db.init(f"sqlite:///{tmp_path / 'app.db'}")
    monkeypatch.setenv("CDC_STUDIO_METRICS_TABLE_LABELS", "true" if table_labels else "false")
    get_settings.cache_clear()
    try:
        (a,) = make_pipelines(1)
        at = datetime.now(UTC)
        batch = Counter({("app", "t", "insert"): 7, ("app", "u", "insert"): 3, ("app", "u", "delete"): 2})
        counters.note_applied(a, batch, at, (at - timedelta(milliseconds=3), at - timedelta(seconds=2)))
        counters.note_retry(a)
        fams = {f.name: f.samples for f in text_string_to_metric_families(prometheus.exposition().decode())}
    finally:
        get_settings.cache_clear()
    rows = {
        tuple(sorted(s.labels.items())): s.value for s in fams["cdcstudio_rows_applied"] if s.name.endswith("_total")
    }
    base = (("op", "insert"), ("pipeline", "p0"), ("pipeline_id", str(a)))
    if table_labels:
        assert rows[(*base, ("table", "app.t"))] == 7 and rows[(*base, ("table", "app.u"))] == 3
        assert len(rows) == 3
    else:
        assert rows == {base: 10, (("op", "delete"), ("pipeline", "p0"), ("pipeline_id", str(a))): 2}
    buckets = {s.labels["le"]: s.value for s in fams["cdcstudio_apply_latency_seconds"] if s.name.endswith("_bucket")}
    assert buckets["0.001"] == 0 and buckets["0.005"] == 1 and buckets["2.5"] == 2 and buckets["+Inf"] == 2
    retries = [s.value for s in fams["cdcstudio_retries"] if s.name == "cdcstudio_retries_total"]
    assert retries == [1]
    assert {s.labels["state"]: s.value for s in fams["cdcstudio_pipelines"]}["NOT_STARTED"] == 1
