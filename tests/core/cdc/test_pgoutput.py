"""The pgoutput decoder: byte layouts pinned without a server, then real streams from PostgreSQL 15."""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from core.cdc.events import ChangeEvent
from core.cdc.pg_source import (
    LogicalStream,
    create_slot,
    drop_slot_and_publication,
    ensure_publication,
    publication_name,
    slot_name,
)
from core.cdc.pgoutput import (
    DecodeError,
    Decoder,
    RelationChanged,
    TxnEnd,
    format_lsn,
    parse_lsn,
    pg_timestamp,
)
from core.connectors.base import ConnectionSpec
from tests.pgcluster import PgCluster

# -- hand-built messages ------------------------------------------------------------------------


def _s(text: str) -> bytes:
    return text.encode() + b"\0"


def begin(final_lsn: int, ts: int, xid: int) -> bytes:
    return b"B" + struct.pack(">QqI", final_lsn, ts, xid)


def commit(commit_lsn: int, end_lsn: int, ts: int) -> bytes:
    return b"C" + struct.pack(">BQQq", 0, commit_lsn, end_lsn, ts)


def relation(rel_id: int, schema: str, table: str, cols: list[tuple[str, int, bool]], identity: str = "d") -> bytes:
    out = b"R" + struct.pack(">I", rel_id) + _s(schema) + _s(table) + identity.encode() + struct.pack(">H", len(cols))
    for name, oid, key in cols:
        out += bytes([1 if key else 0]) + _s(name) + struct.pack(">Ii", oid, -1)
    return out


def tupledata(values: list) -> bytes:
    """str -> 't', None -> 'n', ... (Ellipsis) -> 'u' unchanged TOAST."""
    out = struct.pack(">H", len(values))
    for v in values:
        if v is None:
            out += b"n"
        elif v is ...:
            out += b"u"
        else:
            raw = v.encode()
            out += b"t" + struct.pack(">I", len(raw)) + raw
    return out


def insert(rel_id: int, values: list) -> bytes:
    return b"I" + struct.pack(">I", rel_id) + b"N" + tupledata(values)


def update(rel_id: int, values: list, old: list | None = None, old_kind: bytes = b"K") -> bytes:
    head = b"U" + struct.pack(">I", rel_id)
    if old is not None:
        head += old_kind + tupledata(old)
    return head + b"N" + tupledata(values)


def delete(rel_id: int, old: list, old_kind: bytes = b"K") -> bytes:
    return b"D" + struct.pack(">I", rel_id) + old_kind + tupledata(old)


def truncate(rel_ids: list[int], options: int = 0) -> bytes:
    return b"T" + struct.pack(">IB", len(rel_ids), options) + struct.pack(f">{len(rel_ids)}I", *rel_ids)


COLS = [("id", 23, True), ("name", 25, False), ("note", 25, False)]
TS = 766_000_000_123_456  # microseconds after 2000-01-01


def _decode_all(decoder: Decoder, *messages: bytes) -> list:
    out: list = []
    for m in messages:
        out.extend(decoder.decode(m))
    return out


def test_begin_relation_insert_commit() -> None:
    d = Decoder()
    items = _decode_all(
        d,
        begin(0x1_0000_0100, TS, 77),
        relation(16400, "public", "items", COLS),
        insert(16400, ["1", "a\tb\nc ü 😀", None]),
        commit(0x1_0000_0100, 0x1_0000_0180, TS),
    )
    assert isinstance(items[0], RelationChanged) and items[0].previous is None
    assert items[0].relation.column_names == ("id", "name", "note")
    ev = items[1]
    assert ev == ChangeEvent(
        op="insert",
        schema="public",
        table="items",
        key={"id": "1"},
        before=None,
        after={"id": "1", "name": "a\tb\nc ü 😀", "note": None},
        position=0x1_0000_0100,
        commit_time=pg_timestamp(TS),
        xid=77,
    )
    assert ev.commit_time.tzinfo is UTC
    assert ev.commit_time == datetime.fromtimestamp(946_684_800 + 766_000_000, UTC).replace(microsecond=123456)
    assert items[2] == TxnEnd(xid=77, commit_lsn=0x1_0000_0100, end_lsn=0x1_0000_0180, commit_time=pg_timestamp(TS))
    assert not d.in_transaction


