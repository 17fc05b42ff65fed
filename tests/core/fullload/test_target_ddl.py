"""Target DDL from real schemas: generated columns, defaults, domains, every type, extension types, findings,
schema reconcile. Real PostgreSQL (source and target are two databases of one cluster), exact equality."""

from __future__ import annotations

from typing import Any

import psycopg2
import pytest

from core.connectors.base import ConnectionSpec
from core.errors import ObjectNotFound, StudioError, ValidationFailed
from core.fullload import Finding, LoadOptions, TablePlan, paths, plan_target_ddl, reconcile_table, table_findings
from tests.core.fullload.test_fullload import execute, fetch, formats, load, spec, target_db  # noqa: F401
from tests.pgcluster import PgCluster

TYPES_DDL = r"""
CREATE SCHEMA "Src";
CREATE TYPE "Src".mood AS ENUM ('sad', 'ok', 'it''s');
CREATE DOMAIN "Src"."Größe" AS bigint NOT NULL DEFAULT 1 CONSTRAINT "größe_positiv" CHECK (VALUE > 0);
CREATE DOMAIN "Src".klein AS "Src"."Größe" CHECK (VALUE < 1000);
CREATE DOMAIN "Src".email AS text CHECK (VALUE ~ '@');
CREATE DOMAIN "Src".laune AS "Src".mood DEFAULT 'ok';
CREATE TABLE "Src".every (
    id int PRIMARY KEY,
    ia int[], ta text[], na numeric[], tsa timestamptz[], ua uuid[], ba bool[], ja jsonb[], bya bytea[],
    t text, tv tsvector, r4 int4range, rt tstzrange, rn numrange, rd daterange, mr int4multirange,
    mo money, bt bit(4), vb varbit, x xml, ip inet, ci cidr, mac macaddr, mac8 macaddr8,
    pt point, ln line, ls lseg, bx box, pa path, po polygon, cr circle, iv interval, j json, jb jsonb,
    g "Src"."Größe", k "Src".klein, e "Src".email, m "Src".mood, l "Src".laune
);
CREATE TRIGGER every_tv BEFORE INSERT OR UPDATE ON "Src".every
    FOR EACH ROW EXECUTE FUNCTION tsvector_update_trigger(tv, 'pg_catalog.english', t);
INSERT INTO "Src".every VALUES
 (1, '{1,NULL,-3}', ARRAY['a b', NULL, 'c,d', 'e"f', '', 'NULL', E'back\\slash'], '{1.50,NaN,-0.001}',
  '{"2024-02-29 12:34:56.789012+05:30",-infinity}', '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}', '{t,f,NULL}',
  ARRAY['{"a": [1, 2]}'::jsonb, 'null'], ARRAY['\x00ff'::bytea, ''], 'The quick brown foxes jumped',
  NULL, '[1,10)', '[2024-01-01 00:00+00,infinity)', '(1.5,2.25]', '[2024-01-01,2024-02-01)',
  '{[1,3), [5,8)}', '-12.34', B'1010', B'110011', '<a x="1">b &amp; c</a>', '192.168.0.1/24', '10.0.0.0/8',
  '08:00:2b:01:02:03', '08:00:2b:01:02:03:04:05', '(1.5,-2)', '{1,2,3}', '[(0,0),(1,1)]', '(2,2),(0,0)',
  '[(0,0),(1,1),(2,0)]', '((0,0),(1,1),(2,0))', '<(1,1),5>', '1 year 2 mons -3 days 04:05:06.789',
  '{ "a" :  1 }', '{"b": [1, {"c": null}]}', 5, 999, 'me@example.com', 'it''s', 'sad'),
 (2, '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '', NULL, 'empty', '(,)', 'empty', '[,2024-01-01)', '{}',
  '0', B'0000', B'', '', '::1', '::/0', '00:00:00:00:00:00', '00:00:00:00:00:00:00:00', '(0,0)', '{1,-1,0}',
  '[(0,0),(0,0)]', '(0,0),(0,0)', '((0,0))', '((0,0))', '<(0,0),0>', '0', 'null', '"s"', 1, 1, '@', 'ok', NULL);
INSERT INTO "Src".every (id, g, k) VALUES (3, 7, 7);
-- Arrays of enums and domains carry the element type's oid in binary COPY: these go through text.
CREATE TABLE "Src".user_arrays (id int PRIMARY KEY, ga "Src"."Größe"[], ma "Src".mood[], ea "Src".email[]);
INSERT INTO "Src".user_arrays VALUES (1, '{1,2}', '{sad,NULL,"it''s"}', '{a@b,NULL}'), (2, '{}', '{}', NULL),
                                     (3, NULL, NULL, '{"x@y, z"}');
"""
EVERY = TablePlan("Src", "every", "Copy", "every")
USER_ARRAYS = TablePlan("Src", "user_arrays", "Copy", "user_arrays")


