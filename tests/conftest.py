"""Shared fixtures: a real PostgreSQL cluster per test session, a fresh database per test."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest

from tests.pgcluster import PgCluster

_db_counter = itertools.count(1)


@pytest.fixture(scope="session")
def pg() -> Iterator[PgCluster]:
    """One PostgreSQL cluster (wal_level=logical) for the whole test session."""
    cluster = PgCluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def pg_db(pg: PgCluster) -> Iterator[str]:
    """A fresh, empty database for one test; dropped afterwards."""
    name = f"t{os.getpid()}_{next(_db_counter)}"
    pg.create_database(name)
    yield name
    pg.drop_database(name)


ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "admin-pass-1"


@pytest.fixture
def app_env(tmp_path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A fresh app environment (own SQLite file and secret key) with a bootstrap admin.

    Request it before NiceGUI's `user` fixture so app.py reads this environment.
    """
    env = {
        "CDC_STUDIO_DATA_DIR": str(tmp_path / "data"),
        "CDC_STUDIO_ADMIN_EMAIL": ADMIN_EMAIL,
        "CDC_STUDIO_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "CDC_STUDIO_CONNECT_TIMEOUT": "3",
    }
    for key in ("DATABASE_URL", "CDC_STUDIO_SECRET_KEY"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    from core.config import get_settings

    get_settings.cache_clear()
    yield env
    get_settings.cache_clear()
