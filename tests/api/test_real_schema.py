"""Real schemas replicate: a pagila-like schema, FULL_LOAD_AND_CDC under an application-like writer.

Through a real app process: the pipeline takes every table of the schema ("*"); a column with a
default is added mid-load, a column whose type is a non-ASCII domain over bigint and another
defaulted column while streaming, a partition is created and another attached later; the app
is SIGKILLed mid-stream and started again. Afterwards every table but the keyless one equals the
source exactly (ordered content over the source's columns), the keyless one is FAILED with its
reason while the pipeline is RUNNING, `payment` is one target table and no view was copied.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tests import realschema as rs
from tests.appprocess import AppProcess
from tests.pgcluster import PgCluster

SRC = "rental"
TGT = "rental_copy"
SYNCED = tuple(t for t in rs.TABLES if t != rs.KEYLESS)
JULY, AUGUST = datetime(2022, 7, 1, tzinfo=UTC), datetime(2022, 8, 1, tzinfo=UTC)


class Api:
    """The app's REST API with an admin token (fetched again after a restart)."""

    def __init__(self, app: AppProcess) -> None:
        self.app = app
        self.headers = app.token()

    def refresh(self) -> None:
        self.headers = self.app.token()

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.app.base}/api/v1{path}", headers=self.headers, timeout=30)

    def post(self, path: str, body: dict | None = None) -> httpx.Response:
        return httpx.post(f"{self.app.base}/api/v1{path}", headers=self.headers, json=body, timeout=60)

    def status(self, pid: int) -> dict:
        r = self.get(f"/pipelines/{pid}/status")
        assert r.status_code == 200, r.text
        return r.json()

    def log_tail(self, lines: int = 40) -> str:
        path = Path(self.app.log_path)
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def table_row(rows: list[dict], name: str) -> dict:
    found = [r for r in rows if r["source"] in (f"{SRC}.{name}", name)]
    assert found, f"{SRC}.{name} is not among {[r['source'] for r in rows]}"
    return found[0]


def wait_state(api: Api, pid: int, states: set[str], timeout: float = 90) -> dict:
    """Poll the status until its state is one of `states`; ERROR (when not awaited) fails at once."""
    deadline = time.monotonic() + timeout
    while True:
        status = api.status(pid)
        if status["state"] in states:
            return status
        assert status["state"] != "ERROR", f"pipeline in ERROR: {status}\n--- app log ---\n{api.log_tail()}"
        assert time.monotonic() < deadline, f"not {states} after {timeout} s: {status}"
        time.sleep(0.3)


def execute(pg: PgCluster, db: str, statement: str, params: tuple | None = None) -> list[tuple]:
    conn = pg.connect(db)
    try:
        with conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def target_relations(pg: PgCluster, db: str) -> dict[str, str]:
    """relname -> relkind of every relation of the target schema."""
    return dict(
        execute(
            pg,
            db,
            "SELECT c.relname, c.relkind::text FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind IN "
            "('r', 'p', 'v', 'm', 'f')",
            (TGT,),
        )
    )


def make_pipeline(api: Api, pg: PgCluster, source_db: str, target_db: str) -> int:
    ids = []
    for name, db, usage in (("rental source", source_db, "source"), ("rental target", target_db, "target")):
        r = api.post(
            "/connections",
            {
                "name": name,
                "kind": "postgresql",
                "usage": usage,
                "host": pg.host,
                "port": pg.port,
                "database": db,
                "username": pg.user,
                "password": pg.password,
            },
        )
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    r = api.post(
        "/pipelines",
        {
            "name": "rental replica",
            "source_connection_id": ids[0],
            "target_connection_id": ids[1],
            "source_schema": SRC,
            "target_schema": TGT,
            "tables": ["*"],
            "mode": "FULL_LOAD_AND_CDC",
            "on_table_error": "continue",
            "schema_drift": "propagate_columns",
        },
    )
    assert r.status_code == 201, r.text
    assert set(r.json()["tables"]) == {"*"}
    return r.json()["id"]


def check_validation(report: dict) -> None:
    """The keyless table is an error on its own row, the generated column is explained, views are not tables."""
    sources = {r["source"] for r in report["tables"]}
    assert sources == {f"{SRC}.{t}" for t in rs.TABLES}, sources  # no views, no matview, no partitions
    keyless = table_row(report["tables"], rs.KEYLESS)
    assert any("primary key" in e.lower() for e in keyless.get("errors", [])), (
        f"the keyless table's row carries no error of its own: {keyless}; report errors: {report['errors']}"
    )
    table, column = rs.GENERATED
    generated = table_row(report["tables"], table)
    said = generated.get("warnings", []) + generated.get("errors", []) + report["warnings"]
    assert any(column in w and "generated" in w.lower() for w in said), (
        f"how the generated column {table}.{column} is handled is not reported: {generated}; {report['warnings']}"
    )
    assert not generated.get("errors"), generated
    for name in SYNCED:
        row = table_row(report["tables"], name)
        assert not row.get("errors"), f"{name} should be replicable: {row}"
    assert report.get("startable") is True, f"a table-level error must not block the start: {report}"


