"""PgApplier against a real PostgreSQL target: net changes, TOAST, truncate, types, offsets, identifiers."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg2
import pytest

from core.cdc.applier import PgApplier, SchemaMismatch, statements
from core.cdc.applier.copytext import rows_payload
from core.cdc.events import ChangeEvent
from core.cdc.offsets import ensure_offsets_table, read_offset, write_offset
from core.connectors.base import ConnectionSpec
from core.errors import ConnectorError, ObjectNotFound, ValidationFailed
from tests.pgcluster import PgCluster

ITEMS = ("public", "items")


@pytest.fixture(params=["merge", "on_conflict"])
def spec(request, monkeypatch, pg: PgCluster, pg_db: str) -> ConnectionSpec:
    """The target; every test runs with MERGE upserts (PostgreSQL 15+) and with INSERT ... ON CONFLICT."""
    monkeypatch.setattr(statements, "USE_MERGE", request.param == "merge")
    return ConnectionSpec(
        kind="postgresql", host=pg.host, port=pg.port, database=pg_db, username=pg.user, password=pg.password
    )


@pytest.fixture
def db(pg: PgCluster, pg_db: str) -> Iterator[psycopg2.extensions.connection]:
    conn = pg.connect(pg_db)
    yield conn
    conn.close()


def run(conn, statement: str, params=None) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(statement, params)
        return cur.fetchall() if cur.description else []


def ins(table: str, pos: int, schema: str = "public", **row) -> ChangeEvent:
    after = {k: _text(v) for k, v in row.items()}
    return ChangeEvent("insert", schema, table, None, None, after, pos)


def upd(table: str, pos: int, key: dict, schema: str = "public", unchanged: tuple[str, ...] = (), **row) -> ChangeEvent:
    after = {k: _text(v) for k, v in row.items()}
    return ChangeEvent(
        "update", schema, table, {k: _text(v) for k, v in key.items()}, None, after, pos, unchanged=frozenset(unchanged)
    )


def dele(table: str, pos: int, key: dict, schema: str = "public") -> ChangeEvent:
    return ChangeEvent("delete", schema, table, {k: _text(v) for k, v in key.items()}, None, None, pos)


def trunc(table: str, pos: int, schema: str = "public") -> ChangeEvent:
    return ChangeEvent("truncate", schema, table, None, None, None, pos)


def _text(v) -> str | None:
    return None if v is None else str(v)


@pytest.fixture
def items(db) -> None:
    run(db, "CREATE TABLE items (id int PRIMARY KEY, name text, qty int CHECK (qty >= 0))")


def content(db, table: str = "items") -> list[tuple]:
    return run(db, f"SELECT * FROM {table} ORDER BY 1")


def test_insert_update_delete_exact(spec, db, items) -> None:
    with PgApplier(spec, 1, {ITEMS: ITEMS}) as ap:
        assert ap.stored_position() is None
        stats = ap.apply([ins("items", 10, id=i, name=f"n{i}", qty=i) for i in (1, 2, 3)], 10)
        assert (stats.inserts, stats.events, stats.rows_upserted, stats.applied) == (3, 3, 3, True)
        stats = ap.apply([upd("items", 20, {"id": 2}, id=2, name="two", qty=None), dele("items", 20, {"id": 3})], 20)
        assert (stats.updates, stats.deletes, stats.rows_deleted) == (1, 1, 1)
        assert stats.per_table["public.items"] == {"insert": 0, "update": 1, "delete": 1, "truncate": 0}
        assert ap.stored_position() == 20
    assert content(db) == [(1, "n1", 1), (2, "two", None)]


def test_dedupe_within_batch(spec, db, items) -> None:
    with PgApplier(spec, 1, {ITEMS: ITEMS}) as ap:
        ap.apply([ins("items", 5, id=1, name="old", qty=1), ins("items", 5, id=2, name="keep", qty=2)], 5)
        batch = [
            ins("items", 10, id=5, name="a", qty=1),
            upd("items", 10, {"id": 5}, id=5, name="b", qty=2),
            dele("items", 10, {"id": 5}),  # insert→update→delete: nothing
            dele("items", 11, {"id": 1}),
            ins("items", 11, id=1, name="new", qty=9),  # delete→insert: the new row
            upd("items", 12, {"id": 2}, id=2, name="k1", qty=3),
            upd("items", 12, {"id": 2}, id=2, name="k2", qty=4),  # last update wins
            ins("items", 12, id=6, name="x", qty=0),
            dele("items", 12, {"id": 6}),
            ins("items", 12, id=6, name="y", qty=1),
        ]
        stats = ap.apply(batch, 12)
        assert (stats.inserts, stats.updates, stats.deletes) == (4, 3, 3)
    assert content(db) == [(1, "new", 9), (2, "k2", 4), (6, "y", 1)]


def test_primary_key_update_moves_row(spec, db, items) -> None:
    with PgApplier(spec, 1, {ITEMS: ITEMS}) as ap:
        ap.apply([ins("items", 1, id=1, name="a", qty=1), ins("items", 1, id=3, name="c", qty=3)], 1)
        ap.apply(
            [
                upd("items", 2, {"id": 1}, id=2, name="a", qty=1),  # move 1 -> 2
                ins("items", 2, id=7, name="g", qty=7),
                upd("items", 2, {"id": 7}, id=8, name="h", qty=8),  # inserted and moved in one batch
                upd("items", 2, {"id": 3}, id=4, name="c", qty=3),
                upd("items", 2, {"id": 4}, id=3, name="back", qty=3),  # moved away and back
            ],
            2,
        )
    assert content(db) == [(2, "a", 1), (3, "back", 3), (8, "h", 8)]


@pytest.fixture
def docs(db) -> None:
    run(db, "CREATE TABLE docs (id int PRIMARY KEY, body text NOT NULL, meta jsonb, n int)")


DOCS = ("public", "docs")


def test_unchanged_toast_keeps_target_value(spec, db, docs) -> None:
    big = "x" * 100_000
    with PgApplier(spec, 1, {DOCS: DOCS}) as ap:
        ap.apply([ins("docs", 1, id=i, body=f"{big}{i}", meta='{"a": 1}', n=0) for i in (1, 2, 3, 4)], 1)
        ap.apply(
            [
                upd("docs", 2, {"id": 1}, unchanged=("body",), id=1, meta='{"a": 2}', n=1),
                upd("docs", 2, {"id": 2}, unchanged=("body", "meta"), id=2, n=2),
                upd("docs", 2, {"id": 2}, unchanged=("body",), id=2, meta=None, n=3),  # still partial after merge
                upd("docs", 2, {"id": 3}, unchanged=("body",), id=30, meta='{"moved": true}', n=3),  # key moved
                ins("docs", 2, id=5, body="fresh", meta=None, n=5),
                upd("docs", 2, {"id": 5}, unchanged=("body",), id=5, meta=None, n=6),  # body from the insert
                upd("docs", 2, {"id": 4}, unchanged=("body",), id=4, meta=None, n=7),
                upd("docs", 2, {"id": 4}, id=4, body="full", meta=None, n=8),  # a full update after a partial one
            ],
            2,
        )
    got = run(db, "SELECT id, body = repeat('x', 100000) || id::text, body, meta::text, n FROM docs ORDER BY id")
    assert [(r[0], r[1], r[3], r[4]) for r in got] == [
        (1, True, '{"a": 2}', 1),
        (2, True, None, 3),
        (4, False, None, 8),
        (5, False, None, 6),
        (30, False, '{"moved": true}', 3),
    ]
    bodies = {r[0]: r[2] for r in got}
    assert bodies[30] == f"{big}3" and bodies[5] == "fresh" and bodies[4] == "full"


def test_truncate_in_the_middle(spec, db, items) -> None:
    with PgApplier(spec, 1, {ITEMS: ITEMS}) as ap:
        ap.apply([ins("items", 1, id=i, name="old", qty=i) for i in (1, 2)], 1)
        stats = ap.apply(
            [
                ins("items", 2, id=3, name="gone", qty=3),
                upd("items", 2, {"id": 1}, id=1, name="gone too", qty=1),
                trunc("items", 2),
                ins("items", 3, id=4, name="after", qty=4),
                upd("items", 3, {"id": 4}, id=4, name="after2", qty=5),
                ins("items", 3, id=2, name="again", qty=2),
            ],
            3,
        )
        assert stats.truncates == 1
        ap.apply([trunc("items", 4)], 4)
        assert content(db) == []
        ap.apply([ins("items", 5, id=9, name="z", qty=9)], 5)
    assert content(db) == [(9, "z", 9)]


TYPED_COLUMNS = """
    id int PRIMARY KEY, i2 smallint, i8 bigint, num numeric, num2 numeric(12, 2), r real, d double precision,
    t text, vc varchar(20), ch char(3), b boolean, dt date, tm time, tmtz timetz, ts timestamp, tstz timestamptz,
    iv interval, u uuid, j json, jb jsonb, by bytea, ia int[], ta text[], e mood, inet_ inet, pt point
