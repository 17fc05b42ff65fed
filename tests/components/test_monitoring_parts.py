"""The pure parts of the monitoring components: chart figures, sparklines, rows and forms."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from components.alert_list import delivery_line, summary
from components.channel_form import config_of
from components.charts import CDC_CHARTS, figure, metric_names, plotted_points, sparkline_svg, table_figure
from components.metrics_panel import stats_rows
from components.rule_editor import duration


def test_figure_plots_each_series_of_its_chart() -> None:
    throughput = CDC_CHARTS[0]
    series = {
        "inserts_per_second": [["2026-12-02T03:00:00+00:00", 10.0], ["2026-12-02T03:00:10+00:00", 12.5]],
        "updates_per_second": [["2026-12-02T03:00:00+00:00", 1.0]],
        "latency_p50_ms": [["2026-12-02T03:00:00+00:00", 4.0]],  # another chart's series: not plotted here
    }
    fig = figure(throughput, series)
    assert [t["name"] for t in fig["data"]] == ["insert", "update", "delete"]
    assert fig["data"][0]["y"] == [10.0, 12.5] and fig["data"][2]["y"] == []
    assert all(t["stackgroup"] == "one" for t in fig["data"])
    assert plotted_points(fig) == 3
    assert fig["layout"]["xaxis"]["type"] == "date" and "annotations" not in fig["layout"]
    empty = figure(throughput, {})
    assert empty["layout"]["annotations"][0]["text"] == "No data in this range yet"
    assert empty["layout"]["xaxis"] == {"visible": False}


def test_lag_chart_puts_seconds_on_a_second_axis() -> None:
    lag = next(c for c in CDC_CHARTS if c.key == "lag")
    fig = figure(lag, {"lag_seconds": [["2026-12-02T03:00:00+00:00", 2.0]]})
    by_name = {t["name"]: t for t in fig["data"]}
    assert by_name["seconds"]["yaxis"] == "y2" and "yaxis" not in by_name["WAL not confirmed (bytes)"]
    assert "yaxis2" in fig["layout"]


def test_metric_names_cover_every_chart_once() -> None:
    names = metric_names(CDC_CHARTS)
    assert len(names) == len(set(names))
    assert {"inserts_per_second", "latency_p95_ms", "lag_bytes", "lag_seconds", "retained_wal_bytes"} <= set(names)


def test_table_figure_has_a_line_per_table() -> None:
    fig = table_figure({"public.b": [["t", 2]], "public.a": [["t", 1], ["u", 3]]})
    assert [t["name"] for t in fig["data"]] == ["public.a", "public.b"]
    assert plotted_points(fig) == 3


def test_sparkline_scales_to_the_peak_and_is_flat_without_data() -> None:
    svg = sparkline_svg([0, 5, 10], width=100, height=20)
    assert "<polyline" in svg and "peak 10.0 rows/s" in svg
    assert "0.0,18.0" in svg and "100.0,2.0" in svg  # zero at the bottom, the peak at the top
    assert "<line" in sparkline_svg([]) and "<line" in sparkline_svg([0, 0, None])


def test_stats_rows_format_counts_times_and_load_percent() -> None:
    recent = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    rows = stats_rows(
        [
            {"source": "public.a", "inserts": 1234, "updates": 0, "deletes": 2, "last_change_at": recent},
            {"source": "public.b", "full_load_pct": 50.0, "status": "RUNNING", "last_change_at": None},
        ]
    )
    assert rows[0]["inserts"] == "1,234" and rows[0]["last_change"] == "5 min ago" and rows[0]["full_load"] == "—"
    assert rows[1]["full_load"] == "50 %  RUNNING" and rows[1]["last_change"] == "—"


def test_channel_config_leaves_out_empty_fields_and_splits_recipients() -> None:
    values = {
        "host": " smtp.example.com ",
        "port": 587.0,
        "security": "starttls",
        "username": "",
        "password": "",
        "sender": "cdc@example.com",
        "recipients": "a@example.com, b@example.com,",
    }
    assert config_of("email", values) == {
        "host": "smtp.example.com",
        "port": 587,
        "security": "starttls",
        "sender": "cdc@example.com",
        "recipients": ["a@example.com", "b@example.com"],
    }
    assert config_of("webhook", {"url": "http://x/hook", "secret": ""}) == {"url": "http://x/hook"}


def test_alert_summary_and_delivery_line() -> None:
    alert = {
        "severity": "critical",
        "kind": "retained_wal_bytes",
        "pipeline_name": "orders",
        "object": "cdc_studio_p1",
        "message": "the slot retains 6 GiB",
    }
    assert summary(alert) == "CRITICAL retained_wal_bytes on orders (cdc_studio_p1): the slot retains 6 GiB"
    line = delivery_line(
        {
            "created_at": datetime(2026, 12, 2, 3, 0, tzinfo=UTC),
            "channel_name": "ops",
            "event": "firing",
            "status": "failed",
            "status_code": 500,
            "attempts": 2,
            "error": "HTTP 500",
        }
    )
    assert line == "2026-12-02 03:00:00 UTC · ops · firing · failed · HTTP 500 · 2 attempt(s) · HTTP 500"


def test_rule_durations_read_like_people_say_them() -> None:
    assert [duration(s) for s in (0, 90, 300, 7200)] == ["at once", "90 s", "5 min", "2 h"]