def test_update_delete_kinds_and_unchanged_toast() -> None:
    d = Decoder()
    _decode_all(d, begin(500, TS, 9), relation(1, "s", "t", COLS))
    # key unchanged, no old tuple; 'note' is an unchanged TOAST value
    (plain,) = d.decode(update(1, ["1", "b", ...]))
    assert plain.key == {"id": "1"} and plain.before is None
    assert plain.after == {"id": "1", "name": "b"} and plain.unchanged == frozenset({"note"})
    # primary key changed: old key 'K' holds the key columns, other columns null
    (moved,) = d.decode(update(1, ["2", "b", "x"], old=["1", None, None]))
    assert moved.key == {"id": "1"} and moved.before == {"id": "1"} and moved.after["id"] == "2"
    assert moved.unchanged == frozenset()
    # REPLICA IDENTITY FULL sends the whole old row ('O')
    (full,) = d.decode(update(1, ["2", "c", "x"], old=["2", "b", "x"], old_kind=b"O"))
    assert full.before == {"id": "2", "name": "b", "note": "x"} and full.key == {"id": "2"}
    (gone,) = d.decode(delete(1, ["2", None, None]))
    assert (gone.op, gone.key, gone.before, gone.after) == ("delete", {"id": "2"}, {"id": "2"}, None)
    (gone_full,) = d.decode(delete(1, ["3", "n", None], old_kind=b"O"))
    assert gone_full.before == {"id": "3", "name": "n", "note": None}
    assert all(e.position == 500 and e.xid == 9 for e in (plain, moved, full, gone, gone_full))


def test_truncate_and_composite_key() -> None:
    d = Decoder()
    _decode_all(
        d,
        begin(900, TS, 3),
        relation(1, "s", "a", COLS),
        relation(2, "s", "b", [("k1", 23, True), ("k2", 25, True), ("v", 25, False)]),
    )
    (ev,) = d.decode(insert(2, ["1", "x", "v"]))
    assert ev.key == {"k1": "1", "k2": "x"}
    items = d.decode(truncate([1, 2], options=1))
    assert [(e.op, e.schema, e.table, e.key, e.after) for e in items] == [
        ("truncate", "s", "a", None, None),
        ("truncate", "s", "b", None, None),
    ]


def test_relation_change_reports_added_and_removed_columns() -> None:
    d = Decoder()
    assert len(d.decode(relation(1, "s", "t", COLS))) == 1
    assert d.decode(relation(1, "s", "t", COLS)) == []  # the same description again: nothing to report
    (change,) = d.decode(relation(1, "s", "t", [*COLS[:2], ("extra", 25, False)]))
    assert change.added == ("extra",) and change.removed == ("note",) and change.previous is not None
    (change,) = d.decode(relation(1, "s", "t", [*COLS[:2], ("extra", 1700, False)]))
    assert change.retyped == ("extra",)
    (ev,) = d.decode(insert(1, ["1", "a", "2.5"]))
    assert ev.after == {"id": "1", "name": "a", "extra": "2.5"}


def test_key_override_for_replica_identity_full() -> None:
    """Under REPLICA IDENTITY FULL every column is flagged as key; the pipeline knows the real PK."""
    d = Decoder(key_columns={("s", "t"): ["id"]})
    d.decode(relation(1, "s", "t", [(n, o, True) for n, o, _ in COLS], identity="f"))
    (ev,) = d.decode(delete(1, ["1", "a", "b"], old_kind=b"O"))
    assert ev.key == {"id": "1"} and ev.before == {"id": "1", "name": "a", "note": "b"}
    d2 = Decoder()
    d2.decode(relation(1, "s", "t", [(n, o, True) for n, o, _ in COLS], identity="f"))
    (ev,) = d2.decode(delete(1, ["1", "a", "b"], old_kind=b"O"))
    assert ev.key == {"id": "1", "name": "a", "note": "b"}


