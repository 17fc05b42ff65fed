"""Migrations on a database with data in it, on SQLite and on PostgreSQL: build it at 0001, step through every
revision adding rows to each table as it appears, upgrade to head and check every row survived with its
values and every column added later has its default; then downgrade to base."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import JSON, BigInteger, Boolean, Float, Integer, MetaData, String, Table, inspect, select, text
from sqlalchemy.engine import Engine

from core.security import new_master_secret
from data.db import alembic_config, get_engine, migrate
from tests.appprocess import ROOT
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.pgcluster import PgCluster

AT = datetime(2026, 11, 22, 8, 30, 15, 123456, tzinfo=UTC)

TYPICAL: dict[str, list[dict[str, Any]]] = {
    "users": [
        {"email": "admin@example.com", "full_name": "Ada Admin", "role": "admin", "is_active": True},
        {"email": "o'brien@example.com", "full_name": "Seán O'Brien", "role": "viewer", "is_active": False},
    ],
    "connections": [
        {"name": "shop", "kind": "postgresql", "usage": "source", "host": "db.example.com", "port": 5432},
        {"name": "dwh", "kind": "sqlserver", "usage": "target", "host": "mssql", "port": 1433, "schema_name": None},
    ],
    "pipelines": [
        {"name": "shop→dwh", "mode": "FULL_LOAD_AND_CDC", "engine": "embedded", "state": "RUNNING"},
        {"name": "nightly", "mode": "FULL_LOAD_ONLY", "engine": "embedded", "schedule": "0 2 * * *"},
    ],
    "alerts": [{"kind": "lag", "state": "firing", "severity": "warning"}, {"kind": "slot_inactive", "state": "ok"}],
    "channels": [{"kind": "webhook", "min_severity": "warning"}, {"kind": "slack", "min_severity": "critical"}],
    "app_settings": [{"key": "viewers_see_data"}, {"key": "instance_tag"}],
}
"""Values of some columns that read like real data; the other columns get a value of their type."""

ADDED_LATER: dict[tuple[str, str], Callable[[dict], Any]] = {
    ("pipelines", "sink"): lambda row: "studio",
    ("pipelines", "on_table_error"): lambda row: "continue",
    ("pipelines", "schema_drift"): lambda row: "propagate_columns",
    ("pipelines", "slot_name"): lambda row: f"cdc_studio_p{row['id']}",
    ("pipelines", "cdc_since_lsn"): lambda row: None,
    ("pipelines", "error_kind"): lambda row: None,
    ("pipelines", "retry_attempt"): lambda row: 0,
    ("pipelines", "retry_next_at"): lambda row: None,
    ("pipelines", "failing_since"): lambda row: None,
    ("pipelines", "validation_schedule"): lambda row: None,
    ("pipeline_tables", "cdc_since_lsn"): lambda row: None,
    ("audit_log", "actor_type"): lambda row: "user",
    ("audit_log", "token_id"): lambda row: None,
    ("audit_log", "object_type"): lambda row: None,
    ("audit_log", "object_id"): lambda row: None,
    ("audit_log", "outcome"): lambda row: "ok",
    ("audit_log", "changes"): lambda row: None,
    ("audit_log", "client_addr"): lambda row: None,
    ("users", "must_change_password"): lambda row: False,
    ("users", "password_changed_at"): lambda row: None,
    ("users", "sessions_valid_after"): lambda row: None,
}
"""What a row written before a column existed holds in it after the upgrade (a new migration that adds a
column to an existing table adds its expectation here)."""


def value_for(table: Table, column: str, n: int) -> Any:
    """A value of the column's type for row n (1-based): ids and references are n, so parents match."""
    col = table.c[column]
    kind = col.type
    if col.primary_key and isinstance(kind, Integer) or column.endswith("_id") or col.foreign_keys:
        return n
    if isinstance(kind, Boolean):
        return n % 2 == 1
    if isinstance(kind, BigInteger):
        return 2**40 + n  # survives only as a 64-bit integer
    if isinstance(kind, Integer):
        return 10 * n
    if isinstance(kind, Float):
        return 1.25 * n
    if isinstance(kind, JSON):
        return {"n": n, "list": [1, "two", None], "text": "ünï'code"}
    if kind.python_type is datetime:
        return AT.replace(minute=n)
    if isinstance(kind, String):
        return f"{table.name}.{column} {n} 'q'"[: kind.length or 200]
    raise AssertionError(f"no sample value for {table.name}.{column} ({kind!r})")


