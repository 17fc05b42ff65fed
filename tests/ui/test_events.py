"""The live events page receives pushed changes (no reload, no polling of the database)."""

from __future__ import annotations

from nicegui import ui
from nicegui.testing import User

from core import app_settings, monitoring
from core.cdc.events import ChangeEvent
from core.connections import ConnectionCreate, create_connection
from data.db import session_scope
from data.models import Pipeline
from tests.api.test_monitoring_api import change, make_pipeline
from tests.pgcluster import PgCluster
from tests.ui.helpers import WAIT, admin_actor, all_text, eventually, login, make_user, set_value, table_rows


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


def _table(user: User, marker: str) -> ui.table:
    (table,) = [e for e in user.find(marker=marker).elements if isinstance(e, ui.table)]
    return table


async def test_filters_narrow_the_feed_and_pause_freezes_the_view_not_the_stream(app_env, user: User) -> None:
    await login(user)
    pid, other = make_pipeline("live"), make_pipeline("other")
    await user.open("/events")
    await user.should_see(marker="filter-op", retries=WAIT)
    monitoring.record_applied(pid, [change("insert", i) for i in range(5)] + [change("update", 3), change("delete", 4)])
    monitoring.record_applied(other, [change("insert", 9, "customers")])
    await eventually(lambda: len(table_rows(user, "events-table")) == 8)

    set_value(user, "filter-op", "update")
    assert [(r["op"], r["key"]) for r in table_rows(user, "events-table")] == [("update", {"id": "3"})]
    set_value(user, "filter-op", None)
    set_value(user, "filter-table", "public.customers")  # offered because a change of it arrived
    assert [r["pipeline"] for r in table_rows(user, "events-table")] == ["other"]
    set_value(user, "filter-table", None)
    set_value(user, "filter-pipeline", pid)
    assert len(table_rows(user, "events-table")) == 7
    set_value(user, "filter-key", "4")
    assert [(r["op"], r["key"]) for r in table_rows(user, "events-table")] == [
        ("delete", {"id": "4"}),
        ("insert", {"id": "4"}),
    ]
    set_value(user, "filter-key", "")
    set_value(user, "filter-pipeline", None)

    user.find(marker="events-pause").click()
    monitoring.record_applied(pid, [change("insert", 100 + i) for i in range(3)])
    await user.should_see("Paused: 3 new changes arrived; Resume to show them", retries=WAIT)
    assert len(table_rows(user, "events-table")) == 8  # the view stayed as it was
    await user.should_see("insert 9 · update 1 · delete 1")  # the stream went on (counted since the page opened)
    user.find(marker="events-pause").click()  # Resume
    rows = await eventually(lambda: table_rows(user, "events-table"))
    assert len(rows) == 11 and rows[0]["key"] == {"id": "102"}  # what came meanwhile is there


async def test_timestamps_carry_their_zone_for_the_browser(app_env, user: User) -> None:
    await login(user)
    pid = make_pipeline("live")
    monitoring.record_applied(pid, [change("insert", 1)])
    await user.open("/events")
    rows = await eventually(lambda: table_rows(user, "events-table"))
    assert rows[0]["applied_at"].endswith("+00:00")  # UTC stated, so the browser converts it right
    slot = _table(user, "events-table").slots["body-cell-applied_at"].template
    assert "toLocaleString" in slot and "timeZoneName" in slot and "UTC" in slot  # local time, UTC on hover


async def test_viewers_see_which_rows_changed_but_not_their_values(app_env, user: User) -> None:
    make_user("vera@example.com", "viewer-password-1", "viewer")
    pid = make_pipeline("live")
    monitoring.record_applied(pid, [change("update", 1)])
    await login(user, "vera@example.com", "viewer-password-1")
    await user.open("/events")
    rows = await eventually(lambda: table_rows(user, "events-table"))
    monitoring.record_applied(pid, [change("update", 2)])  # the live feed too
    rows = await eventually(lambda: len(table_rows(user, "events-table")) == 2 and table_rows(user, "events-table"))
    for row in rows:
        assert row["key_text"] == "withheld" and "key" not in row and "before" not in row and "after" not in row
    assert "n1" not in all_text(user) and "n2" not in all_text(user)
    await user.should_not_see(marker="filter-key")
    user.find(marker="events-table").trigger("rowClick", [None, rows[0], 0])
    await user.should_see(marker="data-withheld", retries=WAIT)
    assert "n2" not in all_text(user)

    app_settings.set_viewers_see_data(admin_actor(), True)
    await user.open("/events")
    rows = await eventually(lambda: table_rows(user, "events-table"))
    assert rows[0]["key"] == {"id": "2"}


async def test_the_dialog_shows_typed_values_and_highlights_what_changed(
    app_env, user: User, pg: PgCluster, pg_db: str
) -> None:
    with pg.connect(pg_db) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE public.items (id int PRIMARY KEY, ok boolean, doc jsonb, note text, price numeric)")
    src = create_connection(
        admin_actor(),
        ConnectionCreate(
            name="src",
            kind="postgresql",
            host=pg.host,
            port=pg.port,
            database=pg_db,
            username=pg.user,
            password=pg.password,
        ),
    )
    with session_scope() as session:
        p = Pipeline(
            name="typed",
            source_connection_id=src.id,
            target_connection_id=src.id,
            source_database=pg_db,
            source_schema="public",
            target_database=pg_db,
            target_schema="t",
            tables=["items"],
            mode="CDC_ONLY",
        )
        session.add(p)
        session.flush()
        pid = p.id
    before = {"id": "1", "ok": "f", "doc": '{"a": 1}', "note": "t", "price": "9.50"}
    after = {"id": "1", "ok": "t", "doc": '{"a": 2}', "note": "t", "price": "9.50"}
    update = ChangeEvent("update", "public", "items", {"id": "1"}, before, after, 10)
    key_only = ChangeEvent("delete", "public", "items", {"id": "2"}, {"id": "2"}, None, 11)
    monitoring.record_applied(pid, [update, key_only])
    await login(user)
    await user.open("/events")
    rows = await eventually(lambda: len(table_rows(user, "events-table")) == 2 and table_rows(user, "events-table"))

    user.find(marker="events-table").trigger("rowClick", [None, rows[1], 1])  # the update
    await user.should_see(marker="event-diff", retries=WAIT)
    diff = {r["column"]: r for r in table_rows(user, "event-diff")}
    assert (diff["ok"]["before"], diff["ok"]["after"], diff["ok"]["changed"]) == ("false", "true", True)
    assert diff["doc"]["after"] == '{"a": 2}' and diff["doc"]["changed"]  # json as json, not a quoted string
    assert diff["id"]["after"] == "1" and diff["price"]["after"] == "9.5"  # numbers as numbers
    assert diff["note"]["after"] == '"t"' and not diff["note"]["changed"]  # text stays text
    await user.should_see("Changed: ok, doc")
    await user.should_not_see(marker="before-note")

    user.find(marker="events-table").trigger("rowClick", [None, rows[0], 0])  # the delete, key only
    await user.should_see(marker="before-note", retries=WAIT)
    await user.should_see("ALTER TABLE public.items REPLICA IDENTITY FULL")