def rows_as_text(pg: PgCluster, db: str, schema: str, table: str) -> list[str]:
    name = '"' + schema + '"."' + table + '"'
    return [r[0] for r in fetch(pg, db, f"SELECT t::text FROM {name} t ORDER BY id")]


def run(pg: PgCluster, source_db: str, target_db: str, plans: list[TablePlan], **options: Any) -> Any:  # noqa: F811
    result = load(pg, source_db, target_db, plans, **options)
    assert result.status == "COMPLETED", result
    return result


def specs(pg: PgCluster, source_db: str, target_db: str) -> tuple[ConnectionSpec, ConnectionSpec]:  # noqa: F811
    return spec(pg, source_db), spec(pg, target_db)


def messages(findings: list[Finding], level: str) -> list[str]:
    return [f.message for f in findings if f.level == level]


# ---------------------------------------------------------------------------------------------
# Types


@pytest.mark.parametrize("force_text", [False, True])
def test_every_type_round_trips_exactly(
    pg: PgCluster,
    pg_db: str,
    target_db: str,
    formats,
    monkeypatch: pytest.MonkeyPatch,
    force_text: bool,  # noqa: F811
) -> None:
    execute(pg, pg_db, TYPES_DDL)
    if force_text:
        monkeypatch.setattr(paths, "_binary_ok", lambda *args: False)
    run(pg, pg_db, target_db, [EVERY, USER_ARRAYS])
    expected = {"Src.every": "text" if force_text else "binary", "Src.user_arrays": "text"}
    assert formats == expected
    for table in ("every", "user_arrays"):
        source_rows = rows_as_text(pg, pg_db, "Src", table)
        assert rows_as_text(pg, target_db, "Copy", table) == source_rows and len(source_rows) == 3
    got = fetch(pg, target_db, 'SELECT tv::text, g, k FROM "Copy".every WHERE id = 1')
    assert got == [("'brown':3 'fox':4 'jump':5 'quick':2", 5, 999)]


def test_domains_are_created_with_their_constraints_and_non_ascii_names(
    pg: PgCluster,
    pg_db: str,
    target_db: str,  # noqa: F811
) -> None:
    execute(pg, pg_db, TYPES_DDL)
    run(pg, pg_db, target_db, [EVERY, USER_ARRAYS])
    query = (
        "SELECT t.typname, format_type(t.typbasetype, t.typtypmod), t.typnotnull, t.typdefault, "
        "array(SELECT c.conname || ' ' || pg_get_constraintdef(c.oid) FROM pg_constraint c WHERE c.contypid = t.oid) "
        "FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = %s AND t.typtype = 'd' "
        "ORDER BY t.typname"
    )
    domains = fetch(pg, target_db, query, ("Copy",))
    assert domains[0] == ("Größe", "bigint", True, "1", ["größe_positiv CHECK ((VALUE > 0))"])
    assert domains[2][:2] == ("klein", '"Copy"."Größe"') and domains[3][:2] == ("laune", '"Copy".mood')
    assert domains[3][3] == "'ok'::\"Copy\".mood"
    source = [
        tuple(v.replace('"Src"', '"Copy"') if isinstance(v, str) else v for v in row)
        for row in fetch(pg, pg_db, query, ("Src",))
    ]
    assert domains == source and len(domains) == 4
    column_types = fetch(
        pg,
        target_db,
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = '\"Copy\".every'::regclass AND attname IN ('g', 'k', 'e', 'l') ORDER BY attnum",
    )
    assert column_types == [
        ("g", '"Copy"."Größe"'),
        ("k", '"Copy".klein'),
        ("e", '"Copy".email'),
        ("l", '"Copy".laune'),
    ]
    with pytest.raises(psycopg2.errors.CheckViolation):
        execute(pg, target_db, 'INSERT INTO "Copy".every (id, k) VALUES (10, 1000)')
    with pytest.raises(psycopg2.errors.CheckViolation):
        execute(pg, target_db, "INSERT INTO \"Copy\".user_arrays (id, ga) VALUES (10, '{0}')")