def test_skipped_messages_and_errors() -> None:
    d = Decoder()
    assert d.decode(b"O" + struct.pack(">Q", 1) + _s("origin")) == []
    assert d.decode(b"Y" + struct.pack(">I", 70000) + _s("public") + _s("mood")) == []
    assert d.types[70000] == ("public", "mood")
    assert (
        d.decode(b"M" + b"\0" + struct.pack(">Q", 5) + _s("cdc_studio_heartbeat") + struct.pack(">I", 1) + b"x") == []
    )
    with pytest.raises(DecodeError, match="before its Relation"):
        d.decode(insert(99, ["1"]))
    with pytest.raises(DecodeError, match="unknown pgoutput message"):
        d.decode(b"Z\0\0\0\0")
    with pytest.raises(DecodeError, match="malformed"):
        d.decode(begin(1, 2, 3)[:5])


def test_lsn_text() -> None:
    assert format_lsn(0x16_B374D848) == "16/B374D848"
    assert parse_lsn("16/B374D848") == 0x16_B374D848
    assert parse_lsn(format_lsn(0)) == 0


def test_decode_speed() -> None:
    """A micro-benchmark (printed with -s, not asserted): 200k inserts of a six-column row."""
    cols = [
        ("id", 23, True),
        ("name", 25, False),
        ("amount", 1700, False),
        ("created", 1184, False),
        ("flag", 16, False),
        ("note", 25, False),
    ]
    d = Decoder()
    d.decode(begin(1000, TS, 5))
    d.decode(relation(1, "public", "t", cols))
    messages = [insert(1, [str(i), f"name {i}", "123.45", "2024-01-01 00:00:00+00", "t", None]) for i in range(200_000)]
    # Like a consumer: items handed on in batches of 1,000 rather than all kept alive.
    started = time.perf_counter()
    out: list = []
    decoded = 0
    for m in messages:
        d.decode_into(m, out)
        if len(out) >= 1000:
            decoded += len(out)
            out = []
    elapsed = time.perf_counter() - started
    assert decoded + len(out) == len(messages)
    print(f"\npgoutput decode: {len(messages) / elapsed:,.0f} rows/s (6 columns, 1,000-event batches)")


# -- real streams -------------------------------------------------------------------------------


@pytest.fixture
def spec(pg: PgCluster, pg_db: str) -> ConnectionSpec:
    return ConnectionSpec(
        kind="postgresql", host=pg.host, port=pg.port, database=pg_db, username=pg.user, password=pg.password
    )


@pytest.fixture
def source(pg: PgCluster, pg_db: str, spec: ConnectionSpec) -> Iterator:
    """An autocommit session on the test database; the pipeline's slot and publication are dropped after."""
    conn = pg.connect(pg_db)
    yield conn
    conn.close()
    drop_slot_and_publication(spec, slot_name(1), publication_name(1), timeout_s=10)


def _read(stream: LogicalStream, txns: int, timeout_s: float = 15) -> list:
    """Items until `txns` transactions have ended."""
    items: list = []
    deadline = time.monotonic() + timeout_s
    while sum(isinstance(i, TxnEnd) for i in items) < txns:
        assert time.monotonic() < deadline, f"only {items} arrived"
        items.extend(stream.poll(0.2))
    return items


def _split(items: list) -> list[tuple[list, TxnEnd]]:
    """Items grouped per transaction: (events and relation changes, its TxnEnd)."""
    txns, current = [], []
    for item in items:
        if isinstance(item, TxnEnd):
            txns.append((current, item))
            current = []
        else:
            current.append(item)
    return txns


_TYPES_TABLE = """
CREATE TABLE public.items (
    id int PRIMARY KEY, amount numeric(12,3), label text, flag bool, at timestamptz, doc jsonb,
    raw bytea, nums int[], ratio double precision, big text
)"""
_COLS = ["id", "amount", "label", "flag", "at", "doc", "raw", "nums", "ratio", "big"]
_TRICKY = 'tab\there\nnew line, ü 😀 "quoted" back\\slash'


def _row_text(cur, row_id: int, cols: list[str] = _COLS) -> dict:
    """`col::text` of each column; bool through its output function, as pgoutput and COPY spell it (t/f)."""
    exprs = ", ".join("boolout(flag)::text" if c == "flag" else f"{c}::text" for c in cols)
    cur.execute(f"SELECT {exprs} FROM items WHERE id = %s", (row_id,))
    return dict(zip(cols, cur.fetchone(), strict=True))


