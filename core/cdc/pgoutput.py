"""A decoder of PostgreSQL's pgoutput logical replication protocol (versions 1 and 2, text tuple data).

Message layouts follow PostgreSQL's "Logical Replication Message Formats". One `Decoder` per
stream keeps the relation cache and the open transaction; `Decoder.decode(payload)` turns one
XLogData payload into zero or more items, in stream order:

- `ChangeEvent` (insert/update/delete/truncate) with `position` = the transaction's commit LSN;
- `RelationChanged` when a relation is first described in this stream, or its columns changed
  (the consumer compares against the target: a new source column must not be dropped silently);
- `TxnEnd` after the last event of a transaction: `end_lsn` is what to confirm to the slot once
  the transaction is applied (confirming `commit_lsn` would make the server send it again).

Values are the server's text output (str) or None for NULL; unchanged TOASTed values are left
out of `after` and named in `ChangeEvent.unchanged`.

Protocol version 2 with `streaming` on (PostgreSQL 14+) also sends a transaction while it is still
in progress, once it outgrows the walsender's logical_decoding_work_mem: in blocks between Stream
Start and Stream Stop, each change carrying the xid of its (sub)transaction, ended by Stream Commit
or Stream Abort. Those come out as `StreamStart` / `StreamStop` around the block's events, whose
`position` is `UNCOMMITTED` and `xid` the subtransaction's, a `TxnEnd` with `streamed` set at the
commit (the consumer then gives the events their commit LSN, time and top-level xid: `settle`),
and `StreamAbort` when the transaction, or only one of its subtransactions, rolled back.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from core.cdc.events import ChangeEvent, InsertRun, RawInsert
from core.errors import ConnectorError

PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)

_BEGIN = struct.Struct(">QqI")  # final (commit) LSN, commit timestamp, xid
_STREAM_START = struct.Struct(">IB")  # xid, first-block flag
_STREAM_COMMIT = struct.Struct(">IBQQq")  # xid, flags, commit LSN, end LSN, commit timestamp
_STREAM_ABORT = struct.Struct(">II")  # xid, subtransaction xid
_COMMIT = struct.Struct(">BQQq")  # flags, commit LSN, end LSN, commit timestamp
_REL_ID = struct.Struct(">I")
_INT16 = struct.Struct(">H")
_INT32 = struct.Struct(">I")
_INT64 = struct.Struct(">Q")
_TRUNCATE = struct.Struct(">IB")  # number of relations, option bits
_COLUMN_TAIL = struct.Struct(">Ii")  # type oid, typmod
_UNCHANGED = object()  # placeholder for an unchanged TOAST value ('u') while a tuple is parsed
_NO_COLUMNS: frozenset[str] = frozenset()

# The position of events of a streamed transaction before its commit (above every real LSN, so
# nothing filters them out as already applied; `settle` gives them the commit LSN).
UNCOMMITTED = (1 << 64) - 1
# Messages that carry the (sub)transaction's xid right after their type byte inside a stream block.
_XID_IN_STREAM = frozenset(b"RYUDTM")  # and I (Insert), which decode_into reads itself

TRUNCATE_CASCADE = 1
TRUNCATE_RESTART_IDENTITY = 2


class DecodeError(ConnectorError):
    """The replication stream held something this decoder cannot read (restart the stream)."""

    kind = "decode_error"


def format_lsn(lsn: int) -> str:
    """An LSN as PostgreSQL prints it (`16/B374D848`)."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def parse_lsn(text: str) -> int:
    """PostgreSQL's `X/Y` LSN text as an int."""
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


def pg_timestamp(micros: int) -> datetime:
    """A pgoutput timestamp (microseconds since 2000-01-01 UTC) as an aware UTC datetime."""
    return PG_EPOCH + timedelta(0, 0, micros)  # positional: twice as fast as microseconds=


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type_oid: int
    typmod: int
    key: bool  # part of the replica identity (every column under REPLICA IDENTITY FULL)


@dataclass(frozen=True, slots=True)
class Relation:
    """A table as the Relation message described it; `replica_identity` is d, n, f or i."""

    relation_id: int
    schema: str
    table: str
    replica_identity: str
    columns: tuple[Column, ...]

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


