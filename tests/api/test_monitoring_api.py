"""Dashboard counts from rollups and the capped event log, over the API."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core import app_settings, monitoring
from core.cdc.events import ChangeEvent
from core.monitoring import event_view, recorder
from data.db import session_scope
from data.models import Connection, Pipeline
from tests.ui.helpers import admin_actor


def make_pipeline(name: str) -> int:
    with session_scope() as session:
        c = Connection(name=f"c-{name}", kind="postgresql", host="h", port=5432, database="d", username="u")
        session.add(c)
        session.flush()
        p = Pipeline(
            name=name,
            source_connection_id=c.id,
            target_connection_id=c.id,
            source_database="d",
            source_schema="s",
            target_database="d",
            target_schema="t",
            tables=["x"],
            mode="CDC_ONLY",
        )
        session.add(p)
        session.flush()
        return p.id


def change(op: str, i: int, table: str = "orders") -> ChangeEvent:
    row = {"id": str(i), "note": f"n{i}"}
    return ChangeEvent(
        op=op,
        schema="public",
        table=table,
        key={"id": str(i)},
        before=row if op != "insert" else None,
        after=row if op != "delete" else None,
        position=1000 + i,
        commit_time=datetime.now(UTC),
    )


async def test_dashboard_aggregates_rollups(client, admin, viewer) -> None:
    a, b = make_pipeline("a"), make_pipeline("b")
    monitoring.record_applied(a, [change("insert", i) for i in range(30)] + [change("update", 1), change("delete", 2)])
    monitoring.record_applied(b, [change("insert", i, "customers") for i in range(5)])
    monitoring.record_applied(a, [change("update", i) for i in range(7)])
    r = await client.get("/api/v1/monitoring/dashboard", headers=viewer)
    assert r.status_code == 200
    d = r.json()
    assert (d["total_events"], d["insert_count"], d["update_count"], d["delete_count"]) == (44, 35, 8, 1)
    assert d["events_per_second"] > 0 and d["pipelines_total"] == 2 and d["pipelines_running"] == 0


async def test_event_log_is_capped_and_filtered(client, admin, monkeypatch) -> None:
    monkeypatch.setattr(recorder, "EVENT_LOG_CAP", 25)
    a, b = make_pipeline("a"), make_pipeline("b")
    monitoring.record_applied(a, [change("insert", i) for i in range(20)])
    monitoring.record_applied(a, [change("update", i) for i in range(20)])
    monitoring.record_applied(b, [change("delete", i, "customers") for i in range(3)])
    events = (
        await client.get("/api/v1/monitoring/events", headers=admin, params={"pipeline_id": a, "limit": 1000})
    ).json()
    assert len(events) == 25  # capped per pipeline, the newest kept
    assert events[0]["op"] == "update" and events[0]["key"] == {"id": "19"}
    assert events[-1]["op"] == "insert" and events[-1]["key"] == {"id": "15"}
    assert events[0]["before"] == {"id": "19", "note": "n19"} and events[0]["table"] == "public.orders"
    only_b = (await client.get("/api/v1/monitoring/events", headers=admin, params={"pipeline_id": b})).json()
    assert [e["op"] for e in only_b] == ["delete"] * 3
    params = {"op": "delete", "table": "public.customers"}
    deletes = (await client.get("/api/v1/monitoring/events", headers=admin, params=params)).json()
    assert len(deletes) == 3
    # The dashboard counts every change (rollups), not only what the capped log kept.
    d = (await client.get("/api/v1/monitoring/dashboard", headers=admin)).json()
    assert d["total_events"] == 43


@pytest.mark.parametrize("op", ["upsert", "x"])
async def test_bad_filter_is_422(client, admin, op) -> None:
    r = await client.get("/api/v1/monitoring/events", headers=admin, params={"op": op})
    assert r.status_code == 422 and "op" in r.json()["detail"][0]["loc"]


async def test_row_data_is_withheld_from_viewers_unless_an_admin_allows_it(client, admin, editor, viewer) -> None:
    a = make_pipeline("a")
    monitoring.record_applied(a, [change("update", i) for i in range(3)])
    url = "/api/v1/monitoring/events"
    seen = (await client.get(url, headers=viewer)).json()
    assert len(seen) == 3 and {e["op"] for e in seen} == {"update"}  # which rows changed: yes
    assert all(e["key"] is None and e["before"] is None and e["after"] is None for e in seen)  # their values: no
    assert all(e["data_withheld"] and "withheld" in e["note"] for e in seen)
    assert (await client.get(url, headers=viewer, params={"key": "1"})).status_code == 403  # probing keys is data
    full = (await client.get(url, headers=editor)).json()
    assert full[0]["after"] == {"id": "2", "note": "n2"} and not full[0]["data_withheld"] and full[0]["note"] is None

    app_settings.set_viewers_see_data(admin_actor(), True)
    allowed = (await client.get(url, headers=viewer)).json()
    assert allowed[0]["key"] == {"id": "2"} and not allowed[0]["data_withheld"]


async def test_events_can_be_searched_by_key(client, admin) -> None:
    a = make_pipeline("a")
    monitoring.record_applied(a, [change("insert", i) for i in range(30)])
    found = (await client.get("/api/v1/monitoring/events", headers=admin, params={"key": "17"})).json()
    assert [e["key"] for e in found] == [{"id": "17"}]
    some = (await client.get("/api/v1/monitoring/events", headers=admin, params={"key": "2", "limit": 2})).json()
    assert [e["key"] for e in some] == [{"id": "29"}, {"id": "28"}]  # newest first, cut at the limit


def test_values_are_shown_with_their_column_types() -> None:
    types = {"id": "integer", "ok": "boolean", "doc": "jsonb", "price": "numeric(10,2)", "big": "numeric", "t": "text"}
    row = {"id": "42", "ok": "t", "doc": '{"a": [1, 2]}', "price": "12.50", "big": "12345678901234567890", "t": "t"}
    assert event_view.typed_row(row, types) == {
        "id": 42,
        "ok": True,
        "doc": {"a": [1, 2]},
        "price": 12.5,
        "big": "12345678901234567890",  # more digits than a float holds: kept exact, as text
        "t": "t",  # a text column that happens to hold "t" stays text
    }
    assert event_view.typed_value(None, "integer") is None and event_view.typed_value("NaN", "integer") == "NaN"
    assert event_view.changed_columns({"id": 1, "n": 1}, {"id": 1, "n": 2}) == ["n"]
    assert event_view.before_note("update", {"id": "1"}, {"id": "1"}, "public.t") is not None  # key only
    assert "REPLICA IDENTITY FULL" in event_view.before_note("delete", None, {"id": "1"}, "public.t")
    assert event_view.before_note("update", {"id": "1", "n": "2"}, {"id": "1"}, "public.t") is None
    assert event_view.before_note("insert", None, {"id": "1"}, "public.t") is None
