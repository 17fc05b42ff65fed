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
