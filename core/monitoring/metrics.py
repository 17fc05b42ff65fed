"""The metrics history: a 10-s sampler, 1-min and 1-h rollups with retention, and what charts read.

`sample` (an app job every metrics_sample_s) turns what engines noted in core.monitoring.counters and the
live figures of running workers into one raw point per pipeline (table_name '') and per table; `rollup`
(every 60 s) recomputes finished minutes from raw points and finished hours from minutes, then drops what
is past its retention. Readers pick the coarsest grain that answers a chart (a 30-day chart reads hourly
rollups) and re-bucket to the step asked.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

from core import runner
from core.cdc import pg_source
from core.config import Settings, get_settings
from core.errors import NotFound, ValidationFailed
from core.fullload.model import RUNNING as TABLE_RUNNING
from core.lifecycle import Mode, State
from core.monitoring import counters
from core.monitoring.recorder import flush
from core.plans import connection_for, spec_in
from core.security import Action, require
from core.users import Actor
from data import metrics as metrics_db
from data import monitoring as mon_db
from data import pipelines as pipe_db
from data.db import session_scope
from data.models import Pipeline

log = logging.getLogger(__name__)

RAW, MINUTE, HOUR = 10, 60, 3600
SUMS = ("inserts", "updates", "deletes", "load_rows", "errors", "retries")
MEANS = ("latency_p50_ms", "latency_p95_ms", "lag_bytes", "lag_seconds", "retained_wal_bytes")
MAXES = ("latency_max_ms",)
_INTEGER = {"lag_bytes", "retained_wal_bytes"}  # BigInteger columns: means are rounded

RANGES = {"15m": 900, "1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
DEFAULT_STEP = {"15m": 10, "1h": 10, "6h": 60, "24h": 300, "7d": 1800, "30d": 3600}
SPARKLINE_POINTS = 60
SLOT_LOOK_EVERY_S = 60.0  # a stopped pipeline's slot is read at most this often
_STOPPED = {State.PAUSED, State.STOPPED, State.ERROR}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_STEP = re.compile(r"^(\d+)([smhd])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


# A metric: (True: a rate, the columns' sum per second of the step | False: the column's value, the columns).
METRICS: dict[str, tuple[bool, tuple[str, ...]]] = {
    "rows_per_second": (True, ("inserts", "updates", "deletes")),
    "inserts_per_second": (True, ("inserts",)),
    "updates_per_second": (True, ("updates",)),
    "deletes_per_second": (True, ("deletes",)),
    "load_rows_per_second": (True, ("load_rows",)),
    "latency_p50_ms": (False, ("latency_p50_ms",)),
    "latency_p95_ms": (False, ("latency_p95_ms",)),
    "latency_max_ms": (False, ("latency_max_ms",)),
    "lag_bytes": (False, ("lag_bytes",)),
    "lag_seconds": (False, ("lag_seconds",)),
    "retained_wal_bytes": (False, ("retained_wal_bytes",)),
    "errors": (False, ("errors",)),
    "retries": (False, ("retries",)),
}


def _values(name: str, columns: dict[str, list], step_s: int) -> list:
    """A metric's values of every bucket, from the buckets' column values (a list per column)."""
    rate, cols = METRICS[name]
    if not rate:
        return columns[cols[0]]
    if len(cols) == 1:
        return [round(v / step_s, 3) for v in columns[cols[0]]]
    return [round(sum(vs) / step_s, 3) for vs in zip(*(columns[c] for c in cols), strict=True)]


def bucket_of(at: datetime, seconds: int) -> datetime:
    """The start of the `seconds`-long UTC bucket `at` falls in (buckets aligned on the epoch)."""
    elapsed = int(at.timestamp())
    return datetime.fromtimestamp(elapsed - elapsed % seconds, UTC)


def merge(points: Sequence[dict], columns: Iterable[str] | None = None) -> dict:
    """Points of one bucket as one: counts summed, gauges the `samples`-weighted mean, maxima the max
    (of `columns` only, when given)."""
    wanted = set(columns) if columns is not None else None
    out: dict = {"samples": sum(p.get("samples") or 1 for p in points)}
    for c in SUMS:
        if wanted is None or c in wanted:
            out[c] = sum(p.get(c) or 0 for p in points)
    for c in MEANS:
        if wanted is None or c in wanted:
            out[c] = _mean(points, c)
    for c in MAXES:
        if wanted is None or c in wanted:
            values = [p[c] for p in points if p.get(c) is not None]
            out[c] = max(values) if values else None
    return out


def _mean(points: Sequence[dict], c: str) -> float | int | None:
    weighted = [(p[c], p.get("samples") or 1) for p in points if p.get(c) is not None]
    weight = sum(w for _v, w in weighted)
    if not weight:
        return None
    mean = sum(v * w for v, w in weighted) / weight
    return round(mean) if c in _INTEGER else mean


def group(points: Iterable[dict], seconds: int, keys: tuple[str, ...] = ("pipeline_id", "table_name")) -> dict:
    """Points grouped by their `keys` and `seconds`-bucket: {(key..., bucket): [points]}."""
    out: dict[tuple, list[dict]] = {}
    for p in points:
        out.setdefault((*(p[k] for k in keys), bucket_of(p["ts"], seconds)), []).append(p)
    return out


# --- the sampler ---------------------------------------------------------------------------------------

_prev_copied: dict[tuple[int, str], int] = {}  # (pipeline, table) -> rows_copied at the previous sample
_slot_seen: dict[int, tuple[float, dict | None]] = {}  # stopped pipeline -> (monotonic time, its slot figures)


_sampling = threading.Lock()  # the job and a direct call never merge into the same bucket at once


def sample() -> None:
    """App job: one raw point per active pipeline (and per table) into the history; never raises."""
    try:
        with _sampling:
            _sample(datetime.now(UTC))
    except Exception:  # noqa: BLE001 - a failed sample is a gap in a chart, never a failure of the app
        log.exception("metrics sample failed")


def _sample(now: datetime) -> None:
    ts = bucket_of(now, RAW)
    with session_scope() as session:
        pipes = {p.id: p for p in pipe_db.list_pipelines(session=session) if p.id is not None}
    for pid in counters.pending():
        if pid not in pipes:
            counters.take(pid)  # a deleted pipeline's last counts have nowhere to go
    pending = set(counters.pending())
    rows: list[dict] = []
    for pid, p in pipes.items():
        rows += _pipeline_points(p, ts, pid in pending)
    if rows:
        with session_scope() as session:
            _upsert(session, ts, rows)
    # After the running pipelines' points are written: a source that does not answer delays only these.
    sampled = {r["pipeline_id"] for r in rows}
    slots = _stopped_slots([p for pid, p in pipes.items() if pid not in sampled])
    if slots:
        with session_scope() as session:
            _upsert(session, ts, [_point(pid, ts, "", **_slot_values(slot)) for pid, slot in slots])


def _slot_values(slot: dict) -> dict:
    return {"lag_bytes": slot["lag_bytes"], "retained_wal_bytes": slot["retained_wal_bytes"]}


def stopped_slot(pipeline_id: int) -> dict | None:
    """The last figures read from a stopped or paused pipeline's slot (lag_bytes, retained_wal_bytes), if recent."""
    seen = _slot_seen.get(pipeline_id)
    if seen is None or seen[1] is None or time.monotonic() - seen[0] > 3 * SLOT_LOOK_EVERY_S:
        return None
    return _slot_values(seen[1])