def test_an_existing_domain_is_accepted_only_over_the_same_base_type(
    pg: PgCluster,
    pg_db: str,
    target_db: str,  # noqa: F811
) -> None:
    execute(
        pg,
        pg_db,
        'CREATE DOMAIN "Maß" AS numeric(10,2) CHECK (VALUE >= 0); CREATE TABLE a (id int, v "Maß");'
        'CREATE TABLE b (id int, v "Maß"); INSERT INTO a VALUES (1, 2.5); INSERT INTO b VALUES (1, 3)',
    )
    execute(
        pg,
        target_db,
        'CREATE SCHEMA ok; CREATE DOMAIN ok."Maß" AS numeric(10,2);'
        'CREATE SCHEMA bad; CREATE DOMAIN bad."Maß" AS integer',
    )
    run(pg, pg_db, target_db, [TablePlan("public", "a", "ok", "a")])
    assert fetch(pg, target_db, "SELECT v::text FROM ok.a") == [("2.50",)]
    result = load(pg, pg_db, target_db, [TablePlan("public", "b", "bad", "b")])
    assert result.status == "FAILED"
    assert "bad.Maß exists in the target but is not a domain over numeric(10,2)" in (result.tables[0].error or "")


def test_an_extension_type_the_target_lacks_becomes_text_with_a_warning(
    pg: PgCluster,
    pg_db: str,
    target_db: str,  # noqa: F811
) -> None:
    execute(
        pg,
        pg_db,
        "CREATE EXTENSION ltree; CREATE TABLE paths (id int PRIMARY KEY, p ltree, ps ltree[]);"
        "INSERT INTO paths VALUES (1, 'top.science.astro', '{a.b,c}'), (2, NULL, NULL)",
    )
    plan = TablePlan("public", "paths", "copy", "paths")
    findings = table_findings(*specs(pg, pg_db, target_db), [plan], LoadOptions(), cdc=False)
    assert findings == {
        "public.paths": [
            Finding("warning", "public.paths.p (ltree) will be copied as text"),
            Finding("warning", "public.paths.ps (ltree[]) will be copied as text"),
        ]
    }
    run(pg, pg_db, target_db, [plan])
    assert fetch(
        pg,
        target_db,
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = 'copy.paths'::regclass AND attnum > 0 ORDER BY attnum",
    ) == [("integer",), ("text",), ("text[]",)]
    assert rows_as_text(pg, target_db, "copy", "paths") == rows_as_text(pg, pg_db, "public", "paths")


