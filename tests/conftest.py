"""Shared fixtures: a real PostgreSQL cluster per test session, a fresh database per test, and the real Kafka
stack (tansu broker + Kafka Connect with Debezium), started once per session by the tests that ask for it.

The app's own state: SQLite by default; the API and CDC tests (tests/api) run twice, once with the app state
in a fresh PostgreSQL database of the session's cluster (ids `[app-sqlite]`, `[app-postgresql]`).
CDC_STUDIO_TEST_APP_DB=sqlite or =postgresql runs every app test with that one app database instead.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

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


APP_DBS = ("sqlite", "postgresql")
TWICE_UNDER = Path(__file__).parent / "api"  # the API and CDC tests: run on both app databases
SQLITE_ONLY = {"test_crud_and_password_is_write_only", "test_crud_and_secrets_are_write_only"}  # read the file


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run each app test under tests/api on both app databases (unless CDC_STUDIO_TEST_APP_DB picks one)."""
    if "app_env" not in metafunc.fixturenames or os.environ.get("CDC_STUDIO_TEST_APP_DB"):
        return
    if TWICE_UNDER in Path(metafunc.definition.path).parents and metafunc.definition.originalname not in SQLITE_ONLY:
        metafunc.parametrize("app_db", APP_DBS, indirect=True, ids=[f"app-{d}" for d in APP_DBS])


@pytest.fixture
def app_db(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """The app database of one test: None (SQLite in the data folder) or a fresh PostgreSQL database's URL."""
    kind = getattr(request, "param", None) or os.environ.get("CDC_STUDIO_TEST_APP_DB") or "sqlite"
    if kind == "sqlite":
        yield None
        return
    cluster: PgCluster = request.getfixturevalue("pg")
    name = f"app{os.getpid()}_{next(_db_counter)}"
    cluster.create_database(name)
    password = quote(cluster.password, safe="")
    url = f"postgresql+psycopg2://{cluster.user}:{password}@{cluster.host}:{cluster.port}/{name}"
    yield url
    from data.db import get_engine

    get_engine(url).dispose()
    cluster.drop_database(name)


@pytest.fixture
def app_env(tmp_path, monkeypatch: pytest.MonkeyPatch, app_db: str | None) -> dict[str, str]:
    """A fresh app environment (own SQLite file or PostgreSQL database, see `app_db`, and secret key) with a
    bootstrap admin.

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
    if app_db is not None:
        env["DATABASE_URL"] = app_db
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