def _pipeline_points(p: Pipeline, ts: datetime, pending: bool) -> list[dict]:
    """The pipeline's points of this sample (none when nothing runs and nothing was noted)."""
    pid = int(p.id or 0)
    figures = runner.cdc_figures(pid)
    live = runner.live_tables(pid)
    if figures is None and not live and not pending:
        for key in [k for k in _prev_copied if k[0] == pid]:
            del _prev_copied[key]
        return []
    window = counters.take(pid)
    loads = _load_deltas(pid, live)
    per_table: dict[str, dict] = {}
    for (name, op), n in window.counts.items():
        column = {"insert": "inserts", "update": "updates", "delete": "deletes"}.get(op)
        if column:
            per_table.setdefault(name, _point(pid, ts, name))[column] += n
    for name, n in loads.items():
        per_table.setdefault(name, _point(pid, ts, name))["load_rows"] += n
    whole = _point(pid, ts, "", errors=window.errors, retries=window.retries, **_latencies(window.latencies_s))
    for c in ("inserts", "updates", "deletes", "load_rows"):
        whole[c] = sum(t[c] for t in per_table.values())
    if figures is not None:
        whole.update(
            lag_bytes=figures.get("lag_bytes"),
            lag_seconds=figures.get("seconds_behind"),
            retained_wal_bytes=figures.get("retained_wal_bytes"),
        )
    return [whole, *per_table.values()]