def test_an_extension_type_the_target_has_keeps_its_type(
    pg: PgCluster,
    pg_db: str,
    target_db: str,
    formats,  # noqa: F811
) -> None:
    execute(
        pg,
        pg_db,
        "CREATE EXTENSION cube; CREATE TABLE boxes (id int PRIMARY KEY, c cube);"
        "INSERT INTO boxes VALUES (1, '(1,2),(3,4)'), (2, '(5)')",
    )
    execute(pg, target_db, "CREATE EXTENSION cube")
    plan = TablePlan("public", "boxes", "copy", "boxes")
    assert table_findings(*specs(pg, pg_db, target_db), [plan], LoadOptions(), cdc=False) == {"public.boxes": []}
    run(pg, pg_db, target_db, [plan])
    assert formats == {"public.boxes": "binary"}
    assert fetch(pg, target_db, "SELECT pg_typeof(c)::text FROM copy.boxes LIMIT 1") == [("cube",)]
    assert rows_as_text(pg, target_db, "copy", "boxes") == rows_as_text(pg, pg_db, "public", "boxes")


# ---------------------------------------------------------------------------------------------
# Generated columns and defaults

GENERATED_DDL = """
CREATE FUNCTION only_on_source(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1 * 10';
CREATE TABLE lines (
    id int PRIMARY KEY, price numeric(10,2) NOT NULL, qty int NOT NULL,
    total numeric GENERATED ALWAYS AS (price * qty) STORED,
    tenfold int GENERATED ALWAYS AS (only_on_source(qty)) STORED
);
INSERT INTO lines (id, price, qty) VALUES (1, 2.50, 4), (2, 0.10, 3);
"""
LINES = TablePlan("public", "lines", "copy", "lines")


def generation(pg: PgCluster, db: str, table: str) -> list[tuple]:
    return fetch(
        pg,
        db,
        "SELECT a.attname, a.attgenerated, pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a "
        "LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
        "WHERE a.attrelid = %s::regclass AND a.attnum > 0 ORDER BY a.attnum",
        (table,),
    )


def test_generated_columns_are_carried_or_filled_from_the_source(
    pg: PgCluster,
    pg_db: str,
    target_db: str,  # noqa: F811
) -> None:
    execute(pg, pg_db, GENERATED_DDL)
    source, target = specs(pg, pg_db, target_db)
    carried = "generated column total: created GENERATED on the target with the same expression"
    plain = "generated column tenfold: a plain column filled from the source values"
    findings = table_findings(source, target, [LINES], LoadOptions(), cdc=False)["public.lines"]
    assert messages(findings, "warning") == [carried, plain] and not messages(findings, "error")
    cdc = table_findings(source, target, [LINES], LoadOptions(), cdc=True)["public.lines"]
    assert messages(cdc, "warning") == [carried]
    assert messages(cdc, "error") == [plain + "; CDC cannot keep it up to date (generated columns are not replicated)"]
    ddl = plan_target_ddl(source, target, LINES)[-1]
    assert '"total" numeric GENERATED ALWAYS AS ((price * (qty)::numeric)) STORED' in ddl
    assert '"tenfold" integer,' in ddl
    run(pg, pg_db, target_db, [LINES])
    assert generation(pg, target_db, "copy.lines") == [
        ("id", "", None),
        ("price", "", None),
        ("qty", "", None),
        ("total", "s", "(price * (qty)::numeric)"),
        ("tenfold", "", None),
    ]
    assert fetch(pg, target_db, "SELECT * FROM copy.lines ORDER BY id") == fetch(
        pg, pg_db, "SELECT * FROM lines ORDER BY id"
    )
    assert rows_as_text(pg, target_db, "copy", "lines") == ["(1,2.50,4,10.00,40)", "(2,0.10,3,0.30,30)"]


