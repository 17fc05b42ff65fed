"""Row comparison of a data check (pure): floats within a tolerance, NULL only equal to NULL, kinds."""

from __future__ import annotations

from core.datacheck.compare import FLOAT4_TOLERANCE, compare, same_value


def test_values() -> None:
    assert same_value(None, None, None)
    assert not same_value(None, "", None) and not same_value("", None, None)
    assert same_value("0.1", "0.1", None) and not same_value("1.10", "1.1", None)
    assert same_value("1.100000023841858", "1.1", FLOAT4_TOLERANCE)  # a real read as double precision
    assert not same_value("1.1", "1.1001", FLOAT4_TOLERANCE)
    assert same_value("NaN", "NaN", 1e-12) and not same_value("NaN", "1", 1e-12)
    assert not same_value("abc", "abd", 1e-12)  # not numbers: compared as text


def test_kinds_and_columns_with_secrets_masked() -> None:
    names, tolerances = ["id", "name", "api_key"], [None, None, None]
    source = {("1",): ("1", "a", "k1"), ("2",): ("2", "b", "k2"), ("3",): ("3", "c", "k3")}
    target = {("1",): ("1", "a", "k1"), ("2",): ("2", "B", "other"), ("4",): ("4", "d", None)}
    found = {d.key: d for d in compare(names, tolerances, source, target)}
    assert set(found) == {("2",), ("3",), ("4",)}
    assert found[("2",)].kind == "different" and found[("2",)].columns == ["name", "api_key"]
    assert found[("2",)].source == {"id": "2", "name": "b", "api_key": "***"}
    assert found[("3",)].kind == "missing" and found[("3",)].target is None
    assert found[("4",)].kind == "extra" and found[("4",)].target == {"id": "4", "name": "d", "api_key": None}