def _point(pid: int, ts: datetime, table_name: str, **values: object) -> dict:
    point: dict = {"pipeline_id": pid, "grain": RAW, "ts": ts, "table_name": table_name, "samples": 1}
    point.update(dict.fromkeys(SUMS, 0))
    point.update(dict.fromkeys(MEANS + MAXES))
    point.update(values)
    return point


def _latencies(latencies_s: list[float]) -> dict:
    """p50, p95 and max in ms of a window's latencies (nearest rank); nothing when there are none."""
    if not latencies_s:
        return {}
    s = sorted(latencies_s)
    rank = lambda q: s[min(len(s) - 1, int(q * len(s)))]  # noqa: E731
    return {
        "latency_p50_ms": round(rank(0.5) * 1000, 3),
        "latency_p95_ms": round(rank(0.95) * 1000, 3),
        "latency_max_ms": round(s[-1] * 1000, 3),
    }


def _load_deltas(pid: int, live: dict) -> dict[str, int]:
    """Rows each table's full load copied since the previous sample."""
    out = {}
    for name, t in live.items():
        prev = _prev_copied.get((pid, name))
        if prev is None:
            # First sight: a table loading now counts from 0; one finished earlier (a CDC run shows its
            # last load's figures) is only the baseline.
            prev = 0 if t.status == TABLE_RUNNING else t.rows_copied
        delta = t.rows_copied - prev if t.rows_copied >= prev else t.rows_copied  # a reload starts again at 0
        _prev_copied[(pid, name)] = t.rows_copied
        if delta > 0:
            out[name] = delta
    return out


def _stopped_slots(pipes: list[Pipeline]) -> list[tuple[int, dict]]:
    """A stopped or paused CDC pipeline's slot keeps growing: read it from the source at most once a minute."""
    now = time.monotonic()
    out = []
    for p in pipes:
        if p.mode == Mode.FULL_LOAD_ONLY or p.engine != "embedded" or p.id is None or p.state not in _STOPPED:
            continue
        seen = _slot_seen.get(p.id)
        if seen is not None and now - seen[0] < SLOT_LOOK_EVERY_S:
            continue
        slot = _slot_figures(p)
        _slot_seen[p.id] = (now, slot)
        if slot is not None:
            out.append((p.id, slot))
    return out


def _slot_figures(p: Pipeline) -> dict | None:
    try:
        with session_scope() as session:
            src = connection_for(session, "source_connection_id", p.source_connection_id, "source")
        if src.kind != "postgresql":
            return None
        return pg_source.slot_status(spec_in(src, p.source_database), p.slot_name or pg_source.slot_name(p.id or 0))
    except Exception as exc:  # noqa: BLE001 - a source that does not answer is the health checks' news
        log.debug("slot of pipeline %s not read: %s", p.id, exc)
        return None