def add_channel_mid_load(api: Api, pg: PgCluster, db: str, pid: int, writer: rs.Writer) -> dict:
    """Once customer is copied and the load still runs (payment, the biggest table, comes last),
    add customer.channel with a default; returns the status seen just before."""
    deadline = time.monotonic() + 60
    while True:
        status = api.status(pid)
        copied = {t["source"]: t["status"] for t in status["tables"]}
        loading = status["state"] == "STARTING" or status["full_load_status"] == "RUNNING"
        if loading and copied.get(f"{SRC}.customer") == "COMPLETED" and copied.get(f"{SRC}.payment") != "COMPLETED":
            break
        assert status["state"] in ("NOT_STARTED", "STARTING"), f"the load window was missed: {status}"
        assert time.monotonic() < deadline, status
        time.sleep(0.02)
    execute(pg, db, f"ALTER TABLE {SRC}.customer ADD COLUMN channel text DEFAULT 'store'")
    writer.use_channel = True
    return status


def assert_keyless_refused(status: dict) -> None:
    keyless = table_row(status["tables"], rs.KEYLESS)
    assert keyless["status"] == "FAILED", f"the keyless table should be FAILED: {keyless}; {status}"
    assert "primary key" in (keyless.get("error") or "").lower(), keyless
    for name in SYNCED:
        row = table_row(status["tables"], name)
        assert row["status"] != "FAILED" and not row.get("error"), f"{name} should stream: {row}"


def wait_converged(
    api: Api,
    pid: int,
    source,
    target,
    timeout: float = 60,  # noqa: ANN001
    tables: tuple[str, ...] = SYNCED,
) -> None:
    """Until every table equals the source; on timeout fail with the differences and the slot."""
    deadline = time.monotonic() + timeout
    while True:
        diffs = rs.differences(source, target, SRC, TGT, tables)
        if not diffs:
            return
        if time.monotonic() > deadline:
            with source.cursor() as cur:
                cur.execute(
                    "SELECT slot_name, active, confirmed_flush_lsn::text, pg_current_wal_lsn()::text "
                    "FROM pg_replication_slots"
                )
                slots = cur.fetchall()
            pytest.fail(
                f"target did not converge in {timeout} s; slots {slots}; status {api.status(pid)}\n"
                + "\n".join(diffs)
                + f"\n--- app log ---\n{api.log_tail()}"
            )
        time.sleep(0.5)


