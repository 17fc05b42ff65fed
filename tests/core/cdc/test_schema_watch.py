"""The schema watch's column diff (by attnum) and the holdback of a table loaded while streaming, without a
database; the real catalog and the real stream are in tests/api/test_schema_policies.py."""

from __future__ import annotations

from core.cdc.events import ChangeEvent
from core.cdc.schema_watch import Change, ColumnShape, column_changes
from core.cdc.tableload import Holdback

BEFORE = (
    ColumnShape(1, "id", "bigint", True),
    ColumnShape(2, "name", "text", False),
    ColumnShape(3, "n", "integer", True),
    ColumnShape(4, "gone", "text", False),
)


def test_no_change_is_no_change() -> None:
    assert column_changes("app.t", BEFORE, BEFORE) == []


def test_each_kind_of_column_change_is_told_apart() -> None:
    after = (
        ColumnShape(1, "id", "bigint", True),
        ColumnShape(2, "title", "text", False),  # renamed: same attnum
        ColumnShape(3, "n", "bigint", False),  # retyped and nullable now
        ColumnShape(5, "color", "text", False),  # added (attnum 4 dropped)
    )
    assert column_changes("app.t", BEFORE, after) == [
        Change("app.t", "column_renamed", "title", "name", "title"),
        Change("app.t", "type_changed", "n", "integer", "bigint"),
        Change("app.t", "nullability_changed", "n", "NOT NULL", "NULL"),
        Change("app.t", "column_added", "color", None, "text"),
        Change("app.t", "column_dropped", "gone", "text", None),
    ]


def test_a_drop_and_an_add_of_the_same_name_is_not_a_rename() -> None:
    after = (*BEFORE[:3], ColumnShape(5, "gone", "text", False))
    kinds = [c.kind for c in column_changes("app.t", BEFORE, after)]
    assert kinds == ["column_added", "column_dropped"]


def test_changes_read_as_words() -> None:
    assert Change("app.t", "column_renamed", "b", "a", "b").describe() == "column a renamed to b"
    assert Change("app.t", "type_changed", "n", "integer", "bigint").describe() == (
        "column n changed type from integer to bigint"
    )
    assert Change("app.t", "table_dropped").describe() == "table dropped"


def _ev(i: int, position: int) -> ChangeEvent:
    return ChangeEvent("insert", "app", "t", {"id": str(i)}, None, {"id": str(i)}, position)


def test_holdback_gives_the_changes_from_the_consistent_point_in_order_spilled_or_not() -> None:
    for in_memory in (1_000_000, 3):  # all in memory; spilled to its file every 3 changes
        hold = Holdback(in_memory=in_memory)
        for txn in range(10):
            hold.add(100 + txn, [_ev(txn * 2, 100 + txn), _ev(txn * 2 + 1, 100 + txn)])
        assert hold.rows == 20
        got = [e.key["id"] for events in hold.since(105) for e in events]  # type: ignore[index]
        assert got == [str(i) for i in range(10, 20)], in_memory
        assert [e.position for events in hold.since(0) for e in events] == sorted(100 + i // 2 for i in range(20))
        hold.close()
