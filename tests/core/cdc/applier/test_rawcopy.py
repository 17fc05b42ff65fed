"""New rows straight from pgoutput Insert messages: the COPY text, then PgApplier's direct path on PostgreSQL."""

from __future__ import annotations

import struct
from datetime import UTC, datetime

import pytest

from core.cdc.applier import PgApplier, SchemaMismatch
from core.cdc.applier import pg as applier_pg
from core.cdc.applier.copytext import rows_payload
from core.cdc.applier.rawcopy import copy_text
from core.cdc.events import expand, expand_tail, row_count
from core.cdc.pgoutput import Decoder, InsertRun, RawInsert
from core.cdc.sink import AppliedBatch
from tests.core.cdc.applier.test_pg import ITEMS, content, db, items, run, spec, upd  # noqa: F401
from tests.core.cdc.test_pgoutput import TS, begin, insert, relation

COLS3 = [("id", 23, True), ("name", 25, False), ("qty", 23, False)]
TRICKY = [
    ["1", None, "tab\there", "new\nline\r", "back\\slash"],
    [None, "x", "", 'ü 😀 "q"', None],
    ["3", "\\N", "\\", "\t", "a\\tb"],
]


def test_copy_text_equals_value_by_value_escaping() -> None:
    rows = [
        [str(i), str(i * 7), f"text {i}", None if i % 3 else f"{i}.5", "2024-01-03 04:05:06+00"] for i in range(500)
    ]
    rows += TRICKY
    messages = [insert(1, r) for r in rows]
    assert copy_text(messages, 5) == rows_payload(rows).encode()
    assert copy_text([insert(1, r) for r in TRICKY[1:2]], 5) == rows_payload(TRICKY[1:2]).encode()  # NULL first
    assert copy_text([], 5) == b""


@pytest.mark.parametrize("marker", ["\x01", "\x02", "\x03"])
def test_copy_text_refuses_values_holding_its_markers(marker: str) -> None:
    rows = [["1", "plain"], ["2", f"has {marker} inside"]]
    assert copy_text([insert(1, r) for r in rows], 2) is None


def test_copy_text_refuses_what_it_does_not_understand() -> None:
    good = insert(1, ["1", "a"])
    assert copy_text([good], 3) is None  # another column count
    assert copy_text([good[:-1]], 2) is None  # cut short
    assert copy_text([good + b"x"], 2) is None  # trailing bytes
    unchanged = good[:8] + b"u" + good[8 + 5 + 1 :]  # first column 'u' (unchanged TOAST)
    assert copy_text([unchanged], 2) is None


def raw_inserts(
    rows: list[dict], pos: int, table: str = "items", columns: tuple[str, ...] = ("id", "name", "qty"), xid: int = 7
) -> list[RawInsert]:
    """RawInserts as the decoder makes them from the server's messages."""
    d = Decoder()
    d.decode(begin(pos, TS, xid))
    d.decode(relation(1, "public", table, [(c, 25, c == "id") for c in columns]))
    out: list = []
    for row in rows:
        out.extend(d.decode(insert(1, [None if row.get(c) is None else str(row[c]) for c in columns])))
    assert all(type(e) is RawInsert for e in out)
    return out


def rows(lo: int, hi: int, tag: str = "n") -> list[dict]:
    return [{"id": i, "name": f"{tag}{i}\t\\ü", "qty": None if i % 5 == 0 else i} for i in range(lo, hi + 1)]


def expected(rs: list[dict]) -> list[tuple]:
    return [(r["id"], r["name"], r["qty"]) for r in sorted(rs, key=lambda r: r["id"])]


def test_new_rows_go_straight_into_the_target(spec, db, items) -> None:  # noqa: F811
    with PgApplier(spec, 1, {ITEMS: ITEMS}) as ap:
        stats = ap.apply(raw_inserts(rows(1, 300), 10), 10)
        assert (stats.inserts, stats.events, stats.rows_upserted) == (300, 300, 300)
        assert stats.per_table == {"public.items": {"insert": 300, "update": 0, "delete": 0, "truncate": 0}}
        assert not ap._staged, "all-insert batches must not go through a staging table"
        assert ap.stored_position() == 10
        # A batch mixing inserts and updates of the table takes the set-based path, in order.
        mixed = [*raw_inserts(rows(301, 310), 20), upd("items", 20, {"id": 301}, id=301, name="changed", qty=1)]
        ap.apply(mixed, 20)
        assert ap._staged
    want = expected(rows(1, 310))
    want[300] = (301, "changed", 1)
    assert content(db) == want