def test_defaults_are_carried_except_sequences_and_refused_ones(
    pg: PgCluster,
    pg_db: str,
    target_db: str,  # noqa: F811
) -> None:
    execute(
        pg,
        pg_db,
        """
        CREATE SCHEMA "Shop"; CREATE TYPE "Shop".mood AS ENUM ('sad', 'ok');
        CREATE FUNCTION "Shop".pick() RETURNS text LANGUAGE sql AS 'SELECT ''x''';
        CREATE TABLE "Shop".t (
            id serial PRIMARY KEY, ident bigint GENERATED ALWAYS AS IDENTITY,
            kind text NOT NULL DEFAULT 'store', at timestamptz DEFAULT now(), m "Shop".mood DEFAULT 'ok',
            p text DEFAULT "Shop".pick(), n numeric(5,1) DEFAULT 1.5);
        INSERT INTO "Shop".t DEFAULT VALUES;
    """,
    )
    plan = TablePlan("Shop", "t", "Copy", "t")
    source, target = specs(pg, pg_db, target_db)
    warnings = messages(table_findings(source, target, [plan], LoadOptions(), cdc=False)["Shop.t"], "warning")
    assert warnings[0] == (
        "default of id (nextval('\"Shop\".t_id_seq'::regclass)) is not carried: it uses a sequence (values come from "
        "the source)"
    )
    assert warnings[1].startswith('default of p ("Shop".pick()) is not carried: the target refuses it (')
    assert len(warnings) == 2
    run(pg, pg_db, target_db, [plan])
    assert generation(pg, target_db, '"Copy".t') == [
        ("id", "", None),
        ("ident", "", None),
        ("kind", "", "'store'::text"),
        ("at", "", "now()"),
        ("m", "", "'ok'::\"Copy\".mood"),
        ("p", "", None),
        ("n", "", "1.5"),
    ]
    assert fetch(
        pg,
        target_db,
        "SELECT attidentity FROM pg_attribute WHERE attrelid = '\"Copy\".t'::regclass AND attname = 'ident'",
    ) == [("",)]
    assert rows_as_text(pg, target_db, "Copy", "t") == rows_as_text(pg, pg_db, "Shop", "t")


# ---------------------------------------------------------------------------------------------
# Findings on existing targets


def test_findings_on_existing_targets_follow_policy_and_drift(
    pg: PgCluster,
    pg_db: str,
    target_db: str,  # noqa: F811
) -> None:
    execute(
        pg,
        pg_db,
        "CREATE TABLE t (id int PRIMARY KEY, a int, doc jsonb, added text DEFAULT 'x');"
        "CREATE TYPE address AS (street text); CREATE TABLE shapes (id int, addr address)",
    )
    execute(
        pg,
        target_db,
        "CREATE SCHEMA copy; CREATE TABLE copy.t (id int PRIMARY KEY, a bigint, doc integer,"
        " gone text NOT NULL); INSERT INTO copy.t VALUES (1, 1, 1, 'g')",
    )
    source, target = specs(pg, pg_db, target_db)
    plans = [TablePlan("public", "t", "copy", "t"), TablePlan("public", "shapes", "copy", "shapes")]

    def find(**options: Any) -> dict[str, list[Finding]]:
        return table_findings(source, target, plans, LoadOptions(**options), cdc=False)

    found = find(target_table_policy="append")
    assert found["public.t"] == [
        Finding("warning", "column added (text) will be added to copy.t"),
        Finding("warning", "column doc of copy.t will be changed from integer to jsonb"),
        Finding("warning", "column gone of copy.t is not in the source: NOT NULL will be dropped"),
    ]
    assert len(found["public.shapes"]) == 1 and found["public.shapes"][0].level == "error"
    assert "public.shapes.addr" in found["public.shapes"][0].message
    assert "'address'" in found["public.shapes"][0].message
    assert messages(find(target_table_policy="fail")["public.t"], "error") == [
        "target table copy.t is not empty; choose truncate, append or drop_recreate"
    ]
    ignored = find(target_table_policy="truncate", schema_drift="ignore")["public.t"]
    assert messages(ignored, "error") == [
        "column doc is jsonb in the source but integer in copy.t: the copy fails",
        "column gone of copy.t is NOT NULL without default and not in the source: every row fails",
    ]
    stopped = find(target_table_policy="truncate", schema_drift="stop_table")["public.t"]
    assert [f.level for f in stopped] == ["error"] and "new source column(s) added" in stopped[0].message
    assert find(target_table_policy="drop_recreate")["public.t"] == []
    assert fetch(pg, target_db, "SELECT count(*) FROM copy.t") == [(1,)]  # findings change nothing
    assert fetch(
        pg, target_db, "SELECT count(*) FROM pg_attribute WHERE attrelid = 'copy.t'::regclass AND attname = 'added'"
    ) == [(0,)]


