"""In-memory counters of what engines did, between two metrics samples and since the process started.

The recorder (the engines' ChangeSink) notes every applied batch here: rows by table and operation,
and the batch's end-to-end latencies (source commit -> committed on the target, for the oldest and
the newest transaction in it). Recovery notes errors and automatic restarts. The metrics sampler
`take`s each pipeline's window every sample; Prometheus reads the running totals. Everything is
O(1) per batch under one lock: this runs on the engines' apply threads.
"""

from __future__ import annotations

import bisect
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

# Upper bounds (seconds) of the apply-latency histogram Prometheus exposes.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
MAX_LATENCIES_PER_WINDOW = 20_000  # a window keeps at most this many latencies (an even sample beyond)


@dataclass
class Window:
    """What one pipeline did since the previous `take`."""

    counts: Counter = field(default_factory=Counter)  # ("schema.table", op) -> rows
    latencies_s: list[float] = field(default_factory=list)
    errors: int = 0
    retries: int = 0
    batches: int = 0
    last_applied_at: datetime | None = None


@dataclass
class Totals:
    """What one pipeline did since the process started (Prometheus counters)."""

    counts: Counter = field(default_factory=Counter)  # ("schema.table", op) -> rows
    errors: int = 0
    retries: int = 0
    latency_buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    latency_sum_s: float = 0.0
    latency_count: int = 0
    last_applied_at: datetime | None = None


_lock = threading.Lock()
_windows: dict[int, Window] = {}
_totals: dict[int, Totals] = {}
_seen: dict[int, int] = {}  # latencies offered to the current window (for the even sample beyond the cap)


def note_applied(pipeline_id: int, per_table: Counter, applied_at: datetime, commit_times: tuple) -> None:
    """One committed batch: `per_table` ((schema, table, op) -> rows); `commit_times` the source commit
    times of its oldest and newest transaction (None entries are skipped)."""
    latencies = [max(0.0, (applied_at - t).total_seconds()) for t in commit_times if t is not None]
    with _lock:
        w = _windows.setdefault(pipeline_id, Window())
        t = _totals.setdefault(pipeline_id, Totals())
        for (schema, table, op), n in per_table.items():
            name = f"{schema}.{table}"
            w.counts[(name, op)] += n
            t.counts[(name, op)] += n
        w.batches += 1
        w.last_applied_at = t.last_applied_at = applied_at
        for s in latencies:
            _keep_latency(pipeline_id, w, s)
            t.latency_buckets[bisect.bisect_left(LATENCY_BUCKETS, s)] += 1
            t.latency_sum_s += s
            t.latency_count += 1


def _keep_latency(pipeline_id: int, w: Window, s: float) -> None:
    seen = _seen.get(pipeline_id, 0) + 1
    _seen[pipeline_id] = seen
    if len(w.latencies_s) < MAX_LATENCIES_PER_WINDOW:
        w.latencies_s.append(s)
    else:  # keep every k-th beyond the cap so a burst is still represented evenly
        step = seen // MAX_LATENCIES_PER_WINDOW + 1
        if seen % step == 0:
            w.latencies_s[seen % MAX_LATENCIES_PER_WINDOW] = s


def note_error(pipeline_id: int) -> None:
    """The pipeline's run failed (any error)."""
    with _lock:
        _windows.setdefault(pipeline_id, Window()).errors += 1
        _totals.setdefault(pipeline_id, Totals()).errors += 1


def note_retry(pipeline_id: int) -> None:
    """The pipeline was restarted automatically (one attempt of recovery)."""
    with _lock:
        _windows.setdefault(pipeline_id, Window()).retries += 1
        _totals.setdefault(pipeline_id, Totals()).retries += 1


def take(pipeline_id: int) -> Window:
    """The pipeline's window since the previous take (empty if nothing happened); a new one starts."""
    with _lock:
        _seen.pop(pipeline_id, None)
        return _windows.pop(pipeline_id, None) or Window()


def pending() -> list[int]:
    """Pipelines with something in their current window."""
    with _lock:
        return list(_windows)


def totals() -> dict[int, Totals]:
    """A copy of every pipeline's running totals."""
    with _lock:
        return {
            pid: Totals(
                counts=Counter(t.counts),
                errors=t.errors,
                retries=t.retries,
                latency_buckets=list(t.latency_buckets),
                latency_sum_s=t.latency_sum_s,
                latency_count=t.latency_count,
                last_applied_at=t.last_applied_at,
            )
            for pid, t in _totals.items()
        }


def forget(pipeline_id: int) -> None:
    """Drop a deleted pipeline's counters."""
    with _lock:
        _windows.pop(pipeline_id, None)
        _totals.pop(pipeline_id, None)
        _seen.pop(pipeline_id, None)