"""
TYPED_ROWS = [
    "(1, 1, 9223372036854775807, 'NaN', 1234567890.12, 'NaN', 'Infinity', E'tab\\there\\nnew\\\\back\\rcr', "
    "'ünïcødé ✓', 'ab', true, '2024-02-29', '23:59:59.999999', '12:00+05:30', '2024-01-02 03:04:05.678', "
    "'2024-01-02 03:04:05.678+02', '1 year 2 mons 3 days 04:05:06', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', "
    '\'{"k": [1, "two", null]}\', \'{"b": 1, "a": "x\\ty"}\', \'\\x00ff5c0a\', \'{1,NULL,3}\', '
    "'{\"a b\",NULL,\"c\\\\\\\\d\",\"\"}', 'happy', '10.0.0.1/8', '(1.5,2)')",
    "(2, -32768, -1, '-0.000001', -0.5, '-Infinity', '-Infinity', '', 'x', 'x', false, 'infinity', '00:00', "
    "'00:00+00', '-infinity', 'infinity', '-1 days', '00000000-0000-0000-0000-000000000000', 'null', '[]', '', "
    "'{}', '{NULL}', 'sad', '::1', '(0,0)')",
    "(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
    "NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    "(4, 0, 0, '1e-20', 0, 1.5e-30, 2.2250738585072014e-308, E'\\\\N', E'\\\\', 'nul', NULL, '0001-01-01', NULL, "
    "NULL, '1999-12-31 23:59:59', '1970-01-01 00:00:00+00', '0', NULL, '\"s\"', '\"\\\\\\\\\"', '\\x5c4e', "
    "'{{1,2},{3,4}}', '{\"\\\\\\\\N\"}', 'ok', NULL, NULL)",
]


def _source_events(db, schema: str, pos: int, op: str = "insert") -> list[ChangeEvent]:
    cols = [
        r[0]
        for r in run(
            db,
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
            "AND NOT attisdropped ORDER BY attnum",
            (f"{schema}.typed",),
        )
    ]
    select = ", ".join(f'"{c}"::text' for c in cols)
    events = []
    for row in run(db, f"SELECT {select} FROM {schema}.typed ORDER BY id"):
        after = dict(zip(cols, row, strict=True))
        events.append(ChangeEvent(op, schema, "typed", {"id": after["id"]}, None, after, pos))
    return events


@pytest.mark.parametrize("marker", ["", "\x01\x02"], ids=["fast-path", "slow-path"])
def test_every_type_round_trips(spec, db, marker: str) -> None:
    run(db, "CREATE TYPE mood AS ENUM ('happy', 'sad', 'ok')")
    for schema in ("src", "tgt"):
        run(db, f"CREATE SCHEMA {schema}; CREATE TABLE {schema}.typed ({TYPED_COLUMNS})")
    run(db, f"INSERT INTO src.typed VALUES {', '.join(TYPED_ROWS)}")
    if marker:  # control characters the fast COPY path uses as markers must still round-trip
        run(db, "UPDATE src.typed SET t = t || %s, ta = array_append(ta, %s) WHERE id IN (1, 2)", (marker, marker))
    with PgApplier(spec, 1, {("src", "typed"): ("tgt", "typed")}) as ap:
        ap.apply(_source_events(db, "src", 1), 1)
        assert run(db, "SELECT t::text FROM tgt.typed t ORDER BY id") == run(
            db, "SELECT t::text FROM src.typed t ORDER BY id"
        )
        # the same values through the update path (ON CONFLICT DO UPDATE), after changing the target
        run(db, "UPDATE tgt.typed SET t = 'changed', num = 0, ta = NULL")
        ap.apply(_source_events(db, "src", 2, op="update"), 2)
        ap.apply([dele("typed", 3, {"id": 2}, schema="src")], 3)
        run(db, "DELETE FROM src.typed WHERE id = 2")
        assert run(db, "SELECT t::text FROM tgt.typed t ORDER BY id") == run(
            db, "SELECT t::text FROM src.typed t ORDER BY id"
        )


def test_failed_batch_leaves_rows_and_offset_unchanged(spec, db, items) -> None:
    with PgApplier(spec, 1, {ITEMS: ITEMS}) as ap:
        ap.apply([ins("items", 10, id=1, name="a", qty=1)], 10)
        bad = [
            upd("items", 20, {"id": 1}, id=1, name="changed", qty=5),
            ins("items", 20, id=2, name="fine", qty=2),
            ins("items", 20, id=3, name="bad", qty=-1),  # violates CHECK (qty >= 0)
        ]
        with pytest.raises(ConnectorError, match="check constraint"):
            ap.apply(bad, 20)
        assert ap.stored_position() == 10
        assert content(db) == [(1, "a", 1)]
        # the applier recovers (fresh session) and the corrected batch goes through
        ap.apply(bad[:2] + [ins("items", 20, id=3, name="good", qty=1)], 20)
        assert ap.stored_position() == 20
    assert content(db) == [(1, "changed", 5), (2, "fine", 2), (3, "good", 1)]


def test_replayed_events_are_skipped(spec, db, items) -> None:
    with PgApplier(spec, 7, {ITEMS: ITEMS}) as ap:
        first = [ins("items", 10, id=1, name="a", qty=1), upd("items", 10, {"id": 1}, id=1, name="b", qty=2)]
        ap.apply(first, 10)
        run(db, "UPDATE items SET qty = 100")  # a replay would overwrite this
        stats = ap.apply(first, 10)
        assert (stats.applied, stats.skipped, stats.events) == (False, 2, 0)
        # a re-delivery that overlaps: the old transaction is skipped, the new one applied
        stats = ap.apply(first + [ins("items", 11, id=2, name="c", qty=3)], 11)
        assert (stats.applied, stats.skipped, stats.inserts, stats.updates) == (True, 2, 1, 0)
        assert content(db) == [(1, "b", 100), (2, "c", 3)]
        # an empty batch with a newer position only moves the offset (heartbeat)
        assert ap.apply([], 15).applied
        assert ap.stored_position() == 15
    # a new applier for the same pipeline continues after the stored offset
    with PgApplier(spec, 7, {ITEMS: ITEMS}) as again:
        assert again.stored_position() == 15
        assert not again.apply([dele("items", 15, {"id": 1})], 15).applied
    assert content(db) == [(1, "b", 100), (2, "c", 3)]


def test_streams_keep_their_own_offsets_in_one_transaction(spec, db, items) -> None:
    """Kafka partitions: each stream skips only what it already applied; offsets move together with rows."""
    run(db, "CREATE TABLE other (id int PRIMARY KEY, v text)")
    other = ("public", "other")
    a, b = "kafka:t.items:0", "kafka:t.other:0"
    with PgApplier(spec, 3, {ITEMS: ITEMS, other: other}) as ap:
        stats = ap.apply_streams(
            {
                a: ([ins("items", 0, id=1, name="x", qty=1), ins("items", 1, id=2, name="y", qty=2)], 1),
                b: ([ins("other", 0, id=1, v="p")], 0),
            }
        )
        assert (stats.applied, stats.inserts) == (True, 3)
        assert ap.stored_positions("kafka:") == {a: 1, b: 0}
        # Read again after a crash: stream a is all old, stream b has one old and one new message.
        stats = ap.apply_streams(
            {
                a: ([ins("items", 1, id=2, name="CHANGED", qty=9)], 1),
                b: ([ins("other", 0, id=1, v="CHANGED"), upd("other", 1, {"id": 1}, id=1, v="q")], 1),
            }
        )
        assert (stats.applied, stats.skipped, stats.updates) == (True, 2, 1)
        assert ap.stored_positions("kafka:") == {a: 1, b: 1}
        assert ap.stored_positions("postgres") == {}
        # Nothing new anywhere: nothing applied, nothing moved.
        assert not ap.apply_streams({a: ([], 1), b: ([], 1)}).applied
    assert content(db) == [(1, "x", 1), (2, "y", 2)]
    assert content(db, "other") == [(1, "q")]


def test_mixed_case_and_reserved_identifiers(spec, db) -> None:
    run(
        db,
        'CREATE SCHEMA "My Schema"; CREATE TABLE "My Schema"."Order" '
        '("Id" int PRIMARY KEY, "select" text, "from" int, "user" text, "Mixed ""Quote""" text)',
    )
    src = ("Src Schema", "Order")
    with PgApplier(spec, 1, {src: ("My Schema", "Order")}) as ap:
        row = {"Id": "1", "select": "s", "from": "2", "user": "u", 'Mixed "Quote"': "q"}
        ap.apply(
            [
                ChangeEvent("insert", *src, {"Id": "1"}, None, row, 1),
                ChangeEvent("insert", *src, {"Id": "2"}, None, {**row, "Id": "2"}, 1),
            ],
            1,
        )
        ap.apply(
            [
                ChangeEvent("update", *src, {"Id": "1"}, None, {**row, "from": "3"}, 2, unchanged=frozenset()),
                ChangeEvent(
                    "update",
                    *src,
                    {"Id": "2"},
                    None,
                    {"Id": "2", "user": "v"},
                    2,
                    unchanged=frozenset({"select", "from", 'Mixed "Quote"'}),
                ),
                ChangeEvent("insert", *src, {"Id": "3"}, None, {**row, "Id": "3"}, 2),
                ChangeEvent("delete", *src, {"Id": "3"}, None, None, 2),
            ],
            2,
        )
    assert run(db, 'SELECT * FROM "My Schema"."Order" ORDER BY 1') == [(1, "s", 3, "u", "q"), (2, "s", 2, "v", "q")]


