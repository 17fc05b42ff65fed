"""GET /metrics: the Prometheus text exposition of CDC Studio (`cdcstudio_*`, base units).

A custom collector on its own registry reads, at scrape time, the running totals engines note in
core.monitoring.counters, the live figures of running CDC workers (lag, retained WAL), the pipelines'
states and the firing alerts in the app database. Nothing is kept between scrapes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from core import runner
from core.config import get_settings
from core.lifecycle import State
from core.monitoring import counters, metrics
from data import metrics as metrics_db
from data.db import session_scope

CONTENT_TYPE = CONTENT_TYPE_LATEST
SEVERITIES = ("info", "warning", "critical")


class StudioCollector(Collector):
    """Everything CDC Studio exposes, collected fresh at each scrape."""

    def collect(self) -> Iterator[Metric]:
        """The metric families of one scrape."""
        with session_scope() as session:
            pipes = metrics_db.pipeline_states(session=session)
            firing = metrics_db.firing_alerts(session=session)
        names = {pid: name for pid, name, _state in pipes}
        totals = {pid: t for pid, t in counters.totals().items() if pid in names}
        yield from _rows_applied(names, totals, get_settings().metrics_table_labels)
        yield from _errors_retries(names, totals)
        yield _latency(names, totals)
        yield from _lag(names)
        yield from _states(pipes)
        alerts = GaugeMetricFamily("cdcstudio_alerts_firing", "Alerts firing, by severity.", labels=["severity"])
        for severity in sorted({*SEVERITIES, *firing}):
            alerts.add_metric([severity], firing.get(severity, 0))
        yield alerts


def _rows_applied(names: dict[int, str], totals: dict, table_labels: bool) -> Iterator[Metric]:
    labels = ["pipeline", "pipeline_id", "op"] + (["table"] if table_labels else [])
    family = CounterMetricFamily(
        "cdcstudio_rows_applied", "Rows applied to the target since the app started.", labels=labels
    )
    for pid, t in sorted(totals.items()):
        merged: Counter = Counter()
        for (table, op), n in t.counts.items():
            merged[(table, op) if table_labels else ("", op)] += n
        for (table, op), n in sorted(merged.items()):
            family.add_metric([names[pid], str(pid), op, *([table] if table_labels else [])], n)
    yield family


def _errors_retries(names: dict[int, str], totals: dict) -> Iterator[Metric]:
    errors = CounterMetricFamily("cdcstudio_errors", "Failed runs of the pipeline.", labels=["pipeline", "pipeline_id"])
    retries = CounterMetricFamily(
        "cdcstudio_retries", "Automatic restarts of the pipeline.", labels=["pipeline", "pipeline_id"]
    )
    for pid, name in sorted(names.items()):
        t = totals.get(pid)
        errors.add_metric([name, str(pid)], t.errors if t else 0)
        retries.add_metric([name, str(pid)], t.retries if t else 0)
    yield errors
    yield retries


def _latency(names: dict[int, str], totals: dict) -> Metric:
    family = HistogramMetricFamily(
        "cdcstudio_apply_latency_seconds",
        "End-to-end latency, source commit to applied on the target.",
        labels=["pipeline", "pipeline_id"],
    )
    for pid, t in sorted(totals.items()):
        cumulative, buckets = 0, []
        for bound, n in zip((*counters.LATENCY_BUCKETS, float("inf")), t.latency_buckets, strict=True):
            cumulative += n
            buckets.append(("+Inf" if bound == float("inf") else repr(float(bound)), cumulative))
        family.add_metric([names[pid], str(pid)], buckets, sum_value=t.latency_sum_s)
    return family


def _lag(names: dict[int, str]) -> Iterator[Metric]:
    labels = ["pipeline", "pipeline_id"]
    seconds = GaugeMetricFamily("cdcstudio_lag_seconds", "Seconds the target is behind the source.", labels=labels)
    lag_bytes = GaugeMetricFamily("cdcstudio_lag_bytes", "Source WAL not yet confirmed applied.", labels=labels)
    retained = GaugeMetricFamily(
        "cdcstudio_slot_retained_wal_bytes", "WAL the replication slot holds on the source.", labels=labels
    )
    for pid, name in sorted(names.items()):
        figures = runner.cdc_figures(pid) or metrics.stopped_slot(pid)  # a stopped pipeline's slot still grows
        if figures is None:
            continue
        for family, key in ((seconds, "seconds_behind"), (lag_bytes, "lag_bytes"), (retained, "retained_wal_bytes")):
            if figures.get(key) is not None:
                family.add_metric([name, str(pid)], float(figures[key]))
    yield from (seconds, lag_bytes, retained)


def _states(pipes: list[tuple[int, str, str]]) -> Iterator[Metric]:
    up = GaugeMetricFamily(
        "cdcstudio_pipeline_up", "1 while the pipeline is RUNNING, else 0.", labels=["pipeline", "pipeline_id", "state"]
    )
    for pid, name, state in pipes:
        up.add_metric([name, str(pid), state], 1 if state == State.RUNNING else 0)
    yield up
    by_state = Counter(state for _pid, _name, state in pipes)
    family = GaugeMetricFamily("cdcstudio_pipelines", "Pipelines by state.", labels=["state"])
    for state in State:
        family.add_metric([state.value], by_state.get(state.value, 0))
    yield family


_registry = CollectorRegistry(auto_describe=False)
_registry.register(StudioCollector())


def exposition() -> bytes:
    """The current metrics in the Prometheus text format."""
    return generate_latest(_registry)
