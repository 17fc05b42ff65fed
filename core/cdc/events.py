"""The one change-event shape every engine produces and everything downstream consumes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

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
    ChangeEvents (see InsertRun). Where a list of changes may hold runs, a run
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


class RowLayout(Protocol):
    """What a RawInsert or InsertRun knows of its table: names, columns, and how to read one message.

    Messages carry a row in pgoutput's Insert layout (type byte, relation id, 'N', tuple data),
    which the applier COPYs as it is (core.cdc.applier.rawcopy); a source that yields raw
    inserts (the pgoutput decoder) implements this for each of its tables.
    """

    schema: str
    table: str
    names: tuple[str, ...]

    def decode(self, message: bytes) -> tuple[dict, dict, frozenset[str]]:
        """The row's key, its values and the columns the message left out as unchanged."""
        ...


class RawInsert(ChangeEvent):
    """An insert kept as its source message (see RowLayout) and decoded only when read.

    Most inserts are never read value by value: the applier COPYs runs of them straight from
    their messages (core.cdc.applier.rawcopy), and the live feed shows only the newest few.
    `key`, `after` and `unchanged` decode the message on first use; the rest is plain.
    """

    __slots__ = ("rel", "message", "_decoded")
    op = "insert"
    before = None
    schema = property(lambda self: self.rel.schema)
    table = property(lambda self: self.rel.table)

    def __init__(
        self, rel: RowLayout, message: bytes, position: int, commit_time: datetime | None, xid: int | None
    ) -> None:
        self.rel = rel
        self.message = message
        self.position = position
        self.commit_time = commit_time
        self.xid = xid
        self._decoded: tuple[dict, dict, frozenset[str]] | None = None

    def _decode(self) -> tuple[dict, dict, frozenset[str]]:
        decoded = self._decoded
        if decoded is None:
            decoded = self._decoded = self.rel.decode(self.message)
        return decoded

    @property
    def key(self) -> dict:  # type: ignore[override]
        return self._decode()[0]

    @property
    def after(self) -> dict:  # type: ignore[override]
        return self._decode()[1]

    @property
    def unchanged(self) -> frozenset[str]:  # type: ignore[override]
        return self._decode()[2]

    @property
    def columns(self) -> tuple[str, ...]:
        """The source columns of the message, in its order."""
        return self.rel.names

    def as_event(self) -> ChangeEvent:
        """The same change as a plain ChangeEvent."""
        return ChangeEvent(
            "insert",
            self.schema,
            self.table,
            self.key,
            None,
            self.after,
            self.position,
            self.commit_time,
            self.xid,
            self.unchanged,
        )

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ChangeEvent):
            return self.as_event() == (other.as_event() if isinstance(other, RawInsert) else other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # like the dataclass: mutable, compared by value


class InsertRun(ChangeRun):
    """Consecutive inserts into one table by one (sub)transaction, kept as their messages (see
    RowLayout): what a pgoutput Decoder(runs=True) makes of them. The applier COPYs the messages
    as they are; `events()` gives them as RawInserts to whatever needs rows."""

    __slots__ = ("rel", "messages", "position", "commit_time", "xid")
    op = "insert"
    schema = property(lambda self: self.rel.schema)
    table = property(lambda self: self.rel.table)

    def __init__(
        self, rel: RowLayout, messages: list[bytes], position: int, commit_time: datetime | None, xid: int | None
    ) -> None:
        self.rel = rel
        self.messages = messages
        self.position = position
        self.commit_time = commit_time
        self.xid = xid

    def __len__(self) -> int:
        return len(self.messages)

    def __repr__(self) -> str:
        return f"InsertRun({self.rel.schema}.{self.rel.table}, {len(self.messages)} rows, position={self.position})"

    def events(self, last: int | None = None) -> list[ChangeEvent]:
        rel, position, when, xid = self.rel, self.position, self.commit_time, self.xid
        messages = self.messages if last is None else self.messages[-last:] if last > 0 else []
        return [RawInsert(rel, msg, position, when, xid) for msg in messages]


def row_count(items: Iterable[Any]) -> int:
    """How many changes a list of ChangeEvents and ChangeRuns holds."""
    return sum(len(i) if isinstance(i, ChangeRun) else 1 for i in items)


def expand(items: Sequence[Any]) -> Sequence[ChangeEvent]:
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


def expand_tail(items: Sequence[Any], n: int) -> list[ChangeEvent]:
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
