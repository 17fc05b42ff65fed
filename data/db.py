"""The app database: one engine per URL, sessions, and Alembic migrations run at start."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, create_engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


@lru_cache(maxsize=8)
def get_engine(url: str) -> Engine:
    """A pooled engine for the URL (SQLite gets WAL and enforced foreign keys)."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at our migrations, usable without an alembic.ini."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


_START_LOCK = 0x0CDC5700  # a PostgreSQL advisory lock id: app processes starting on one database take turns


def serialize(conn: Connection | Session) -> None:
    """Make this transaction wait for any other app process's start-up writes (migrations, first rows) to
    commit; PostgreSQL only (SQLite serves one process)."""
    bind = conn.get_bind() if isinstance(conn, Session) else conn
    if bind.dialect.name == "postgresql":
        conn.execute(text(f"SELECT pg_advisory_xact_lock({_START_LOCK})"))


def migrate(url: str, revision: str = "head", *, down: bool = False) -> None:
    """Bring the database at `url` to the newest schema (or up or `down` to `revision`), in place.

    SQLite migrates with foreign keys off: a migration that rebuilds a table (batch mode) drops the old one,
    which with them on deletes every row referencing it (ON DELETE CASCADE: the runs of every pipeline).
    """
    cfg = alembic_config(url)
    with get_engine(url).connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.commit()
        try:
            with conn.begin():
                serialize(conn)
                cfg.attributes["connection"] = conn
                (command.downgrade if down else command.upgrade)(cfg, revision)
                if sqlite and conn.exec_driver_sql("PRAGMA foreign_key_check").first() is not None:
                    raise RuntimeError(f"the migration to {revision} left rows whose referenced row is missing")
        finally:
            if sqlite:
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                conn.commit()


_current_url: str | None = None


def current_url() -> str | None:
    """The app database this process selected with `init` (None before)."""
    return _current_url


def init(url: str) -> None:
    """Select the app database for this process and migrate it."""
    global _current_url
    migrate(url)
    _current_url = url


@contextmanager
def session_scope() -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    if _current_url is None:
        raise RuntimeError("data.db.init() was not called")
    with Session(get_engine(_current_url), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
