"""COPY text-format payloads from rows of PostgreSQL text values (None = NULL).

The fast path keeps every row as one pre-joined string (strings are not tracked by the garbage
collector, tuples are) and escapes a whole batch with a few C-speed `str.replace` passes instead
of escaping every value in Python. PostgreSQL text never contains NUL, so NUL separates fields;
rows are separated by \\x01 and NULL is marked \\x02. A count check proves neither marker occurs
inside a value; if one does, `payload` raises `MarkerInValue` and the caller rebuilds the rows
with `Rows(safe=True)`, which escapes value by value.
"""

from __future__ import annotations

from collections.abc import Sequence

FIELD, ROW, NULL = "\x00", "\x01", "\x02"


class MarkerInValue(Exception):
    """A value contains one of the fast path's marker characters: rebuild the rows with safe=True."""


def escape(value: str | None) -> str:
    """One value in COPY text format: backslash, tab, newline and carriage return escaped; None as \\N."""
    if value is None:
        return "\\N"
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


class Rows:
    """The rows of one COPY: `lines` are marker-joined (fast) or already escaped (safe)."""

    __slots__ = ("lines", "nulls", "safe")

    def __init__(self, safe: bool = False) -> None:
        self.lines: list[str] = []
        self.nulls = 0
        self.safe = safe

    def __len__(self) -> int:
        return len(self.lines)

    def add(self, values: Sequence[str | None]) -> None:
        """Append one row of text values (None = NULL)."""
        if self.safe:
            self.lines.append("\t".join([escape(v) for v in values]))
            return
        if None in values:  # NULLs: mark them, and count them for the check in `payload`
            self.nulls += values.count(None)
            self.lines.append(FIELD.join([NULL if v is None else v for v in values]))
        else:
            self.lines.append(FIELD.join(values))  # type: ignore[arg-type]  # no None: counted above


def payload(rows: Rows, tail: str | None = None) -> str:
    """Every row as one COPY text line; `tail` is one more field appended as it is (digits only)."""
    lines = rows.lines
    if not lines:
        return ""
    if rows.safe:
        end = "\n" if tail is None else f"\t{tail}\n"
        return end.join(lines) + end
    sep, end = (ROW, "") if tail is None else (f"{FIELD}{tail}{ROW}", FIELD + tail)
    big = sep.join(lines) + end
    if big.count(ROW) != len(lines) - 1 or big.count(NULL) != rows.nulls:
        raise MarkerInValue
    return (
        big.replace("\\", "\\\\")
        .replace("\t", "\\t")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace(FIELD, "\t")
        .replace(NULL, "\\N")
        .replace(ROW, "\n")
        + "\n"
    )


def rows_payload(values: Sequence[Sequence[str | None]], tail: str | None = None) -> str:
    """A payload straight from value rows (fast path, falling back to safe escaping)."""
    for safe in (False, True):
        rows = Rows(safe)
        for v in values:
            rows.add(v)
        try:
            return payload(rows, tail)
        except MarkerInValue:
            continue
    raise AssertionError("unreachable")