@dataclass(frozen=True, slots=True)
class RelationChanged:
    """A relation seen for the first time in this stream (`previous` None) or with new columns/types."""

    relation: Relation
    previous: Relation | None
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    retyped: tuple[str, ...] = ()

    @property
    def schema(self) -> str:
        return self.relation.schema

    @property
    def table(self) -> str:
        return self.relation.table


class TxnEnd(NamedTuple):
    """The end of a source transaction: every event before it (since the last TxnEnd) belongs to it.

    A streamed transaction's (`streamed`) events came earlier, between StreamStart/StreamStop
    items with its xid. A named tuple: one is made per source transaction, and a tuple is the
    cheapest immutable record.
    """

    xid: int | None
    commit_lsn: int  # = ChangeEvent.position of the transaction's events
    end_lsn: int  # confirm this LSN to the slot after the transaction is applied
    commit_time: datetime
    streamed: bool = False


class StreamStart(NamedTuple):
    """The events up to the next StreamStop belong to in-progress transaction `xid` (top level)."""

    xid: int
    first: bool  # its first block


class StreamStop(NamedTuple):
    """The end of a block of a streamed transaction's events."""


class StreamAbort(NamedTuple):
    """Streamed transaction `xid` rolled back (`subxid` == `xid`), or only its subtransaction `subxid`:
    drop that subtransaction's events (their `xid` is `subxid`)."""

    xid: int
    subxid: int


def settle(events: list[ChangeEvent], end: TxnEnd) -> None:
    """Give a streamed transaction's events what only its commit tells: position, commit time, xid."""
    lsn, when, xid = end.commit_lsn, end.commit_time, end.xid
    for ev in events:
        ev.position = lsn
        ev.commit_time = when
        ev.xid = xid


class _Rel:
    """The decoder's working view of a relation: names and the key positions, precomputed."""

    __slots__ = ("info", "names", "key_idx", "key_name", "ncols", "schema", "table")

    def __init__(self, info: Relation, key_names: Sequence[str] | None) -> None:
        self.info = info
        self.schema, self.table = info.schema, info.table
        self.names = info.column_names
        self.ncols = len(self.names)
        if key_names:
            index = {n: i for i, n in enumerate(self.names)}
            self.key_idx = tuple(index[n] for n in key_names if n in index)
        else:
            self.key_idx = tuple(i for i, c in enumerate(info.columns) if c.key)
        # The common single-column key gets a dict literal instead of a comprehension.
        self.key_name = self.names[self.key_idx[0]] if len(self.key_idx) == 1 else None

    def key(self, values: list) -> dict:
        if self.key_name is not None:
            return {self.key_name: values[self.key_idx[0]]}
        return {self.names[i]: values[i] for i in self.key_idx}

    def decode(self, message: bytes) -> tuple[dict, dict, frozenset[str]]:
        """Key, values and unchanged columns of one Insert message of this relation (a RawInsert's row)."""
        try:
            values, _, toast = _tuple(message, 6)
            after, unchanged = _row(self.names, values, toast)
        except (struct.error, IndexError, ValueError, UnicodeDecodeError) as exc:
            raise DecodeError(f"malformed pgoutput 'I' message: {exc}") from None
        return self.key(values), after, unchanged


Item = ChangeEvent | InsertRun | RelationChanged | TxnEnd | StreamStart | StreamStop | StreamAbort


