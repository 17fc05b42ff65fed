"""Table selection by names, wildcards, exclusions and renames."""

from __future__ import annotations

import pytest

from core.errors import ValidationFailed
from core.table_select import select_tables

AVAILABLE = ["orders", "order_lines", "cust_a", "cust_b", "cust_tmp", "Audit"]


def test_names_and_wildcards_keep_source_order() -> None:
    assert select_tables(AVAILABLE, ["cust_*", "orders"]) == [
        ("orders", "orders"),
        ("cust_a", "cust_a"),
        ("cust_b", "cust_b"),
        ("cust_tmp", "cust_tmp"),
    ]


def test_exclusions_are_patterns() -> None:
    assert [s for s, _ in select_tables(AVAILABLE, ["*"], exclude=["*_tmp", "Audit"])] == [
        "orders",
        "order_lines",
        "cust_a",
        "cust_b",
    ]


def test_mappings_rename_and_select() -> None:
    pairs = select_tables(AVAILABLE, ["orders"], mappings=[{"source": "Audit", "target": "audit_log"}])
    assert pairs == [("orders", "orders"), ("Audit", "audit_log")]


@pytest.mark.parametrize(
    ("patterns", "exclude", "mappings", "field"),
    [
        (["missing"], [], [], "tables"),
        (["nothing_*"], [], [], "tables"),
        (["orders"], ["orders"], [], "tables"),
        (["orders"], [], [{"source": "nope", "target": "x"}], "table_mappings"),
        (["orders", "cust_a"], [], [{"source": "cust_a", "target": "orders"}], "table_mappings"),
        (["audit"], [], [], "tables"),  # names are case-sensitive, as the database spells them
    ],
)
def test_bad_selections_name_the_field(patterns, exclude, mappings, field) -> None:
    with pytest.raises(ValidationFailed) as err:
        select_tables(AVAILABLE, patterns, exclude, mappings)
    assert err.value.field == field