def rows_for(table: Table) -> list[dict[str, Any]]:
    typical = TYPICAL.get(table.name, [{}, {}])
    return [
        {c.name: typical[i].get(c.name, value_for(table, c.name, i + 1)) for c in table.columns}
        for i in range(len(typical))
    ]


def normal(value: Any) -> Any:
    """Values as compared: datetimes in UTC without tzinfo (SQLite keeps no zone)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    return value


def revisions(url: str) -> list[str]:
    script = ScriptDirectory.from_config(alembic_config(url))
    return [r.revision for r in reversed(list(script.walk_revisions()))]


def reflect(engine: Engine) -> MetaData:
    meta = MetaData()
    meta.reflect(engine)
    return meta


@pytest.fixture(params=["sqlite", "postgresql"])
def app_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'app.db'}"
        return
    cluster: PgCluster = request.getfixturevalue("pg")
    name = "migrations_test"
    cluster.create_database(name)
    url = (
        f"postgresql+psycopg2://{cluster.user}:{quote(cluster.password, safe='')}@{cluster.host}:{cluster.port}/{name}"
    )
    yield url
    get_engine(url).dispose()
    cluster.drop_database(name)


def test_data_survives_every_migration_and_downgrade_to_base(app_url: str) -> None:
    engine = get_engine(app_url)
    steps = revisions(app_url)
    assert steps[0] == "0001" and len(steps) >= 8
    written: dict[str, list[dict[str, Any]]] = {}
    columns_then: dict[str, set[str]] = {}
    for rev in steps:
        migrate(app_url, rev)
        meta = reflect(engine)
        new = [t for t in meta.sorted_tables if t.name not in written and t.name != "alembic_version"]
        with engine.begin() as conn:
            for table in new:
                written[table.name] = rows_for(table)
                columns_then[table.name] = set(table.c.keys())
                conn.execute(table.insert(), written[table.name])
    assert {"users", "connections", "pipelines", "event_log", "channels", "alerts", "app_settings"} <= set(written)
    assert {"api_tokens", "login_attempts"} <= set(written)

    meta = reflect(engine)
    with engine.connect() as conn:
        for name, rows in written.items():
            table = meta.tables[name]
            order = [c for c in table.primary_key.columns] or list(table.columns)[:1]
            stored = [dict(r._mapping) for r in conn.execute(select(table).order_by(*order))]
            assert len(stored) == len(rows), name
            rows = sorted(rows, key=lambda r: tuple(r[c.name] for c in order))  # noqa: B023
            for before, after in zip(rows, stored, strict=True):
                for column, value in before.items():
                    assert normal(after[column]) == normal(value), f"{name}.{column}"
                for column in set(after) - columns_then[name]:
                    assert (name, column) in ADDED_LATER, f"{name}.{column} is new: say what old rows hold in it"
                    assert after[column] == ADDED_LATER[(name, column)](after), f"{name}.{column}"

    migrate(app_url, "base", down=True)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    migrate(app_url)  # and back up on the emptied database
    assert set(written) <= set(inspect(engine).get_table_names())
    engine.dispose()


START = "from core.app_state import prepare; prepare()"


def test_replicas_starting_together_on_postgresql(pg: PgCluster, tmp_path) -> None:
    """Scale-out: app processes starting at once on one new PostgreSQL database migrate it once, and write
    the key check value and the first admin once."""
    pg.create_database("replicas_test")
    url = f"postgresql+psycopg2://{pg.user}:{quote(pg.password, safe='')}@{pg.host}:{pg.port}/replicas_test"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CDC_STUDIO_", "PYTEST_"))}
    env.update(
        DATABASE_URL=url,
        CDC_STUDIO_SECRET_KEY=new_master_secret().decode(),
        CDC_STUDIO_ADMIN_EMAIL=ADMIN_EMAIL,
        CDC_STUDIO_ADMIN_PASSWORD=ADMIN_PASSWORD,
    )
    try:
        starts = [
            subprocess.Popen(
                [sys.executable, "-c", START],
                cwd=ROOT,
                env={**env, "CDC_STUDIO_DATA_DIR": str(tmp_path / f"r{i}")},
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(3)
        ]
        errors = [p.communicate(timeout=120)[1] for p in starts]
        assert [p.returncode for p in starts] == [0, 0, 0], "\n".join(errors)
        engine = get_engine(url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM users")).scalar() == 1
            assert conn.execute(text("SELECT count(*) FROM app_settings WHERE key = 'secret_key_check'")).scalar() == 1
        engine.dispose()
    finally:
        pg.drop_database("replicas_test")