def _upsert(session, ts: datetime, rows: list[dict]) -> None:  # noqa: ANN001
    """Write the sample's points; a second sample in the same 10-s bucket merges into the first."""
    pids = {r["pipeline_id"] for r in rows}
    old = metrics_db.points_at(session=session, grain=RAW, ts=ts, pipeline_ids=pids)
    if old:
        by_key: dict[tuple, list[dict]] = {}
        for r in (*old, *rows):
            by_key.setdefault((r["pipeline_id"], r["table_name"]), []).append(r)
        rows = [
            {"pipeline_id": k[0], "grain": RAW, "ts": ts, "table_name": k[1], **merge(v)} for k, v in by_key.items()
        ]
    metrics_db.replace_points(
        session=session, grain=RAW, start=ts, end=ts + timedelta(seconds=RAW), rows=rows, pipeline_ids=pids
    )


# --- rollups and retention -----------------------------------------------------------------------------

_CHUNK = {MINUTE: timedelta(hours=1), HOUR: timedelta(days=1)}  # buckets recomputed per transaction


def rollup() -> None:
    """App job: finished minutes from raw points, finished hours from minutes, then retention; never raises."""
    try:
        run_rollup(datetime.now(UTC), get_settings())
    except Exception:  # noqa: BLE001 - the next run recomputes the same buckets
        log.exception("metrics rollup failed")


def run_rollup(now: datetime, settings: Settings) -> dict[str, int]:
    """Roll up and apply retention as of `now`; how many points each step wrote or deleted."""
    keep = _retention(settings)
    out = {
        "minutes": _roll(RAW, MINUTE, now, keep[RAW]),
        "hours": _roll(MINUTE, HOUR, now, keep[MINUTE]),
    }
    with session_scope() as session:
        for grain, span in keep.items():
            out[f"purged_{grain}"] = metrics_db.purge(session=session, grain=grain, before=now - span)
    return out


def _retention(settings: Settings) -> dict[int, timedelta]:
    return {
        RAW: timedelta(hours=settings.metrics_raw_hours),
        MINUTE: timedelta(days=settings.metrics_minute_days),
        HOUR: timedelta(days=settings.metrics_hour_days),
    }


def _roll(child: int, parent: int, now: datetime, child_keep: timedelta) -> int:
    """Recompute every finished `parent` bucket from its children since the newest one (which is recomputed
    too, with the one before: children may arrive after a bucket was first rolled up)."""
    end = bucket_of(now, parent)
    with session_scope() as session:
        newest = metrics_db.newest_ts(session=session, grain=parent)
        oldest = metrics_db.oldest_ts(session=session, grain=child)
    if newest is not None:
        start = newest - timedelta(seconds=parent)
    elif oldest is not None:
        start = bucket_of(oldest, parent)
    else:
        return 0
    # Never recompute a bucket whose children retention already thinned.
    start = max(start, bucket_of(now - child_keep, parent) + timedelta(seconds=parent))
    written = 0
    while start < end:
        stop = min(end, start + _CHUNK[parent])
        with session_scope() as session:
            children = metrics_db.points_between(session=session, grain=child, start=start, end=stop)
            rows = aggregate(children, parent)
            metrics_db.replace_points(session=session, grain=parent, start=start, end=stop, rows=rows)
        written += len(rows)
        start = stop
    return written


def aggregate(children: Iterable[dict], parent: int) -> list[dict]:
    """Children points as points of the `parent` grain, one per pipeline, table and bucket."""
    return [
        {"pipeline_id": pid, "grain": parent, "ts": ts, "table_name": name, **merge(points)}
        for (pid, name, ts), points in group(children, parent).items()
    ]


# --- readers -------------------------------------------------------------------------------------------


def _range_s(range_: str) -> int:
    if range_ not in RANGES:
        raise ValidationFailed("range", f"one of {', '.join(RANGES)}, not {range_!r}")
    return RANGES[range_]


def _step_s(step: str | None, range_: str) -> int:
    if step is None:
        return DEFAULT_STEP[range_]
    m = _STEP.match(step.strip())
    seconds = int(m.group(1)) * _UNIT[m.group(2)] if m else 0
    if not RAW <= seconds <= RANGES[range_]:
        raise ValidationFailed("step", f"like 10s, 1m, 5m or 1h, at least 10s and at most the range, not {step!r}")
    return seconds