def test_stream_decodes_every_kind_of_change(source, spec: ConnectionSpec) -> None:
    cur = source.cursor()
    cur.execute(_TYPES_TABLE)
    ensure_publication(spec, publication_name(1), [("public", "items")])
    create_slot(spec, slot_name(1))
    big = "".join(f"{i:05d}-{(i * 7919) % 100003:x}" for i in range(20_000))  # ~250 kB: stored out of line
    snaps: dict[str, dict] = {}

    cur.execute("BEGIN")
    cur.execute(
        "INSERT INTO items VALUES (1, 12345.678, %s, true, '2024-02-29 13:14:15.123456+02', "
        '\'{"a": [1, 2, {"b": null}], "é": "x"}\', \'\\x00ff10\'::bytea, \'{1,NULL,3}\', 0.1, %s)',
        (_TRICKY, big),
    )
    cur.execute("INSERT INTO items (id) VALUES (2)")
    cur.execute("COMMIT")
    snaps["ins1"], snaps["ins2"] = _row_text(cur, 1), _row_text(cur, 2)
    cur.execute("UPDATE items SET label = 'changed', amount = amount + 1 WHERE id = 1")  # big stays TOASTed
    snaps["upd1"] = _row_text(cur, 1)
    cur.execute("UPDATE items SET id = 10, label = 'moved' WHERE id = 2")
    snaps["upd10"] = _row_text(cur, 10)
    cur.execute("DELETE FROM items WHERE id = 10")
    cur.execute("ALTER TABLE items REPLICA IDENTITY FULL")
    snaps["full1"] = _row_text(cur, 1)
    cur.execute("DELETE FROM items WHERE id = 1")
    cur.execute("INSERT INTO items (id, label) VALUES (3, 'x')")
    cur.execute("TRUNCATE items")
    cur.execute("ALTER TABLE items ADD COLUMN extra text")
    cur.execute("INSERT INTO items (id, extra) VALUES (4, 'new column')")
    snaps["ins4"] = _row_text(cur, 4, [*_COLS, "extra"])

    with LogicalStream(spec, slot_name(1), publication_name(1)) as stream:
        stream.start()
        txns = _split(_read(stream, 8))

    def events(i: int) -> list[ChangeEvent]:
        return [e for e in txns[i][0] if isinstance(e, ChangeEvent)]

    # transactions arrive whole, in commit order, every event carrying its commit LSN
    ends = [end for _, end in txns]
    assert [e.commit_lsn for e in ends] == sorted({e.commit_lsn for e in ends})
    for items, end in txns:
        assert all(e.position == end.commit_lsn and e.xid == end.xid for e in items if isinstance(e, ChangeEvent))
        assert end.end_lsn > end.commit_lsn and end.commit_time.tzinfo is not None

    assert isinstance(txns[0][0][0], RelationChanged) and txns[0][0][0].previous is None
    ins1, ins2 = events(0)
    assert (ins1.op, ins1.schema, ins1.table, ins1.key) == ("insert", "public", "items", {"id": "1"})
    assert ins1.after == snaps["ins1"] and ins1.after["label"] == _TRICKY and ins1.after["big"] == big
    assert ins2.after == snaps["ins2"] and ins2.after["amount"] is None

    (upd,) = events(1)
    assert upd.op == "update" and upd.key == {"id": "1"} and upd.before is None
    assert upd.unchanged == frozenset({"big"})
    assert upd.after == {k: v for k, v in snaps["upd1"].items() if k != "big"}

    (moved,) = events(2)
    assert moved.key == {"id": "2"} and moved.before == {"id": "2"} and moved.after == snaps["upd10"]

    (gone,) = events(3)
    assert (gone.op, gone.key, gone.before, gone.after) == ("delete", {"id": "10"}, {"id": "10"}, None)

    (gone_full,) = [e for e in events(4) if e.op == "delete"]
    assert gone_full.before == snaps["full1"] and gone_full.before["big"] == big

    assert [e.op for e in events(5)] == ["insert"]
    assert [(e.op, e.table) for e in events(6)] == [("truncate", "items")]

    changes = [i for i in txns[7][0] if isinstance(i, RelationChanged)]
    assert len(changes) == 1 and changes[0].added == ("extra",) and changes[0].removed == ()
    (ins4,) = events(7)
    assert ins4.after == snaps["ins4"] and ins4.after["extra"] == "new column"
