"""The app database: migrations in place on SQLite and on PostgreSQL (DATABASE_URL)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.script import ScriptDirectory

from core.config import Settings
from data import db
from tests.pgcluster import PgCluster


def _tables(url: str) -> set[str]:
    return set(sa.inspect(db.get_engine(url)).get_table_names())


def test_sqlite_default_in_data_dir(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("CDC_STUDIO_DATA_DIR", str(tmp_path))
    url = Settings().resolved_database_url()
    assert url == f"sqlite:///{tmp_path / 'cdc_studio.db'}"
    db.migrate(url)
    db.migrate(url)  # a second start upgrades nothing and fails nothing
    assert {"users", "connections", "connection_tests", "audit_log", "alembic_version"} <= _tables(url)


def test_postgresql_app_database(pg: PgCluster, pg_db: str, monkeypatch) -> None:
    monkeypatch.setenv("DATABASE_URL", f"postgres://{pg.user}:{pg.password}@{pg.host}:{pg.port}/{pg_db}")
    url = Settings().resolved_database_url()
    assert url.startswith("postgresql+psycopg2://")
    db.migrate(url)
    assert {"users", "connections", "connection_tests", "audit_log"} <= _tables(url)
    with db.get_engine(url).connect() as conn:
        head = ScriptDirectory.from_config(db.alembic_config(url)).get_current_head()
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == head
    db.get_engine(url).dispose()