def _metric_names(metrics: str | Sequence[str] | None) -> list[str]:
    if metrics is None:
        return list(METRICS)
    names = [m.strip() for m in (metrics.split(",") if isinstance(metrics, str) else metrics) if m.strip()]
    unknown = [m for m in names if m not in METRICS]
    if unknown or not names:
        raise ValidationFailed("metrics", f"unknown {', '.join(unknown) or '(none)'}; known: {', '.join(METRICS)}")
    return names


def grain_for(range_s: int, step_s: int, settings: Settings) -> int:
    """The coarsest stored grain no longer than the step whose retention covers the range (hourly if none)."""
    keep = _retention(settings)
    for grain in (HOUR, MINUTE, RAW):
        if grain <= step_s and keep[grain].total_seconds() >= range_s:
            return grain
    return HOUR


def _finer(grain: int) -> int | None:
    return {HOUR: MINUTE, MINUTE: RAW}.get(grain)


class _Buckets:
    """Buckets of a range aggregated in SQL, oldest first: `keys` name the columns of each row (a tuple)."""

    def __init__(self, keys: list[str], rows: list[tuple]) -> None:
        self.keys, self.rows = keys, rows
        self._at = {k: i for i, k in enumerate(keys)}

    def column(self, name: str) -> list:
        """One column of every bucket."""
        i = self._at[name]
        return [r[i] for r in self.rows]

    def times(self) -> list[str]:
        """Each bucket's start, ISO 8601."""
        return [datetime.fromtimestamp(b, UTC).isoformat() for b in self.column("b")]


def _read(
    session, pid: int, grain: int, start: datetime, step_s: int, columns: Sequence[str], tables: bool
) -> _Buckets:  # noqa: ANN001
    """Buckets of `step_s` from `start` aggregated in SQL from `grain`, and past its newest point from the finer
    grains the rollups have not reached yet (a bucket both touch is merged)."""
    sums = [c for c in SUMS if c in columns]
    means = [c for c in MEANS if c in columns]
    maxes = [c for c in MAXES if c in columns]
    acc: dict[tuple[str, int], tuple] = {}
    keys: list[str] = []
    last: int | None = None
    while True:
        keys, rows = metrics_db.bucketed(
            session=session, pipeline_id=pid, grain=grain, start=start, step_s=step_s,
            sums=sums, means=means, maxes=maxes, tables=tables,
        )  # fmt: skip
        for r in rows:
            key = (r[3], r[0])  # (table_name, b)
            old = acc.get(key)
            acc[key] = r if old is None else _merged(keys, old, r)
            last = r[1] if last is None else max(last, r[1])
        finer = _finer(grain)
        if finer is None:
            break
        if last is not None:  # the finer grain only where this one ends: nothing is counted twice
            start = max(start, datetime.fromtimestamp(last + grain, UTC))
        grain = finer
    return _Buckets(keys, list(acc.values()))


def _merged(keys: list[str], a: tuple, b: tuple) -> tuple:
    """Two SQL buckets of the same time (a coarse grain's last and a finer grain's first) as one."""
    x, y = dict(zip(keys, a, strict=True)), dict(zip(keys, b, strict=True))
    out = {**x, "last": max(x["last"], y["last"]), "samples": x["samples"] + y["samples"]}
    for c in keys[4:]:
        if c in SUMS:
            out[c] = (x[c] or 0) + (y[c] or 0)
        elif c in MAXES:
            out[c] = max((v for v in (x[c], y[c]) if v is not None), default=None)
        elif c in MEANS:
            wx, wy = x[f"{c}_w"] or 0, y[f"{c}_w"] or 0
            total = (x[c] or 0) * wx + (y[c] or 0) * wy
            out[c], out[f"{c}_w"] = (total / (wx + wy) if wx + wy else None), wx + wy
    return tuple(out[k] for k in keys)


def _check_pipeline(session, pipeline_id: int) -> Pipeline:  # noqa: ANN001
    p = pipe_db.get_pipeline(session=session, pipeline_id=pipeline_id)
    if p is None:
        raise NotFound(f"pipeline {pipeline_id} does not exist")
    return p


