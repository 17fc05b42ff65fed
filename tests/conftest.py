"""Shared fixtures: a real PostgreSQL cluster per test session, a fresh database per test, and the real Kafka
stack (tansu broker + Kafka Connect with Debezium), started once per session by the tests that ask for it."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest

from tests.kafkastack import KafkaStack, KafkaStackError
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


_started: list[KafkaStack] = []


@pytest.fixture
def target_db(pg: PgCluster, pg_db: str) -> Iterator[str]:
    """A second fresh database next to pg_db (a pipeline's target); dropped afterwards."""
    name = pg_db + "_tgt"
    pg.create_database(name)
    yield name
    pg.drop_database(name)


@pytest.fixture(scope="session")
def kafka_stack() -> Iterator[KafkaStack]:
    """A running stack; a stack that cannot start fails the tests (never skips them): CI must run them."""
    try:
        stack = KafkaStack.start()
    except KafkaStackError as exc:
        pytest.fail(f"the Kafka stack did not start: {exc}", pytrace=False)
    _started.append(stack)
    yield stack
    stack.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for stack in _started:
        terminalreporter.write_line(f"Kafka stack (tansu + Connect/Debezium) started in {stack.startup_seconds:.1f} s")
