"""The one change-event shape every engine produces and everything downstream consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

OPS = ("insert", "update", "delete", "truncate")

_OP_CODES = {
    "c": "insert",
    "r": "insert",
    "i": "insert",
    "insert": "insert",
    "create": "insert",
    "read": "insert",
    "u": "update",
    "update": "update",
    "d": "delete",
    "delete": "delete",
    "t": "truncate",
    "truncate": "truncate",
}


def normalize_op(code: str) -> str:
    """Any engine's operation code as insert|update|delete|truncate (Debezium c/r/u/d/t included)."""
    try:
        return _OP_CODES[code.strip().lower()]
    except (KeyError, AttributeError):
        raise ValueError(f"unknown change operation code {code!r}") from None


@dataclass(slots=True)
class ChangeEvent:
    """One row change in a source transaction.

    Values are PostgreSQL text representations (str) or None for NULL, so they can be COPYed
    into the target as they came. `key` holds the primary-key values that identify the row
    before the change (for update/delete; equal to the new key for insert). `unchanged` names
    columns the source did not send (unchanged TOASTed values): they must keep their target
    value. `position` orders events across restarts (the commit LSN for PostgreSQL).
    """

    op: str
    schema: str
    table: str
    key: dict[str, str | None] | None
    before: dict[str, str | None] | None
    after: dict[str, str | None] | None
    position: int
    commit_time: datetime | None = None
    xid: int | None = None
    unchanged: frozenset[str] = field(default_factory=frozenset)


class ChangeRun:
    """Several changes of one kind to one table in one (sub)transaction, held more cheaply than as
    ChangeEvents (see core.cdc.pgoutput.InsertRun). Where a list of changes may hold runs, a run
    counts as `len(run)` changes; `events()` gives them one by one."""

    __slots__ = ()
    op: str
    position: int
    commit_time: datetime | None
    xid: int | None

    def __len__(self) -> int:
        raise NotImplementedError

    def events(self, last: int | None = None) -> list[ChangeEvent]:
        """Its changes one by one (only the `last` ones, when given)."""
        raise NotImplementedError


def row_count(items: list) -> int:
    """How many changes a list of ChangeEvents and ChangeRuns holds."""
    return sum(len(i) if isinstance(i, ChangeRun) else 1 for i in items)


def expand(items: list) -> list[ChangeEvent]:
    """The changes of ChangeEvents and ChangeRuns, one ChangeEvent each (`items` itself when it has no run)."""
    if not any(isinstance(i, ChangeRun) for i in items):
        return items
    out: list[ChangeEvent] = []
    for i in items:
        if isinstance(i, ChangeRun):
            out.extend(i.events())
        else:
            out.append(i)
    return out


def expand_tail(items: list, n: int) -> list[ChangeEvent]:
    """The last `n` changes of a list of ChangeEvents and ChangeRuns, one ChangeEvent each."""
    if n <= 0:
        return []
    out: list[ChangeEvent] = []
    for item in reversed(items):
        if isinstance(item, ChangeRun):
            out.extend(reversed(item.events(last=n - len(out))))  # not the whole run: only what is kept
        else:
            out.append(item)
        if len(out) >= n:
            break
    out.reverse()
    return out