def test_composite_primary_key(spec, db) -> None:
    run(db, "CREATE TABLE acct (tenant text, id int, bal numeric(12, 2), PRIMARY KEY (tenant, id))")
    t = ("public", "acct")
    with PgApplier(spec, 1, {t: t}) as ap:
        ap.apply([ins("acct", 1, tenant=tn, id=i, bal=f"{i}.50") for tn in ("a", "b") for i in (1, 2)], 1)
        ap.apply(
            [
                upd("acct", 2, {"tenant": "a", "id": 1}, tenant="a", id=1, bal="9.99"),
                dele("acct", 2, {"tenant": "b", "id": 2}),
                upd("acct", 2, {"tenant": "a", "id": 2}, tenant="c", id=2, bal="2.50"),  # key moves to tenant c
                ins("acct", 2, tenant="b", id=1, bal="0"),  # same id, other tenant: upsert of (b, 1)
            ],
            2,
        )
    assert run(db, "SELECT tenant, id, bal::text FROM acct ORDER BY 1, 2") == [
        ("a", 1, "9.99"),
        ("b", 1, "0.00"),
        ("c", 2, "2.50"),
    ]


def test_table_without_primary_key_is_refused(spec, db) -> None:
    run(db, "CREATE TABLE nokey (id int, v text)")
    with pytest.raises(ValidationFailed, match=r"target table public\.nokey has no primary key"):
        PgApplier(spec, 1, {("public", "nokey"): ("public", "nokey")})


