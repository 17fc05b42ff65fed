"""Foreign-key load order."""

from __future__ import annotations

from core.connectors.base import ForeignKeyInfo, load_order


def fk(child: str, parent: str) -> ForeignKeyInfo:
    return ForeignKeyInfo(f"{child}_{parent}_fk", "s", child, ["x"], "s", parent, ["id"])


def test_diamond_levels() -> None:
    deps = load_order(["d", "c", "b", "a"], [fk("b", "a"), fk("c", "a"), fk("d", "b"), fk("d", "c")])
    assert deps.levels == [["a"], ["b", "c"], ["d"]]
    assert deps.order == ["a", "b", "c", "d"]
    assert deps.cycles == []
    assert {"table": "d", "references": "b", "constraint": "d_b_fk"} in deps.edges


def test_unchosen_parents_and_self_references_are_ignored() -> None:
    deps = load_order(["child", "tree"], [fk("child", "parent_not_chosen"), fk("tree", "tree")])
    assert deps.order == ["child", "tree"] and deps.edges == []


def test_cycles_are_reported_and_loaded_last() -> None:
    deps = load_order(["a", "b", "c", "z"], [fk("a", "b"), fk("b", "a"), fk("c", "a"), fk("c", "z")])
    assert deps.order[0] == "z"
    assert set(deps.order[1:]) == {"a", "b", "c"}
    assert deps.cycles == [["a", "b"]]
