"""Comparing rows read from both sides (pure: no database).

A side's rows arrive as `{key: values}`: the key as comparable text per key column, the values as the
normalized text of each compared column (core.datacheck.sql.normalized). Floats are equal within a relative
tolerance (a float4 on one side is a float8 on the other after the type map); everything else must be equal
text, NULL only to NULL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from core.audit import MASK, is_secret

FLOAT4_TOLERANCE = 1e-6
FLOAT8_TOLERANCE = 1e-12


@dataclass
class Difference:
    key: tuple[str | None, ...]
    kind: str  # missing (only on the source) | extra (only on the target) | different
    columns: list[str] = field(default_factory=list)
    source: dict[str, Any] | None = None
    target: dict[str, Any] | None = None


def same_value(a: str | None, b: str | None, tolerance: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if a == b:
        return True
    if tolerance is None:
        return False
    try:
        x, y = float(a), float(b)
    except ValueError:
        return False
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    return math.isclose(x, y, rel_tol=tolerance, abs_tol=0.0)


def shown(names: list[str], values: tuple | list) -> dict[str, Any]:
    """A row as kept with a mismatch: column -> value, secret-looking columns masked."""
    return {n: (MASK if is_secret(n) and v is not None else v) for n, v in zip(names, values, strict=True)}


def compare(
    names: list[str],
    tolerances: list[float | None],
    source: dict[tuple, tuple],
    target: dict[tuple, tuple],
) -> list[Difference]:
    """The keys whose rows differ, with the differing columns; `names`/`tolerances` per compared column."""
    found: list[Difference] = []
    for key in sorted(set(source) | set(target), key=lambda k: tuple("" if v is None else str(v) for v in k)):
        left, right = source.get(key), target.get(key)
        if right is None:
            assert left is not None
            found.append(Difference(key, "missing", [], shown(names, left), None))
            continue
        if left is None:
            found.append(Difference(key, "extra", [], None, shown(names, right)))
            continue
        differing = [
            n for n, a, b, tol in zip(names, left, right, tolerances, strict=True) if not same_value(a, b, tol)
        ]
        if differing:
            found.append(Difference(key, "different", differing, shown(names, left), shown(names, right)))
    return found