def test_a_key_the_target_has_rewrites_the_batch_as_upserts(spec, db, items) -> None:  # noqa: F811
    run(db, "INSERT INTO items VALUES (3, 'already there', 99)")
    with PgApplier(spec, 1, {ITEMS: ITEMS}) as ap:
        stats = ap.apply(raw_inserts(rows(1, 10), 10), 10)
        assert (stats.inserts, stats.rows_upserted) == (10, 10)
        assert ap.stored_position() == 10
        oid = ap.target_table(ITEMS).oid
        assert ap._direct_off[oid] == applier_pg.DIRECT_BACKOFF  # staging for a while
        ap.apply(raw_inserts(rows(11, 12), 20), 20)
        assert ap._direct_off[oid] == applier_pg.DIRECT_BACKOFF - 1
    assert content(db) == expected(rows(1, 12))


def test_a_conflict_in_the_last_part_writes_the_earlier_parts_again(spec, db, items) -> None:  # noqa: F811
    run(db, "INSERT INTO items VALUES (250, 'already there', 99)")
    with PgApplier(spec, 1, {ITEMS: ITEMS}) as ap:
        ap.apply_part(raw_inserts(rows(1, 100), 30))
        ap.apply_part(raw_inserts(rows(101, 200), 30))
        stats = ap.apply(raw_inserts(rows(201, 300), 30), 30)
        assert (stats.inserts, stats.events) == (300, 300)
        assert ap.stored_position() == 30
    assert content(db) == expected(rows(1, 300))


def test_values_holding_marker_bytes_and_unknown_columns_take_the_staging_path(spec, db, items) -> None:  # noqa: F811
    odd = [{"id": 1, "name": "a\x01b\x02c\x03", "qty": 1}, {"id": 2, "name": "plain", "qty": 2}]
    with PgApplier(spec, 1, {ITEMS: ITEMS}) as ap:
        ap.apply(raw_inserts(odd, 10), 10)
        assert content(db) == expected(odd)
        with pytest.raises(SchemaMismatch, match="extra"):
            ap.apply(
                raw_inserts(
                    [{"id": 5, "name": "x", "qty": 1, "extra": "e"}], 20, columns=("id", "name", "qty", "extra")
                ),
                20,
            )
    assert content(db) == expected(odd)


def test_a_failing_direct_copy_leaves_rows_and_offset_unchanged(spec, db, items) -> None:  # noqa: F811
    bad = rows(1, 5)
    bad[2]["qty"] = -1  # violates CHECK (qty >= 0): not a key conflict, so it fails the batch
    with PgApplier(spec, 1, {ITEMS: ITEMS}) as ap:
        ap.apply(raw_inserts(rows(100, 101), 10), 10)
        with pytest.raises(Exception, match="check constraint"):
            ap.apply(raw_inserts(bad, 20), 20)
        assert ap.stored_position() == 10
    assert content(db) == expected(rows(100, 101))


def test_raw_insert_reads_like_a_change_event() -> None:
    (ev,) = raw_inserts([{"id": 1, "name": None, "qty": 3}], 10)
    assert (ev.op, ev.schema, ev.table, ev.position, ev.xid, ev.before) == ("insert", "public", "items", 10, 7, None)
    assert ev.key == {"id": "1"} and ev.after == {"id": "1", "name": None, "qty": "3"}
    assert ev.unchanged == frozenset() and ev.columns == ("id", "name", "qty")
    assert ev == ev.as_event() and ev.as_event() == ev


# -- runs: consecutive inserts as one item ----------------------------------------------------------