def test_real_schema_full_load_and_cdc_under_writer_with_drift_partitions_and_crash(
    pg: PgCluster, pg_db: str, tmp_path
) -> None:
    target_db = pg_db + "_tgt"
    pg.create_database(target_db)
    source, target = pg.connect(pg_db), pg.connect(target_db)
    seeded = rs.create_schema(source, SRC)
    app = AppProcess(tmp_path / "data", tmp_path / "app.log")
    writer = rs.Writer(pg.dsn(pg_db), SRC)
    try:
        app.start()
        api = Api(app)
        pid = make_pipeline(api, pg, pg_db, target_db)
        r = api.post(f"/pipelines/{pid}/validate")
        assert r.status_code == 200, r.text
        check_validation(r.json())

        writer.start()
        time.sleep(0.5)
        r = api.post(f"/pipelines/{pid}/start")
        assert r.status_code == 200, r.text  # a table-level error does not block the start (on_table_error)
        seen = add_channel_mid_load(api, pg, pg_db, pid, writer)
        loading = [t["source"] for t in seen["tables"] if t["status"] != "COMPLETED"]
        status = wait_state(api, pid, {"RUNNING"})
        assert status["full_load_status"] == "COMPLETED" and status["cdc_status"] == "RUNNING", status

        # While streaming: a column whose type is a non-ASCII domain over bigint, another with a default.
        time.sleep(1.0)
        execute(
            pg,
            pg_db,
            f'CREATE DOMAIN {SRC}."points_fidélité" AS bigint CHECK (VALUE >= 0);'
            f'ALTER TABLE {SRC}.customer ADD COLUMN loyalty_points {SRC}."points_fidélité"',
        )
        writer.use_points = True
        execute(pg, pg_db, f"ALTER TABLE {SRC}.film ADD COLUMN origin text NOT NULL DEFAULT 'catalog'")
        time.sleep(1.0)
        # Later partitions: one created as a partition, one created alone and attached.
        execute(pg, pg_db, rs.partition_ddl(SRC, JULY, source))
        writer.add_month(JULY)
        execute(
            pg,
            pg_db,
            f"CREATE TABLE {SRC}.payment_p2022_08 (LIKE {SRC}.payment INCLUDING DEFAULTS);"
            f"ALTER TABLE {SRC}.payment ATTACH PARTITION {SRC}.payment_p2022_08 "
            "FOR VALUES FROM ('2022-08-01 00:00+00') TO ('2022-09-01 00:00+00')",
        )
        writer.add_month(AUGUST)
        time.sleep(2.0)
        status = api.status(pid)
        assert status["state"] == "RUNNING", f"{status}\n--- app log ---\n{api.log_tail()}"

        app.kill()  # mid-stream; the writer keeps committing while the app is down
        time.sleep(1.5)
        app.start()
        api.refresh()
        wait_state(api, pid, {"RUNNING"})
        time.sleep(2.0)
        writer.stop()
        assert not writer.is_alive()
        assert writer.errors == [], f"the source refused the application's writes: {writer.errors[:5]}"
        counts = writer.counts
        for month in ("2022_01", "2022_06", "2022_07", "2022_08", f"{rs.DEFAULT_YEAR}_01"):
            assert counts[f"payment_in_{month}"] > 0 and counts[f"moved_into_{month}"] > 0, (month, dict(counts))
        assert counts["delete_payment"] > 0 and counts["edit_customer"] > 0 and counts["edit_film"] > 0

        wait_converged(api, pid, source, target)
        rs.assert_same(source, target, SRC, TGT, SYNCED)
        # The defaults reached the rows that existed before the columns did (assert_same says so too).
        assert execute(
            pg,
            target_db,
            f"SELECT count(*) FROM {TGT}.customer WHERE customer_id <= 600 "
            "AND channel IN ('store', 'web', 'app', 'phone')",
        ) == [(600,)]
        assert execute(pg, target_db, f"SELECT count(*) FROM {TGT}.film WHERE origin = 'catalog'") == [(1000,)]
        assert execute(pg, target_db, f"SELECT count(*) FROM {TGT}.customer WHERE loyalty_points > 0")[0][0] > 0

        status = api.status(pid)
        assert status["state"] == "RUNNING", status
        assert_keyless_refused(status)
        relations = target_relations(pg, target_db)
        assert relations.get("payment") == "r", relations  # one table for the partitioned parent
        assert not [n for n in relations if n.startswith("payment_")], f"partitions copied: {relations}"
        assert not set(relations) & set(rs.VIEWS + rs.MATERIALIZED_VIEWS), f"views copied: {relations}"
        assert set(relations) <= set(rs.TABLES), relations
        print(f"\nchannel added while loading {loading}; seeded {seeded}; writer {dict(counts)}")

        assert httpx.delete(f"{app.base}/api/v1/pipelines/{pid}", headers=api.headers, timeout=60).status_code == 204
        assert execute(pg, pg_db, "SELECT slot_name FROM pg_replication_slots") == []
    finally:
        writer.stop()
        app.terminate()
        source.close()
        target.close()
        pg.drop_database(target_db)


def test_a_refused_table_is_retried_alone_once_it_has_a_key(pg: PgCluster, pg_db: str, tmp_path) -> None:
    """The keyless table, given the primary key its message asks for, is retried alone and then streams too."""
    target_db = pg_db + "_tgt"
    pg.create_database(target_db)
    source, target = pg.connect(pg_db), pg.connect(target_db)
    rs.create_schema(source, SRC)
    app = AppProcess(tmp_path / "data", tmp_path / "app.log")
    writer = rs.Writer(pg.dsn(pg_db), SRC, seed=11)
    try:
        app.start()
        api = Api(app)
        pid = make_pipeline(api, pg, pg_db, target_db)
        writer.start()
        r = api.post(f"/pipelines/{pid}/start")
        assert r.status_code == 200, r.text
        assert_keyless_refused(wait_state(api, pid, {"RUNNING"}))
        execute(
            pg,
            pg_db,
            f"ALTER TABLE {SRC}.{rs.KEYLESS} ADD COLUMN log_id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
        )
        r = api.post(f"/pipelines/{pid}/tables/{quote(f'{SRC}.{rs.KEYLESS}', safe='')}/retry")
        assert r.status_code in (200, 202), r.text
        time.sleep(2.0)  # the writer's film edits keep filling the audit log, its pruning deletes from it
        writer.stop()
        assert writer.errors == [], writer.errors[:5]
        wait_converged(api, pid, source, target, tables=rs.TABLES)
        status = api.status(pid)
        assert status["state"] == "RUNNING", status
        assert all(t["status"] != "FAILED" and not t.get("error") for t in status["tables"]), status
    finally:
        writer.stop()
        app.terminate()
        source.close()
        target.close()
        pg.drop_database(target_db)