def test_missing_target_and_unmapped_source(spec, db, items) -> None:
    with pytest.raises(ObjectNotFound, match="does not exist"):
        PgApplier(spec, 1, {("public", "nope"): ("public", "nope")})
    with PgApplier(spec, 1, {ITEMS: ITEMS}) as ap:
        with pytest.raises(SchemaMismatch, match="no target"):
            ap.apply([ins("other", 1, id=1)], 1)
        assert ap.stored_position() is None


def test_new_source_column_is_reported_then_applied_after_refresh(spec, db, items) -> None:
    with PgApplier(spec, 1, {ITEMS: ITEMS}) as ap:
        ap.apply([ins("items", 1, id=1, name="a", qty=1)], 1)
        batch = [ins("items", 2, id=2, name="b", qty=2, colour="red")]
        with pytest.raises(SchemaMismatch, match="colour") as err:
            ap.apply(batch, 2)
        assert err.value.columns == ["colour"] and err.value.table == ITEMS
        assert ap.stored_position() == 1 and content(db) == [(1, "a", 1)]
        run(db, "ALTER TABLE items ADD COLUMN colour text")
        ap.refresh(ITEMS)
        ap.apply(batch, 2)
    assert content(db) == [(1, "a", 1, None), (2, "b", 2, "red")]


