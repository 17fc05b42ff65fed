"""PostgresConnector against a real PostgreSQL cluster: connect errors, discovery, details, load order."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import psycopg2
import pytest

from core.connectors.base import ConnectionSpec
from core.connectors.postgres import PostgresConnector, translate_error
from core.errors import (
    AuthFailed,
    ConnectionRefused,
    ConnectorError,
    ConnectTimeout,
    DatabaseNotFound,
    ObjectNotFound,
    QueryFailed,
    UnknownHost,
)
from tests.pgcluster import PgCluster, free_port


def _spec(pg: PgCluster, **overrides: object) -> ConnectionSpec:
    fields: dict[str, object] = {
        "kind": "postgresql",
        "host": pg.host,
        "port": pg.port,
        "database": "postgres",
        "username": pg.user,
        "password": pg.password,
        "connect_timeout_s": 5,
    }
    fields.update(overrides)
    return ConnectionSpec(**fields)  # type: ignore[arg-type]


def _connector(pg: PgCluster, **overrides: object) -> PostgresConnector:
    return PostgresConnector(_spec(pg, **overrides))


def _run(pg: PgCluster, db: str, statements: str) -> None:
    conn = pg.connect(db)
    try:
        with conn.cursor() as cur:
            cur.execute(statements)
    finally:
        conn.close()


def _fails(connector: PostgresConnector, error: type[ConnectorError], password: str) -> ConnectorError:
    with pytest.raises(error) as info:
        connector.test()
    message = str(info.value)
    assert message
    assert password not in message
    assert info.value.__cause__ is None or password not in str(info.value.__cause__)
    return info.value


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(2)
    for s in accepted:
        s.close()
    server.close()


# --- test() and error translation ---------------------------------------------------------------


def test_test_reports_version_and_latency(pg: PgCluster) -> None:
    result = _connector(pg).test()
    assert result.server_version.startswith("PostgreSQL ")
    assert result.server_version.split()[1][0].isdigit()
    assert 0 < result.latency_ms < 5000


def test_wrong_password_is_auth_failed(pg: PgCluster) -> None:
    wrong = "not-the-Pw-42"
    err = _fails(_connector(pg, password=wrong), AuthFailed, wrong)
    assert f"password authentication failed for user {pg.user}" in str(err)
    assert pg.password not in str(err)


def test_unknown_host(pg: PgCluster) -> None:
    err = _fails(_connector(pg, host="no-such-host.invalid"), UnknownHost, pg.password)
    assert "unknown host 'no-such-host.invalid'" in str(err)


def test_connection_refused(pg: PgCluster) -> None:
    port = free_port()
    err = _fails(_connector(pg, port=port), ConnectionRefused, pg.password)
    assert f"127.0.0.1:{port}" in str(err)
    assert err.transient


def test_connect_timeout(pg: PgCluster, silent_server: int) -> None:
    started = time.monotonic()
    err = _fails(_connector(pg, port=silent_server, connect_timeout_s=1), ConnectTimeout, pg.password)
    assert time.monotonic() - started < 4
    assert "1 s" in str(err)
    assert f"127.0.0.1:{silent_server}" in str(err)


def test_unknown_database(pg: PgCluster) -> None:
    err = _fails(_connector(pg, database="no_such_db"), DatabaseNotFound, pg.password)
    assert "no_such_db" in str(err)


def test_discovery_in_unknown_database_names_that_database(pg: PgCluster) -> None:
    with pytest.raises(DatabaseNotFound, match="missing_db"):
        _connector(pg).list_schemas("missing_db")


def test_options_are_passed_to_libpq(pg: PgCluster) -> None:
    conn = _connector(pg, options={"application_name": "custom-app", "sslmode": "disable"})
    assert conn.test().server_version.startswith("PostgreSQL")
    with pytest.raises(QueryFailed, match="SSL"):
        _connector(pg, options={"sslmode": "require"}).test()


def test_translate_error_unit() -> None:
    spec = ConnectionSpec(
        kind="postgresql",
        host="db.example",
        port=5433,
        database="app",
        username="alice",
        password="hunter2",
        connect_timeout_s=7,
    )
    cases = [
        (
            'connection to server at "1.2.3.4", port 5433 failed: FATAL:  password authentication failed '
            'for user "alice"',
            AuthFailed,
            "password authentication failed for user alice",
        ),
        (
            'could not translate host name "db.example" to address: Name or service not known',
            UnknownHost,
            "unknown host 'db.example'",
        ),
        (
            'connection to server at "1.2.3.4", port 5433 failed: Connection refused\n\tIs the server running',
            ConnectionRefused,
            "connection refused by db.example:5433",
        ),
        (
            'connection to server at "1.2.3.4", port 5433 failed: timeout expired',
            ConnectTimeout,
            "timeout after 7 s connecting to db.example:5433",
        ),
        (
            'connection to server at "1.2.3.4", port 5433 failed: FATAL:  database "app" does not exist',
            DatabaseNotFound,
            "database 'app' does not exist",
        ),
        ("something odd happened with hunter2", QueryFailed, "something odd happened with ***"),
    ]
    for text, cls, expected in cases:
        err = translate_error(psycopg2.OperationalError(text), spec)
        assert type(err) is cls, text
        assert expected in str(err)
        assert "hunter2" not in str(err)


def test_query_errors_use_pgcode(pg: PgCluster, pg_db: str) -> None:
    spec = _spec(pg, database=pg_db)
    conn = pg.connect(pg_db)
    try:
        with conn.cursor() as cur:
            with pytest.raises(psycopg2.Error) as missing:
                cur.execute("SELECT * FROM no_such_table")
            with pytest.raises(psycopg2.Error) as syntax:
                cur.execute("SELEC 1")
    finally:
        conn.close()
    assert isinstance(translate_error(missing.value, spec), ObjectNotFound)
    err = translate_error(syntax.value, spec)
    assert isinstance(err, QueryFailed)
    assert "syntax error" in str(err)


# --- discovery ----------------------------------------------------------------------------------


def test_list_databases_includes_new_database(pg: PgCluster, pg_db: str) -> None:
    dbs = {d.name: d for d in _connector(pg).list_databases()}
    assert pg_db in dbs
    assert "postgres" in dbs
    assert "template0" not in dbs and "template1" not in dbs
    assert dbs[pg_db].size_bytes and dbs[pg_db].size_bytes > 0


def test_list_schemas_counts_tables_in_chosen_database(pg: PgCluster, pg_db: str) -> None:
    _run(
        pg,
        pg_db,
        """
        CREATE SCHEMA sales;
        CREATE TABLE sales.a (id int); CREATE TABLE sales.b (id int);
        CREATE TABLE public.c (id int);
        CREATE TABLE sales.p (id int) PARTITION BY RANGE (id);
        CREATE TABLE sales.p1 PARTITION OF sales.p FOR VALUES FROM (0) TO (10);
    """,
    )
    schemas = {s.name: s.table_count for s in _connector(pg).list_schemas(pg_db)}
    assert schemas == {"public": 1, "sales": 3}


def test_list_tables_in_non_default_database(pg: PgCluster, pg_db: str) -> None:
    _run(
        pg,
        pg_db,
        """
        CREATE TABLE fresh (id int PRIMARY KEY, v text);
        INSERT INTO fresh SELECT g, 'x' FROM generate_series(1, 1234) g;
        CREATE TABLE nopk (v text);
        INSERT INTO nopk SELECT 'y' FROM generate_series(1, 10) g;
        CREATE TABLE empty_t (id int);
    """,
    )
    connector = _connector(pg)  # the spec points at "postgres"; discovery is asked about pg_db
    tables = {t.name: t for t in connector.list_tables(pg_db, "public")}
    assert set(tables) == {"fresh", "nopk", "empty_t"}
    assert tables["fresh"].row_count == 1234 and tables["fresh"].row_count_exact
    assert tables["fresh"].has_primary_key and not tables["nopk"].has_primary_key
    assert tables["nopk"].row_count == 10
    assert tables["empty_t"].row_count == 0
    assert tables["fresh"].size_bytes > 0
    assert tables["fresh"].schema == "public"


def test_estimates_after_analyze(pg: PgCluster, pg_db: str) -> None:
    _run(
        pg,
        pg_db,
        """
        CREATE TABLE t (id int PRIMARY KEY, v text);
        INSERT INTO t SELECT g, repeat('x', 50) FROM generate_series(1, 5000) g;
        ANALYZE t;
        CREATE TABLE never (id int);
        INSERT INTO never SELECT generate_series(1, 77);
    """,
    )
    tables = {t.name: t for t in _connector(pg).list_tables(pg_db, "public")}
    assert tables["t"].row_count == 5000
    assert not tables["t"].row_count_exact  # analyzed: the estimate is used, no count(*)
    assert tables["never"].row_count == 77 and tables["never"].row_count_exact

    # Rows added after ANALYZE: the estimate scales with the current number of pages.
    _run(pg, pg_db, "INSERT INTO t SELECT g, repeat('x', 50) FROM generate_series(5001, 10000) g")
    estimate = {t.name: t for t in _connector(pg).list_tables(pg_db, "public")}["t"].row_count
    assert 9000 <= estimate <= 11000


def test_exact_counts(pg: PgCluster, pg_db: str) -> None:
    _run(
        pg,
        pg_db,
        """
        CREATE SCHEMA "My Schema";
        CREATE TABLE "My Schema"."Order" (id int);
        INSERT INTO "My Schema"."Order" SELECT generate_series(1, 42);
        ANALYZE "My Schema"."Order";
        DELETE FROM "My Schema"."Order" WHERE id > 40;
        CREATE TABLE "My Schema"."select" (id int);
    """,
    )
    connector = _connector(pg)
    tables = {t.name: t for t in connector.list_tables(pg_db, "My Schema", exact=True)}
    assert tables["Order"].row_count == 40 and tables["Order"].row_count_exact
    assert tables["select"].row_count == 0 and tables["select"].row_count_exact
    assert connector.count_rows(pg_db, "My Schema", "Order") == 40


def test_partitioned_table_counts_its_partitions(pg: PgCluster, pg_db: str) -> None:
    _run(
        pg,
        pg_db,
        """
        CREATE TABLE m (id int) PARTITION BY RANGE (id);
        CREATE TABLE m1 PARTITION OF m FOR VALUES FROM (0) TO (100);
        CREATE TABLE m2 PARTITION OF m FOR VALUES FROM (100) TO (200);
        INSERT INTO m SELECT generate_series(0, 149);
    """,
    )
    tables = _connector(pg).list_tables(pg_db, "public")
    assert [t.name for t in tables] == ["m"]
    assert tables[0].row_count == 150
    assert tables[0].size_bytes > 0


def test_count_rows_missing_table(pg: PgCluster, pg_db: str) -> None:
    with pytest.raises(ObjectNotFound, match=f"public.nope does not exist in database {pg_db}"):
        _connector(pg).count_rows(pg_db, "public", "nope")


def test_list_tables_missing_schema(pg: PgCluster, pg_db: str) -> None:
    with pytest.raises(ObjectNotFound, match="schema nope"):
        _connector(pg).list_tables(pg_db, "nope")


def test_list_500_tables_fast(pg: PgCluster, pg_db: str) -> None:
    _run(
        pg,
        pg_db,
        """
        CREATE SCHEMA wide;
        DO $$ BEGIN
          FOR i IN 1..500 LOOP
            EXECUTE format('CREATE TABLE wide.t%s (id int PRIMARY KEY, v text)', i);
            EXECUTE format('INSERT INTO wide.t%s VALUES (1, %L)', i, 'x');
          END LOOP;
        END $$;
    """,
    )
    connector = _connector(pg)
    started = time.perf_counter()
    tables = connector.list_tables(pg_db, "wide")
    elapsed = time.perf_counter() - started
    assert len(tables) == 500
    assert all(t.row_count == 1 and t.has_primary_key for t in tables)
    assert elapsed < 2.0, f"list_tables took {elapsed:.2f} s for 500 tables"


# --- table detail -------------------------------------------------------------------------------

_SHOP = """
    CREATE TABLE customer (
        id int PRIMARY KEY,
        region text NOT NULL,
        code varchar(20),
        CONSTRAINT customer_region_code UNIQUE (region, code)
    );
    CREATE TABLE "Order" (
        shop int NOT NULL,
        "select" int NOT NULL,
        customer_id int REFERENCES customer (id),
        total numeric(10,2) NOT NULL DEFAULT 0,
        note varchar(20),
        created timestamptz DEFAULT now(),
        region text,
        code varchar(20),
        PRIMARY KEY ("select", shop),
        CONSTRAINT order_customer_rc FOREIGN KEY (code, region) REFERENCES customer (code, region)
    );
    CREATE INDEX order_lower_note ON "Order" (lower(note));
    CREATE TABLE line (
        id serial PRIMARY KEY,
        o_select int, o_shop int,
        FOREIGN KEY (o_select, o_shop) REFERENCES "Order" ("select", shop)
    );
    INSERT INTO customer VALUES (1, 'eu', 'a');
    INSERT INTO "Order" VALUES (1, 1, 1, 9.5, 'n', now(), 'eu', 'a'), (1, 2, 1, 3, NULL, now(), NULL, NULL);
