"""Dashboard counts from rollups and the capped event log, over the API."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core import monitoring
from core.cdc.events import ChangeEvent
from core.monitoring import recorder
from data.db import session_scope
from data.models import Connection, Pipeline


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