def test_generated_and_identity_columns(spec, db) -> None:
    run(
        db,
        "CREATE TABLE gen (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, q int, "
        "dbl int GENERATED ALWAYS AS (q * 2) STORED)",
    )
    t = ("public", "gen")
    with PgApplier(spec, 1, {t: t}) as ap:
        ap.apply([ins("gen", 1, id=5, q=1, dbl=2), ins("gen", 1, id=6, q=2, dbl=4)], 1)
        ap.apply([upd("gen", 2, {"id": 5}, id=5, q=10, dbl=20)], 2)
    assert run(db, "SELECT * FROM gen ORDER BY id") == [(5, 10, 20), (6, 2, 4)]


def test_offsets_table(db) -> None:
    assert read_offset(db, 1) is None  # no table yet
    with db.cursor() as cur:
        ensure_offsets_table(cur)
        ensure_offsets_table(cur)
        write_offset(cur, 1, 100, "postgres")
        write_offset(cur, 1, 7, "kafka:orders:0")
        write_offset(cur, 1, 120, "postgres")
        write_offset(cur, 2, 5, "postgres")
    assert read_offset(db, 1) == 120
    assert read_offset(db, 1, "kafka:orders:0") == 7
    assert read_offset(db, 1, "kafka:orders:1") is None
    assert read_offset(db, 2) == 5
    # SQL Server LSNs are 80-bit numbers; a table made with a bigint position is widened in place.
    lsn = int("00000fff0000abcd0012", 16) * 4096
    with db.cursor() as cur:
        cur.execute("ALTER TABLE cdc_studio.offsets ALTER COLUMN position TYPE bigint")
        ensure_offsets_table(cur)
        write_offset(cur, 3, lsn, "mssql")
    assert read_offset(db, 3, "mssql") == lsn and lsn > 2**64