class Decoder:
    """Turns pgoutput messages into ChangeEvent / RelationChanged / TxnEnd items.

    `key_columns` overrides the key per (schema, table): under REPLICA IDENTITY FULL the
    protocol flags every column as key, so pass the primary key where the table has one.
    """

    def __init__(
        self, key_columns: Mapping[tuple[str, str], Sequence[str]] | None = None, *, runs: bool = False
    ) -> None:
        self.runs = runs  # consecutive inserts of one (sub)transaction into one table as one InsertRun item
        self.relations: dict[int, Relation] = {}
        self.types: dict[int, tuple[str, str]] = {}
        self._rels: dict[int, _Rel] = {}
        self._key_columns: dict[tuple[str, str], tuple[str, ...]] = {
            k: tuple(v) for k, v in (key_columns or {}).items()
        }
        self.xid: int | None = None
        self.commit_lsn = 0
        self.commit_time: datetime | None = None
        self.in_transaction = False
        self.open_streams: set[int] = set()  # streamed transactions begun, not yet committed or aborted
        self._stream_xid: int | None = None  # inside a stream block: its transaction
        self._last_ts: int | None = None
        self._last_time = PG_EPOCH
        self._handlers = {
            0x42: self._begin,  # B
            0x43: self._commit,  # C
            0x52: self._relation,  # R
            0x55: self._update,  # U
            0x44: self._delete,  # D
            0x54: self._truncate,  # T
            0x59: self._type,  # Y
            0x4F: _skip,  # O origin
            0x4D: _skip,  # M logical message
            0x53: self._stream_start,  # S
            0x45: self._stream_stop,  # E
            0x63: self._stream_commit,  # c
            0x41: self._stream_abort,  # A
        }

    def decode(self, payload: bytes | bytearray | memoryview) -> list[Item]:
        """The items one pgoutput message yields (often one; none for Begin, Type, Origin, Message)."""
        out: list[Item] = []
        self.decode_into(payload, out)
        return out

    def decode_into(self, payload: bytes | bytearray | memoryview, out: list[Item]) -> None:
        """Like `decode`, appending to `out` (saves a list per message on hot paths)."""
        buf = payload if type(payload) is bytes else bytes(payload)
        if not buf:
            raise DecodeError("empty pgoutput message")
        if buf[0] == 0x49:  # Insert, the bulk of every stream: without a handler lookup
            self._insert_fast(buf, out)
            return
        try:
            handler = self._handlers[buf[0]]
        except KeyError:
            raise DecodeError(
                f"unknown pgoutput message type {chr(buf[0])!r} (protocol version 1 or 2 expected)"
            ) from None
        try:
            if self._stream_xid is not None and buf[0] in _XID_IN_STREAM:
                self._streamed(buf, handler, out)
            else:
                handler(buf, out)
        except (struct.error, IndexError, ValueError, UnicodeDecodeError) as exc:
            raise DecodeError(f"malformed pgoutput {chr(buf[0])!r} message: {exc}") from None

    # -- transaction boundaries -----------------------------------------------------------

    def _begin(self, buf: bytes, out: list[Item]) -> None:
        lsn, ts, xid = _BEGIN.unpack_from(buf, 1)
        self.commit_lsn, self.commit_time, self.xid = lsn, self._time(ts), xid
        self.in_transaction = True

    def _commit(self, buf: bytes, out: list[Item]) -> None:
        _flags, commit_lsn, end_lsn, ts = _COMMIT.unpack_from(buf, 1)
        out.append(TxnEnd(self.xid, commit_lsn, end_lsn, self._time(ts)))
        self.in_transaction = False

    # -- streamed (in-progress) transactions, protocol version 2 ----------------------------

    def _stream_start(self, buf: bytes, out: list[Item]) -> None:
        xid, first = _STREAM_START.unpack_from(buf, 1)
        self._stream_xid = xid
        self.open_streams.add(xid)
        out.append(StreamStart(xid, bool(first)))

    def _stream_stop(self, buf: bytes, out: list[Item]) -> None:
        self._stream_xid = None
        out.append(StreamStop())

    def _stream_commit(self, buf: bytes, out: list[Item]) -> None:
        xid, _flags, commit_lsn, end_lsn, ts = _STREAM_COMMIT.unpack_from(buf, 1)
        self.open_streams.discard(xid)
        out.append(TxnEnd(xid, commit_lsn, end_lsn, self._time(ts), True))

    def _stream_abort(self, buf: bytes, out: list[Item]) -> None:
        xid, subxid = _STREAM_ABORT.unpack_from(buf, 1)
        if subxid == xid:
            self.open_streams.discard(xid)
        out.append(StreamAbort(xid, subxid))

    def _streamed(self, buf: bytes, handler: Callable[[bytes, list[Item]], None], out: list[Item]) -> None:
        """A message inside a stream block: its xid comes out, then it reads as outside one; its
        events get the subtransaction's xid and the UNCOMMITTED position (see `settle`)."""
        (sub,) = _INT32.unpack_from(buf, 1)
        saved = self.commit_lsn, self.commit_time, self.xid
        self.commit_lsn, self.commit_time, self.xid = UNCOMMITTED, None, sub
        try:
            handler(buf[:1] + buf[5:], out)
        finally:
            self.commit_lsn, self.commit_time, self.xid = saved

    def _time(self, ts: int) -> datetime:
        """pg_timestamp(ts), made once for Begin and Commit of a transaction (they carry the same time)."""
        if ts != self._last_ts:
            self._last_ts, self._last_time = ts, pg_timestamp(ts)
        return self._last_time

    # -- catalog messages ---------------------------------------------------------------------

    def _relation(self, buf: bytes, out: list[Item]) -> None:
        (rel_id,) = _REL_ID.unpack_from(buf, 1)
        schema, pos = _string(buf, 5)
        table, pos = _string(buf, pos)
        identity = chr(buf[pos])
        (ncols,) = _INT16.unpack_from(buf, pos + 1)
        pos += 3
        columns = []
        for _ in range(ncols):
            flags = buf[pos]
            name, pos = _string(buf, pos + 1)
            type_oid, typmod = _COLUMN_TAIL.unpack_from(buf, pos)
            pos += 8
            columns.append(Column(name=name, type_oid=type_oid, typmod=typmod, key=bool(flags & 1)))
        info = Relation(rel_id, schema or "pg_catalog", table, identity, tuple(columns))
        previous = self.relations.get(rel_id)
        self.relations[rel_id] = info
        self._rels[rel_id] = _Rel(info, self._key_columns.get((info.schema, info.table)))
        if previous == info:
            return
        if previous is None:
            out.append(RelationChanged(info, None))
            return
        old = {c.name: c for c in previous.columns}
        new = {c.name: c for c in info.columns}
        out.append(
            RelationChanged(
                info,
                previous,
                added=tuple(n for n in new if n not in old),
                removed=tuple(n for n in old if n not in new),
                retyped=tuple(
                    n for n, c in new.items() if n in old and (old[n].type_oid, old[n].typmod) != (c.type_oid, c.typmod)
                ),
            )
        )

    def _type(self, buf: bytes, out: list[Item]) -> None:
        (oid,) = _INT32.unpack_from(buf, 1)
        schema, pos = _string(buf, 5)
        name, _ = _string(buf, pos)
        self.types[oid] = (schema, name)

    # -- row changes ----------------------------------------------------------------------------

    def _rel(self, rel_id: int) -> _Rel:
        try:
            return self._rels[rel_id]
        except KeyError:
            raise DecodeError(f"change for relation id {rel_id} before its Relation message") from None

    def _insert_fast(self, buf: bytes, out: list[Item]) -> None:
        """An Insert, in or outside a stream block, kept as a RawInsert with the protocol 1 layout."""
        try:
            if self._stream_xid is None:
                msg, position, when, xid = buf, self.commit_lsn, self.commit_time, self.xid
            else:  # drop the xid; byte 0 is then not 'I', which nothing reads again
                msg, position, when, xid = buf[4:], UNCOMMITTED, None, _INT32.unpack_from(buf, 1)[0]
            rel_id = _INT32.unpack_from(msg, 1)[0]
            rel = self._rels[rel_id]
            if msg[5] != 0x4E or ((msg[6] << 8) | msg[7]) != rel.ncols:  # 'N', then the column count
                raise DecodeError(f"insert into {rel.schema}.{rel.table} does not carry {rel.ncols} values")
        except KeyError:
            raise DecodeError(f"change for relation id {rel_id} before its Relation message") from None
        except (struct.error, IndexError) as exc:
            raise DecodeError(f"malformed pgoutput 'I' message: {exc}") from None
        if self.runs:
            last = out[-1] if out else None
            if type(last) is InsertRun and last.rel is rel and last.xid == xid and last.position == position:
                last.messages.append(msg)
            else:
                out.append(InsertRun(rel, [msg], position, when, xid))
            return
        out.append(RawInsert(rel, msg, position, when, xid))

    def _update(self, buf: bytes, out: list[Item]) -> None:
        (rel_id,) = _REL_ID.unpack_from(buf, 1)
        rel = self._rel(rel_id)
        names = rel.names
        kind = buf[5]
        before = None
        old = None
        if kind == 0x4B or kind == 0x4F:  # 'K' key only, 'O' old full tuple
            old, pos, old_toast = _tuple(buf, 6)
            before = _old_row(rel, old, kind == 0x4B, old_toast)
            kind = buf[pos]
            pos += 1
        else:
            pos = 6
        if kind != 0x4E:
            raise DecodeError(f"update without a new tuple for {rel.info.schema}.{rel.info.table}")
        values, _, toast = _tuple(buf, pos)
        after, unchanged = _row(names, values, toast)
        src = old if old is not None else values
        info = rel.info
        out.append(
            ChangeEvent(
                "update",
                info.schema,
                info.table,
                rel.key(src),
                before,
                after,
                self.commit_lsn,
                self.commit_time,
                self.xid,
                unchanged,
            )
        )

    def _delete(self, buf: bytes, out: list[Item]) -> None:
        (rel_id,) = _REL_ID.unpack_from(buf, 1)
        rel = self._rel(rel_id)
        kind = buf[5]
        if kind != 0x4B and kind != 0x4F:
            raise DecodeError(f"delete without an old key/tuple for {rel.info.schema}.{rel.info.table}")
        old, _, toast = _tuple(buf, 6)
        info = rel.info
        out.append(
            ChangeEvent(
                "delete",
                info.schema,
                info.table,
                rel.key(old),
                _old_row(rel, old, kind == 0x4B, toast),
                None,
                self.commit_lsn,
                self.commit_time,
                self.xid,
                _NO_COLUMNS,
            )
        )

    def _truncate(self, buf: bytes, out: list[Item]) -> None:
        count, _options = _TRUNCATE.unpack_from(buf, 1)
        rel_ids = struct.unpack_from(f">{count}I", buf, 6)
        for rel_id in rel_ids:
            info = self._rel(rel_id).info
            out.append(
                ChangeEvent(
                    "truncate",
                    info.schema,
                    info.table,
                    None,
                    None,
                    None,
                    self.commit_lsn,
                    self.commit_time,
                    self.xid,
                    _NO_COLUMNS,
                )
            )