def history(
    actor: Actor,
    pipeline_id: int,
    range: str = "1h",  # noqa: A002 - the API's name
    step: str | None = None,
    metrics: str | Sequence[str] | None = None,
) -> dict:
    """A pipeline's metrics over a range: {"series": {name: [(iso ts, value), ...]}, "step_s", "grain_s"} (pairs
    as tuples: the garbage collector does not track them, which keeps a 720-point answer free of GC pauses)."""
    require(actor, Action.read)
    range_s = _range_s(range)
    step_s = _step_s(step, range)
    names = _metric_names(metrics)
    grain = grain_for(range_s, step_s, get_settings())
    step_s = max(step_s, grain)
    columns = tuple(dict.fromkeys(c for n in names for c in METRICS[n][1]))
    start = bucket_of(datetime.now(UTC) - timedelta(seconds=range_s), step_s)
    with session_scope() as session:
        _check_pipeline(session, pipeline_id)
        buckets = _read(session, pipeline_id, grain, start, step_s, columns, tables=False)
    ats = buckets.times()
    values = {c: buckets.column(c) for c in columns}
    series = {
        n: [(at, v) for at, v in zip(ats, _values(n, values, step_s), strict=True) if v is not None] for n in names
    }
    return {"series": series, "step_s": step_s, "grain_s": grain}


def table_history(actor: Actor, pipeline_id: int, range: str = "1h") -> dict:  # noqa: A002
    """Full-load rows/s per table over a range: {"series": {"schema.table": [[iso ts, rows/s], ...]}}."""
    require(actor, Action.read)
    range_s = _range_s(range)
    step_s = DEFAULT_STEP[range]
    grain = grain_for(range_s, step_s, get_settings())
    step_s = max(step_s, grain)
    start = bucket_of(datetime.now(UTC) - timedelta(seconds=range_s), step_s)
    with session_scope() as session:
        _check_pipeline(session, pipeline_id)
        buckets = _read(session, pipeline_id, grain, start, step_s, ("load_rows",), tables=True)
    series: dict[str, list] = {}
    for name, at, n in zip(buckets.column("table_name"), buckets.times(), buckets.column("load_rows"), strict=True):
        if n:
            series.setdefault(name, []).append((at, round(n / step_s, 3)))
    return {"series": series, "step_s": step_s}


def current(actor: Actor, pipeline_id: int) -> dict:
    """A pipeline's figures now: rates over the last minute, latency, lag, retained WAL, totals, last change."""
    require(actor, Action.read)
    flush()
    now = datetime.now(UTC)
    since = bucket_of(now, RAW) - timedelta(seconds=60 - RAW)  # the six newest 10-s points: one minute
    with session_scope() as session:
        p = _check_pipeline(session, pipeline_id)
        rows = metrics_db.series(session=session, pipeline_id=pipeline_id, grain=RAW, start=since)
        totals = mon_db.totals(session=session, pipeline_id=pipeline_id)
        changes = metrics_db.table_changes(session=session, pipeline_id=pipeline_id)
    b = merge(rows) if rows else merge([_point(pipeline_id, now, "")])
    out = {n: _values(n, {c: [b[c]] for c in SUMS}, 60)[0] for n in METRICS if n.endswith("_per_second")}
    out.update({c: b[c] for c in ("latency_p50_ms", "latency_p95_ms", "latency_max_ms", "errors", "retries")})
    latest = rows[-1] if rows else {}
    out.update({c: latest.get(c) for c in ("lag_bytes", "lag_seconds", "retained_wal_bytes")})
    figures = runner.cdc_figures(pipeline_id)
    if figures is not None:  # the live worker is fresher than the last sample
        out.update(
            lag_bytes=figures.get("lag_bytes"),
            lag_seconds=figures.get("seconds_behind"),
            retained_wal_bytes=figures.get("retained_wal_bytes"),
        )
    noted = counters.totals().get(pipeline_id)
    lasts = [c["last"] for c in changes.values() if c["last"] is not None]
    last = noted.last_applied_at if noted and noted.last_applied_at else (max(lasts) if lasts else None)
    return {
        "pipeline_id": pipeline_id,
        "state": p.state,
        **out,
        "totals": totals,
        "last_change_at": last.isoformat() if last else None,
        "sampled_at": latest["ts"].isoformat() if latest else None,
    }