"""


def test_table_detail(pg: PgCluster, pg_db: str) -> None:
    _run(pg, pg_db, _SHOP)
    d = _connector(pg).table_detail(pg_db, "public", "Order")
    assert (d.schema, d.name) == ("public", "Order")
    cols = {c.name: c for c in d.columns}
    assert [c.name for c in d.columns][:3] == ["shop", "select", "customer_id"]
    assert [c.position for c in d.columns] == list(range(1, len(d.columns) + 1))
    assert cols["total"].type == "numeric(10,2)" and not cols["total"].nullable and cols["total"].default == "0"
    assert cols["note"].type == "character varying(20)" and cols["note"].nullable and cols["note"].default is None
    assert cols["created"].type == "timestamp with time zone" and cols["created"].default == "now()"
    assert d.primary_key == ["select", "shop"]
    assert d.row_count == 2
    assert d.size_bytes > 0

    out = {fk.name: fk for fk in d.foreign_keys}
    assert set(out) == {"Order_customer_id_fkey", "order_customer_rc"}
    multi = out["order_customer_rc"]
    assert (multi.columns, multi.referenced_table, multi.referenced_columns) == (
        ["code", "region"],
        "customer",
        ["code", "region"],
    )
    assert out["Order_customer_id_fkey"].referenced_columns == ["id"]

    assert len(d.referenced_by) == 1
    back = d.referenced_by[0]
    assert (back.table, back.columns, back.referenced_table, back.referenced_columns) == (
        "line",
        ["o_select", "o_shop"],
        "Order",
        ["select", "shop"],
    )

    idx = {i.name: i for i in d.indexes}
    assert idx["Order_pkey"].primary and idx["Order_pkey"].unique
    assert idx["Order_pkey"].columns == ["select", "shop"]
    assert idx["order_lower_note"].columns == ["lower(note::text)"]
    assert not idx["order_lower_note"].unique


def test_table_detail_unique_index_and_serial_default(pg: PgCluster, pg_db: str) -> None:
    _run(pg, pg_db, _SHOP)
    connector = _connector(pg)
    customer = connector.table_detail(pg_db, "public", "customer")
    unique = {i.name: i for i in customer.indexes}["customer_region_code"]
    assert unique.unique and not unique.primary and unique.columns == ["region", "code"]
    assert {fk.table for fk in customer.referenced_by} == {"Order"}
    line = connector.table_detail(pg_db, "public", "line")
    assert line.columns[0].default == "nextval('line_id_seq'::regclass)"
    assert line.columns[0].type == "integer" and not line.columns[0].nullable


def test_table_detail_missing_table(pg: PgCluster, pg_db: str) -> None:
    with pytest.raises(ObjectNotFound, match=f"table public.ghost does not exist in database {pg_db}"):
        _connector(pg).table_detail(pg_db, "public", "ghost")


def test_foreign_keys_of_schema(pg: PgCluster, pg_db: str) -> None:
    _run(pg, pg_db, _SHOP)
    fks = _connector(pg).foreign_keys(pg_db, "public")
    assert sorted((fk.table, fk.referenced_table) for fk in fks) == [
        ("Order", "customer"),
        ("Order", "customer"),
        ("line", "Order"),
    ]
    line_fk = next(fk for fk in fks if fk.table == "line")
    assert line_fk.columns == ["o_select", "o_shop"] and line_fk.referenced_columns == ["select", "shop"]


# --- dependencies -------------------------------------------------------------------------------


def test_dependencies_diamond_and_chain(pg: PgCluster, pg_db: str) -> None:
    _run(
        pg,
        pg_db,
        """
        CREATE TABLE root (id int PRIMARY KEY, parent int REFERENCES root (id));
        CREATE TABLE left_t (id int PRIMARY KEY, root_id int REFERENCES root (id));
        CREATE TABLE right_t (id int PRIMARY KEY, root_id int REFERENCES root (id));
        CREATE TABLE bottom (id int PRIMARY KEY,
                             l int REFERENCES left_t (id), r int REFERENCES right_t (id));
        CREATE TABLE leaf (id int PRIMARY KEY, b int REFERENCES bottom (id));
    """,
    )
    deps = _connector(pg).dependencies(pg_db, "public", ["leaf", "bottom", "right_t", "left_t", "root"])
    assert deps.cycles == []
    assert deps.levels == [["root"], ["left_t", "right_t"], ["bottom"], ["leaf"]]
    pos = {t: i for i, t in enumerate(deps.order)}
    assert pos["root"] < pos["left_t"] < pos["bottom"] < pos["leaf"]
    assert pos["root"] < pos["right_t"] < pos["bottom"]
    assert all(e["table"] != e["references"] for e in deps.edges)  # self-reference ignored


def test_dependencies_cycle(pg: PgCluster, pg_db: str) -> None:
    _run(
        pg,
        pg_db,
        """
        CREATE TABLE base (id int PRIMARY KEY);
        CREATE TABLE a (id int PRIMARY KEY, b_id int, base_id int REFERENCES base (id));
        CREATE TABLE b (id int PRIMARY KEY, a_id int REFERENCES a (id));
        ALTER TABLE a ADD FOREIGN KEY (b_id) REFERENCES b (id);
    """,
    )
    deps = _connector(pg).dependencies(pg_db, "public", ["a", "b", "base"])
    assert deps.cycles == [["a", "b"]]
    assert deps.order[0] == "base"
    assert set(deps.order[1:]) == {"a", "b"}
