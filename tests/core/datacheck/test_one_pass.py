"""The PostgreSQL fast paths of a data check on a real server: one bucketed scan gives every segment the same
count and checksum as its own range query (keys equal to a boundary included, text keys in byte order), a table
whose columns match on both sides hashes its rows as the table row's text, and the differences found through
the fast paths are exactly the planted ones — on two databases whose time zones differ."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from psycopg2 import sql

from core.connectors.base import ConnectionSpec
from core.datacheck import engine
from core.datacheck.engine import Reader, TableValidator
from tests.api.test_cdc_api import run_sql
from tests.pgcluster import PgCluster


@pytest.fixture(scope="module")
def dbs(pg: PgCluster) -> Iterator[tuple[str, str]]:
    names = (f"onepass{os.getpid()}_src", f"onepass{os.getpid()}_tgt")
    for name, zone in zip(names, ("Pacific/Chatham", "America/Los_Angeles"), strict=True):
        pg.create_database(name)
        conn = pg.connect(name)
        with conn.cursor() as cur:
            cur.execute(sql.SQL("ALTER DATABASE {} SET timezone TO {}").format(sql.Identifier(name), sql.Literal(zone)))
        conn.close()
    yield names
    for name in names:
        pg.drop_database(name)


def _spec(pg: PgCluster, db: str) -> ConnectionSpec:
    return ConnectionSpec(
        kind="postgresql", host=pg.host, port=pg.port, database=db, username=pg.user, password=pg.password
    )


TABLES = {
    "ints": "CREATE TABLE ints (id bigint PRIMARY KEY, at timestamptz, n numeric(12,2), f float8, j jsonb)",
    "texts": 'CREATE TABLE texts (k text COLLATE "und-x-icu" PRIMARY KEY, v int)',
}
FILL = {
    "ints": "INSERT INTO ints SELECT g, timestamptz '2024-01-01 00:00Z' + g * interval '1 min', g / 7.0, g / 3.0, "
    "jsonb_build_object('g', g) FROM generate_series(1, 5000) g",
    "texts": "INSERT INTO texts SELECT chr(65 + g % 58) || g::text, g FROM generate_series(1, 3000) g",
}


def _validator(pg: PgCluster, dbs: tuple[str, str], table: str) -> TableValidator:
    source = Reader(_spec(pg, dbs[0]), is_source=True)
    target = Reader(_spec(pg, dbs[1]), is_source=False)
    return TableValidator(source, target, ("public", table), ("public", table))


@pytest.mark.parametrize("table", list(TABLES))
def test_bucketed_scan_equals_the_segment_checksums(pg: PgCluster, dbs: tuple[str, str], table: str) -> None:
    for db in dbs:
        run_sql(pg, db, f"DROP TABLE IF EXISTS {table}", TABLES[table], FILL[table])
    validator = _validator(pg, dbs, table)
    try:
        assert validator.src.whole_row and validator.tgt.whole_row  # same columns, same types: the row's own text
        tops = validator._boundaries(validator.source, validator.src, None, None, 700)
        assert len(tops) > 3
        query, params = validator.src.bucket_checksums(tops)
        with validator.source.snapshot():
            buckets = {int(b): (int(n), int(h)) for b, n, h in validator.source.query(query, params)}
        edges = [None, *tops, None]
        for i in range(len(edges) - 1):
            q, p = validator.src.checksum(edges[i], edges[i + 1])
            with validator.source.snapshot():
                n, h = validator.source.query(q, p)[0]
            assert buckets.get(i, (0, 0)) == (int(n), int(h)), i
        # both databases hold the same rows in other time zones: every segment equal, nothing to look at
        validator.counts()
        assert validator._differing_buckets(tops) == []
    finally:
        validator.close()
        validator.source.close()
        validator.target.close()


def test_planted_differences_are_found_through_the_fast_paths(
    pg: PgCluster, dbs: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "SEGMENT_ROWS", 500)
    monkeypatch.setattr(engine, "ROW_FETCH", 50)
    monkeypatch.setattr(engine, "SPLIT", 4)
    for db in dbs:
        run_sql(pg, db, "DROP TABLE IF EXISTS ints", TABLES["ints"], FILL["ints"])
    run_sql(
        pg,
        dbs[1],
        "UPDATE ints SET n = 1.5 WHERE id = 500",  # a boundary key (every 500th is one)
        "UPDATE ints SET at = at + interval '1 microsecond' WHERE id = 1234",
        "DELETE FROM ints WHERE id = 4999",
        "INSERT INTO ints (id) VALUES (900000)",
        "UPDATE ints SET f = f * (1 + 1e-15) WHERE id = 77",  # within the float tolerance: not a difference
    )
    run_sql(pg, dbs[0], "ANALYZE ints")  # the segments come from the source key's histogram
    validator = _validator(pg, dbs, "ints")
    try:
        validator.counts()
        tops = validator._estimated_tops()
        assert tops is not None and 5 <= len(tops) <= 15, tops  # ~500 rows each of 5000
        found = validator.find_differences()
        assert {k[0]: d.kind for k, d in found.candidates.items()} == {  # keys as compared: their text
            "500": "different",
            "1234": "different",
            "4999": "missing",
            "900000": "extra",
        }
    finally:
        validator.close()
        validator.source.close()
        validator.target.close()