def test_findings_raise_only_when_a_side_is_unreachable(pg: PgCluster, pg_db: str) -> None:
    with pytest.raises(StudioError):
        table_findings(spec(pg, pg_db), spec(pg, "no_such_db"), [LINES], LoadOptions(), cdc=False)
    missing = table_findings(
        spec(pg, pg_db), spec(pg, pg_db), [TablePlan("public", "nope", "c", "nope")], LoadOptions(), cdc=False
    )
    assert missing == {
        "public.nope": [Finding("error", f"source table public.nope does not exist in database {pg_db}")]
    }


# ---------------------------------------------------------------------------------------------
# Reconcile

RECONCILE_DDL = """
CREATE TABLE store (id int PRIMARY KEY, name text NOT NULL, old_col int NOT NULL, price int);
INSERT INTO store SELECT g, 'n' || g, g, g FROM generate_series(1, 3) g;
"""
STORE = TablePlan("public", "store", "copy", "store")


def test_reconcile_makes_the_target_fit_and_is_idempotent(pg: PgCluster, pg_db: str, target_db: str) -> None:  # noqa: F811
    execute(pg, pg_db, RECONCILE_DDL)
    run(pg, pg_db, target_db, [STORE])
    execute(
        pg,
        pg_db,
        """
        CREATE DOMAIN "Kundennummer_ü" AS bigint CHECK (VALUE > 0);
        ALTER TABLE store ADD COLUMN kind text NOT NULL DEFAULT 'store';
        ALTER TABLE store ADD COLUMN cust "Kundennummer_ü";
        ALTER TABLE store ADD COLUMN r double precision DEFAULT random();
        ALTER TABLE store ALTER COLUMN price TYPE numeric(12,2);
        ALTER TABLE store ADD COLUMN twice numeric GENERATED ALWAYS AS (price * 2) STORED;
        ALTER TABLE store DROP COLUMN old_col;
    """,
    )
    source, target = specs(pg, pg_db, target_db)
    with pytest.raises(ValidationFailed, match="new source column"):
        reconcile_table(source, target, STORE, drift="stop_table")
    assert reconcile_table(source, target, STORE, drift="ignore") == []
    notes = reconcile_table(source, target, STORE)
    assert notes == [
        "changed column price of copy.store from integer to numeric(12,2)",
        "added column kind text to copy.store with default 'store'::text (rows already there get it)",
        "added column cust Kundennummer_ü to copy.store",
        "added column r double precision to copy.store; its default random() is volatile: rows already there stay "
        "NULL, new rows get it",
        "added column twice numeric to copy.store (GENERATED with the source's expression)",
        "column old_col of copy.store is no longer in the source: dropped its NOT NULL",
    ]
    assert reconcile_table(source, target, STORE) == []  # idempotent
    assert fetch(pg, target_db, "SELECT id, kind, cust, r, twice::text, price::text FROM copy.store ORDER BY id") == [
        (1, "store", None, None, "2.00", "1.00"),
        (2, "store", None, None, "4.00", "2.00"),
        (3, "store", None, None, "6.00", "3.00"),
    ]
    with pytest.raises(psycopg2.errors.CheckViolation):
        execute(pg, target_db, "INSERT INTO copy.store (id, name, cust) VALUES (9, 'x', 0)")
    assert fetch(
        pg,
        target_db,
        "SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef WHERE adrelid = 'copy.store'::regclass ORDER BY adnum",
    ) == [("'store'::text",), ("random()",), ("(price * (2)::numeric)",)]
    with pytest.raises(ObjectNotFound):
        reconcile_table(source, target, TablePlan("public", "store", "copy", "absent"))


