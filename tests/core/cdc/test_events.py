"""Operation codes from any engine normalize to the same four operations."""

from __future__ import annotations

import pytest

from core.cdc.events import normalize_op


@pytest.mark.parametrize(
    ("code", "op"),
    [
        ("c", "insert"),
        ("r", "insert"),
        ("u", "update"),
        ("d", "delete"),
        ("t", "truncate"),
        ("INSERT", "insert"),
        (" U ", "update"),
    ],
)
def test_normalize(code: str, op: str) -> None:
    assert normalize_op(code) == op


@pytest.mark.parametrize("code", ["x", "", None])
def test_unknown_code(code) -> None:
    with pytest.raises(ValueError):
        normalize_op(code)