def table_stats(actor: Actor, pipeline_id: int) -> list[dict]:
    """Per table: source, inserts, updates, deletes, last change time, full-load %, status."""
    require(actor, Action.read)
    flush()
    with session_scope() as session:
        _check_pipeline(session, pipeline_id)
        changes = metrics_db.table_changes(session=session, pipeline_id=pipeline_id)
        stored = {t.source: t for t in metrics_db.pipeline_tables(session=session, pipeline_id=pipeline_id)}
    live = runner.live_tables(pipeline_id)
    out = []
    for name in sorted({*stored, *live, *changes}):
        t = live.get(name) or stored.get(name)
        c = changes.get(name, {"inserts": 0, "updates": 0, "deletes": 0, "last": None})
        out.append(
            {
                "source": name,
                "inserts": c["inserts"],
                "updates": c["updates"],
                "deletes": c["deletes"],
                "last_change_at": c["last"].isoformat() if c["last"] else None,
                "full_load_pct": _pct(t.rows_copied, t.rows_expected, t.status) if t else None,
                "status": t.status if t else None,
            }
        )
    return out


def _pct(copied: int, expected: int, status: str) -> float | None:
    if expected > 0:
        return round(min(100.0, 100.0 * copied / expected), 1)
    return 100.0 if status == "COMPLETED" else None


def sparklines(actor: Actor, range: str = "1h") -> dict[int, list]:  # noqa: A002
    """Every pipeline's rows/s over a range in about SPARKLINE_POINTS points, from one query."""
    require(actor, Action.read)
    range_s = _range_s(range)
    step_s = max(RAW, range_s // SPARKLINE_POINTS)
    # A day or more: hourly points are enough for a sparkline (24+), and 24x fewer rows than minutes.
    grain = HOUR if range_s >= 86400 else grain_for(range_s, step_s, get_settings())
    step_s = max(step_s, grain)
    now = datetime.now(UTC)
    start = bucket_of(now - timedelta(seconds=range_s), step_s)
    # The finer grains point by point, only for the tail the rollups (every minute) have not reached yet.
    since = {grain: (start, step_s)}
    if grain == HOUR:
        since[MINUTE] = (max(start, bucket_of(now, HOUR) - timedelta(hours=1)), MINUTE)
    if grain in (HOUR, MINUTE):
        since[RAW] = (max(start, bucket_of(now, MINUTE) - timedelta(minutes=2)), RAW)
    with session_scope() as session:
        rows = metrics_db.pipelines_rows(session=session, since=since)
    out = {}
    for pid, points in _stitch(rows).items():
        line: dict[int, int] = {}
        for b, n in points:
            at = b - b % step_s
            line[at] = line.get(at, 0) + n
        out[pid] = [
            (datetime.fromtimestamp(at, UTC).isoformat(), round(n / step_s, 3)) for at, n in sorted(line.items())
        ]
    return out


def _stitch(rows: Iterable[tuple[int, int, int, int, int]]) -> dict[int, list[tuple[int, int]]]:
    """Per pipeline, its coarsest grain's buckets, then each finer grain's points only past the coarser one's
    newest point."""
    by: dict[int, dict[int, list[tuple[int, int, int]]]] = {}
    for pid, grain, b, n, last in rows:
        by.setdefault(pid, {}).setdefault(grain, []).append((b, n, last))
    out = {}
    for pid, grains in by.items():
        points: list[tuple[int, int]] = []
        end: int | None = None
        for grain in sorted(grains, reverse=True):
            kept = [(b, n, last) for b, n, last in grains[grain] if end is None or b >= end]
            if kept:
                points += [(b, n) for b, n, _last in kept]
                end = max(last for _b, _n, last in kept) + grain
        out[pid] = points
    return out