def test_payload_escaping() -> None:
    rows = [("a\tb", "c\\d", None), ("line\nbreak\r", "", "x")]
    expected = "a\\tb\tc\\\\d\t\\N\t3\nline\\nbreak\\r\t\tx\t3\n"
    assert rows_payload(rows, tail="3") == expected
    assert rows_payload([("\x01", None)]) == "\x01\t\\N\n"  # slow path for marker characters
    assert rows_payload([]) == ""


def test_large_transaction_applied_in_parts(spec, db, items) -> None:
    """Parts of one source transaction share a target transaction: nothing is visible before the commit."""
    with PgApplier(spec, 3, {ITEMS: ITEMS}) as ap:
        ap.apply([ins("items", 5, id=9, name="old", qty=9)], 5)
        ap.apply_part([ins("items", 10, id=i, name="a", qty=i) for i in (1, 2, 3)])
        # the second part deletes and re-inserts keys of the first: staged rows of part one must not come back
        ap.apply_part(
            [
                dele("items", 10, {"id": 1}),
                upd("items", 10, {"id": 2}, id=2, name="b", qty=20),
                dele("items", 10, {"id": 9}),
            ]
        )
        assert content(db) == [(9, "old", 9)]  # another session sees nothing of the open parts
        stats = ap.apply([ins("items", 10, id=4, name="d", qty=4)], 10)
        assert (stats.applied, stats.inserts, stats.updates, stats.deletes) == (True, 4, 1, 2)
        assert content(db) == [(2, "b", 20), (3, "a", 3), (4, "d", 4)]
        assert ap.stored_position() == 10
        # parts re-delivered after a crash are skipped; rollback() discards parts that were not committed
        ap.apply_part([ins("items", 10, id=5, name="replayed", qty=5)])
        ap.apply_part([ins("items", 12, id=6, name="undone", qty=6)])
        ap.rollback()
        ap.apply_part([ins("items", 12, id=7, name="g", qty=7)])
        assert ap.apply([], 12).applied
    assert content(db) == [(2, "b", 20), (3, "a", 3), (4, "d", 4), (7, "g", 7)]