def insert_runs(rows_: list[dict], pos: int, xid: int = 7) -> list:
    """What Decoder(runs=True) makes of the rows' Insert messages: one InsertRun."""
    d = Decoder(runs=True)
    d.decode(begin(pos, TS, xid))
    d.decode(relation(1, "public", "items", [(c, 25, c == "id") for c in ("id", "name", "qty")]))
    out: list = []
    for row in rows_:
        d.decode_into(insert(1, [None if row.get(c) is None else str(row[c]) for c in ("id", "name", "qty")]), out)
    return out


def test_the_decoder_groups_consecutive_inserts_into_runs() -> None:
    d = Decoder(runs=True)
    out: list = []
    for m in (
        begin(100, TS, 7),
        relation(1, "public", "a", COLS3),
        relation(2, "public", "b", COLS3),
        insert(1, ["1", "x", None]),
        insert(1, ["2", "y", "3"]),
        insert(2, ["1", "z", None]),
        insert(1, ["3", None, None]),
        b"C" + struct.pack(">BQQq", 0, 100, 110, TS),
        begin(200, TS, 8),
        insert(1, ["4", "w", "4"]),
    ):
        d.decode_into(m, out)
    runs = [i for i in out if isinstance(i, InsertRun)]
    assert [(r.table, len(r), r.position, r.xid) for r in runs] == [
        ("a", 2, 100, 7),
        ("b", 1, 100, 7),
        ("a", 1, 100, 7),
        ("a", 1, 200, 8),
    ]
    assert row_count(out) == 5 + sum(1 for i in out if not isinstance(i, InsertRun))
    first = runs[0].events()
    assert [e.after for e in first] == [{"id": "1", "name": "x", "qty": None}, {"id": "2", "name": "y", "qty": "3"}]
    assert all(type(e) is RawInsert and e.position == 100 and e.xid == 7 for e in first)
    assert [e.after["id"] for e in expand(out) if isinstance(e, RawInsert)] == ["1", "2", "1", "3", "4"]
    assert [e.after["id"] for e in expand_tail(out, 2) if isinstance(e, RawInsert)] == ["4"]
    assert [e.after["id"] for e in expand_tail(runs, 3)] == ["2", "1", "3", "4"][-3:]


def test_runs_are_copied_straight_in_or_applied_as_rows(spec, db, items) -> None:  # noqa: F811
    run(db, "INSERT INTO items VALUES (7, 'already there', 99)")
    with PgApplier(spec, 1, {ITEMS: ITEMS}) as ap:
        stats = ap.apply(insert_runs(rows(100, 400), 10), 10)
        assert (stats.inserts, stats.events, stats.rows_upserted, stats.skipped) == (301, 301, 301, 0)
        assert not ap._staged
        # A run next to an update of the same table: the rows go through staging, in order.
        ap.apply([*insert_runs(rows(401, 410), 20), upd("items", 20, {"id": 401}, id=401, name="u", qty=1)], 20)
        # A run meeting a key the target has: the batch is written again as upserts.
        stats = ap.apply(insert_runs(rows(1, 10), 30), 30)
        assert stats.inserts == 10
        # A batch read again after a crash is skipped as a whole, counted in rows.
        again = ap.apply(insert_runs(rows(1, 10), 30), 30)
        assert (again.applied, again.skipped) == (False, 10)
    want = {r[0]: r for r in expected(rows(1, 10) + rows(100, 410))}
    want[401] = (401, "u", 1)
    assert content(db) == sorted(want.values())


def test_monitoring_records_runs_as_rows(monkeypatch) -> None:
    from core.monitoring import recorder  # noqa: PLC0415 - only this test needs it

    added: list = []
    published: list = []
    monkeypatch.setattr(recorder._recorder, "add", lambda pid, at, per_table, tail: added.append((per_table, tail)))
    monkeypatch.setattr(recorder.bus, "publish", published.append)
    recorder.SINK.applied(AppliedBatch(5, insert_runs(rows(1, 1200), 10), datetime.now(UTC)))
    ((per_table, tail),) = added
    assert per_table == {("public", "items", "insert"): 1200}
    assert len(tail) == recorder.EVENT_LOG_CAP and tail[-1].after["id"] == "1200"
    (event,) = published
    assert event.data["total"] == 1200 and event.data["counts"] == {"insert": 1200}
    assert [e["key"] for e in event.data["latest"]][-1] == {"id": "1200"}