def test_a_restarted_load_adds_a_new_source_column_to_the_existing_target(
    pg: PgCluster,
    pg_db: str,
    target_db: str,  # noqa: F811
) -> None:
    execute(pg, pg_db, RECONCILE_DDL)
    run(pg, pg_db, target_db, [STORE])
    execute(
        pg,
        pg_db,
        "ALTER TABLE store ADD COLUMN kind text NOT NULL DEFAULT 'store';UPDATE store SET kind = 'web' WHERE id = 2",
    )
    stopped = load(pg, pg_db, target_db, [STORE], target_table_policy="truncate", schema_drift="stop_table")
    assert stopped.status == "FAILED" and "new source column(s) kind" in (stopped.tables[0].error or "")
    run(pg, pg_db, target_db, [STORE], target_table_policy="truncate")
    assert rows_as_text(pg, target_db, "copy", "store") == rows_as_text(pg, pg_db, "public", "store")
    execute(pg, pg_db, "ALTER TABLE store ADD COLUMN extra int DEFAULT 7")
    run(pg, pg_db, target_db, [STORE], target_table_policy="truncate", schema_drift="ignore")
    assert fetch(
        pg, target_db, "SELECT count(*) FROM pg_attribute WHERE attrelid = 'copy.store'::regclass AND attname = 'extra'"
    ) == [(0,)]


def test_loading_into_an_existing_table_with_generated_columns_leaves_them_out(
    pg: PgCluster,
    pg_db: str,
    target_db: str,  # noqa: F811
) -> None:
    execute(pg, pg_db, GENERATED_DDL)
    execute(
        pg,
        target_db,
        "CREATE SCHEMA copy; CREATE TABLE copy.lines (id int PRIMARY KEY, price numeric(10,2),"
        " qty int, total numeric GENERATED ALWAYS AS (price * qty + 1) STORED, tenfold int)",
    )
    run(pg, pg_db, target_db, [LINES], target_table_policy="append")
    assert fetch(pg, target_db, "SELECT id, total::text, tenfold FROM copy.lines ORDER BY id") == [
        (1, "11.00", 40),
        (2, "1.30", 30),
    ]


def test_requalify_renames_type_references_outside_literals() -> None:
    from core.fullload.pgsql import requalify

    renames = {'"Shop".mood': '"Copy"."mood"', "public.mood": '"Copy"."mood"'}
    assert requalify("'ok'::\"Shop\".mood", renames) == '\'ok\'::"Copy"."mood"'
    untouched = "'\"Shop\".mood'::text || public.mood_x(1)"
    assert requalify(untouched, renames) == untouched
    assert requalify("ARRAY['a''b'::public.mood]", renames) == "ARRAY['a''b'::\"Copy\".\"mood\"]"
    assert requalify(None, renames) is None and requalify("1", {}) == "1"


def test_sqlserver_targets_get_plain_columns_for_generated_ones(pg: PgCluster, pg_db: str) -> None:
    from core.fullload import mssql
    from core.fullload.prepare import source_specs
    from tests.core.fullload.test_fullload import mssql_spec

    execute(pg, pg_db, GENERATED_DDL + "ALTER TABLE lines ADD COLUMN note text DEFAULT 'n';")
    found = table_findings(spec(pg, pg_db), mssql_spec(), [LINES], LoadOptions(), cdc=True)["public.lines"]
    assert messages(found, "error") == [
        f"generated column {c}: a plain column filled from the source values; CDC cannot keep it up to date "
        "(generated columns are not replicated)"
        for c in ("total", "tenfold")
    ]
    assert messages(found, "warning") == [
        "default of note ('n'::text) is not carried: defaults are not carried to SQL Server"
    ]
    table = source_specs(spec(pg, pg_db), "sqlserver", [LINES])[0]
    assert mssql.create_table_statement(table) == (
        "CREATE TABLE [copy].[lines] ([id] int NOT NULL, [price] decimal(10,2) NOT NULL, [qty] int NOT NULL, "
        "[total] decimal(38,10) NULL, [tenfold] int NULL, [note] nvarchar(max) NULL, PRIMARY KEY ([id]))"
    )