def _skip(buf: bytes, out: list[Item]) -> None:
    """Origin and logical-decoding messages carry nothing a target needs."""


def _string(buf: bytes, pos: int) -> tuple[str, int]:
    """A null-terminated string at `pos` and the position after its terminator."""
    end = buf.index(0, pos)
    return buf[pos:end].decode(), end + 1


def _tuple(buf: bytes, pos: int) -> tuple[list, int, bool]:
    """TupleData at `pos`: values (str, None, or _UNCHANGED), the position after it, any-unchanged flag."""
    ncols = (buf[pos] << 8) | buf[pos + 1]
    pos += 2
    values: list = []
    append = values.append
    unpack = _INT32.unpack_from
    toast = False
    for _ in range(ncols):
        kind = buf[pos]
        if kind == 0x74:  # 't'
            start = pos + 5
            pos = start + unpack(buf, pos + 1)[0]
            append(buf[start:pos].decode())
        elif kind == 0x6E:  # 'n'
            append(None)
            pos += 1
        elif kind == 0x75:  # 'u'
            append(_UNCHANGED)
            toast = True
            pos += 1
        else:
            raise DecodeError(f"unsupported tuple column kind {chr(kind)!r} (text format expected)")
    return values, pos, toast


def _row(names: tuple[str, ...], values: list, toast: bool) -> tuple[dict, frozenset[str]]:
    """Column -> value, without unchanged TOAST columns (returned apart)."""
    if not toast:
        if len(values) != len(names):
            raise DecodeError(f"a tuple has {len(values)} values for {len(names)} columns")
        return dict(zip(names, values)), _NO_COLUMNS  # noqa: B905 - lengths checked, strict= is slow
    row = {n: v for n, v in zip(names, values, strict=True) if v is not _UNCHANGED}
    return row, frozenset(n for n, v in zip(names, values, strict=True) if v is _UNCHANGED)


def _old_row(rel: _Rel, values: list, key_only: bool, toast: bool) -> dict:
    """The old row: the identity columns for 'K', every sent column for 'O'."""
    if key_only:
        cols: Iterable[int] = (i for i, c in enumerate(rel.info.columns) if c.key)
        return {rel.names[i]: values[i] for i in cols}
    return _row(rel.names, values, toast)[0]
