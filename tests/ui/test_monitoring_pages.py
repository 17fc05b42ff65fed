"""The monitoring a user sees: the Alerts page (ack, rules, channels), the dashboard at a glance, and a
pipeline's health, alerts, charts and statistics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from nicegui import ui
from nicegui.testing import User

from components.charts import plotted_points
from core.monitoring import alerts, channels
from core.security import Role
from data.db import session_scope
from data.models import MetricSample
from tests.ui.helpers import WAIT, admin_actor, eventually, login, make_user, stored_pipeline, table_rows


def _firing(pipeline_id: int, message: str = "the target rejected a row") -> int:
    alert = alerts.raise_condition(pipeline_id, "data_mismatch", "public.orders", 3, message)
    assert alert is not None and alert.state == "firing", alert  # data_mismatch fires at once by default
    return alert.id


def _markers_starting(user: User, prefix: str) -> list[str]:
    return [m for e in user.current_layout.descendants() for m in e._markers if m.startswith(prefix)]


def _one(user: User, marker: str) -> ui.element:
    (found,) = user.find(marker=marker).elements
    return found


async def test_the_alerts_page_lists_firing_alerts_and_acks_them(app_env, user: User) -> None:
    pid = stored_pipeline("orders")
    alert_id = _firing(pid)
    await login(user)
    await user.open("/alerts")
    await user.should_see("CRITICAL data_mismatch on orders (public.orders): the target rejected a row", retries=WAIT)
    await user.should_see(marker="system-health", retries=WAIT)
    await eventually(lambda: _markers_starting(user, "save-rule-"))  # an admin edits the rules
    user.find(marker=f"ack-{alert_id}").click()
    await eventually(lambda: alerts.list_alerts(admin_actor(), "firing")[0].acked_by == "admin@example.com")
    await user.should_see("acknowledged by admin@example.com", retries=WAIT)


async def test_a_viewer_reads_alerts_but_cannot_ack_or_edit(app_env, user: User) -> None:
    pid = stored_pipeline("orders")
    alert_id = _firing(pid)
    make_user("viewer@example.com", "viewer-password-1", Role.viewer)
    channels.create_channel(admin_actor(), {"name": "ops hook", "kind": "webhook", "config": {"url": "http://h/x"}})
    await login(user, "viewer@example.com", "viewer-password-1")
    await user.open("/alerts")
    await user.should_see(marker=f"alert-{alert_id}", retries=WAIT)
    await user.should_not_see(marker=f"ack-{alert_id}")
    await user.should_not_see(marker=f"silence-{alert_id}")
    await user.should_not_see(marker="new-channel")
    await user.should_see("ops hook", retries=WAIT)  # the channels tab is built with the page
    await user.should_see(marker="alert-rules", retries=WAIT)
    await eventually(lambda: _markers_starting(user, "rule-"))  # the rules are shown ...
    assert not _markers_starting(user, "save-rule-")  # ... read-only


async def test_the_dashboard_has_a_row_per_pipeline_and_the_firing_alerts(app_env, user: User) -> None:
    pid = stored_pipeline("orders")
    stored_pipeline("customers")
    _firing(pid, "3 rows differ")
    await login(user)
    await eventually(lambda: len(table_rows(user, "pipelines-glance")) == 2, timeout=20)
    rows = {r["name"]: r for r in table_rows(user, "pipelines-glance")}
    assert rows["orders"]["alerts"] == 1 and rows["customers"]["alerts"] == 0
    assert "<svg" in rows["orders"]["spark"]
    await user.should_see("CRITICAL data_mismatch on orders (public.orders): 3 rows differ", retries=WAIT)


async def test_the_pipeline_page_charts_the_history_and_shows_its_alerts(app_env, user: User) -> None:
    pid = stored_pipeline("orders")
    now = datetime.now(UTC).replace(microsecond=0)
    with session_scope() as session:
        for i in range(6):  # a minute of raw points, as the sampler writes them
            ts = now - timedelta(seconds=10 * (6 - i))
            ts = ts.replace(second=ts.second - ts.second % 10)
            session.add(
                MetricSample(
                    pipeline_id=pid,
                    grain=10,
                    ts=ts,
                    inserts=100 * (i + 1),
                    latency_p50_ms=3.0,
                    latency_p95_ms=9.0,
                    latency_max_ms=20.0,
                    lag_bytes=4096,
                    lag_seconds=0.5,
                    retained_wal_bytes=1 << 20,
                )
            )
    alert_id = _firing(pid)
    await login(user)
    await user.open(f"/pipelines/{pid}")
    await user.should_see(marker="pipeline-checks", retries=WAIT)
    await user.should_see(marker=f"alert-{alert_id}", retries=WAIT)
    throughput = _one(user, "chart-throughput")
    await eventually(lambda: plotted_points(throughput.figure) >= 6, timeout=20)
    inserts = throughput.figure["data"][0]["y"]
    assert inserts[-1] == 60.0  # 600 rows in the newest 10-s point
    latency = _one(user, "chart-latency")
    assert plotted_points(latency.figure) >= 18
    user.find(marker="metrics-range").elements.pop().value = "24h"
    # a day is drawn in coarser steps: fewer points, the same rows
    await eventually(lambda: 0 < len(_one(user, "chart-throughput").figure["data"][0]["y"]) < len(inserts), timeout=20)
