"""The live events page receives pushed changes (no reload, no polling of the database)."""

from __future__ import annotations

from nicegui.testing import User

from core import monitoring
from tests.api.test_monitoring_api import change, make_pipeline
from tests.ui.helpers import WAIT, eventually, login, table_rows


async def test_live_events_are_pushed(app_env, user: User) -> None:
    await login(user)
    pid = make_pipeline("live")
    other = make_pipeline("other")
    await user.open(f"/events?pipeline_id={pid}")
    await user.should_see(marker="events-table", retries=WAIT)
    assert table_rows(user, "events-table") == []
    monitoring.record_applied(pid, [change("insert", i) for i in range(300)] + [change("delete", 7)])
    monitoring.record_applied(other, [change("insert", 1, "ignored")])  # another pipeline: not on this page
    rows = await eventually(lambda: table_rows(user, "events-table"))
    assert rows[0]["op"] == "delete" and rows[0]["key"] == {"id": "7"}
    assert len(rows) <= 200 and all(r["table"] == "public.orders" for r in rows)
    await user.should_see("insert 300 · update 0 · delete 1", retries=WAIT)
    await user.open("/events")
    await user.should_see(marker="events-table", retries=WAIT)
    tables = {r["table"] for r in table_rows(user, "events-table")}
    assert tables == {"public.orders", "public.ignored"}  # the page starts from the stored log


async def test_dashboard_shows_the_changes_applied(app_env, user: User) -> None:
    pid = make_pipeline("dash")
    monitoring.record_applied(
        pid, [change("insert", i) for i in range(1200)] + [change("update", 1), change("delete", 2)]
    )
    await login(user)
    await user.should_see(marker="stat-total_events", retries=WAIT)
    await user.should_see("1,202", retries=WAIT)  # rolled up in SQL, counted exactly
    await user.should_see("1,200", retries=WAIT)
