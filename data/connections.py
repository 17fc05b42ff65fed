"""Queries for saved connections and their test history."""

from __future__ import annotations

from sqlmodel import Session, col, delete, select

from data.models import Connection, ConnectionTest

TEST_HISTORY_KEEP = 200


def list_connections(*, session: Session) -> list[Connection]:
    return list(session.exec(select(Connection).order_by(Connection.name)))


def get_connection(*, session: Session, connection_id: int) -> Connection | None:
    return session.get(Connection, connection_id)


def get_connection_by_name(*, session: Session, name: str) -> Connection | None:
    return session.exec(select(Connection).where(Connection.name == name)).first()


def save_connection(*, session: Session, connection: Connection) -> Connection:
    session.add(connection)
    session.flush()
    session.refresh(connection)
    return connection


def delete_connection(*, session: Session, connection: Connection) -> None:
    session.exec(delete(ConnectionTest).where(col(ConnectionTest.connection_id) == connection.id))
    session.delete(connection)


def add_test(*, session: Session, test: ConnectionTest) -> ConnectionTest:
    """Record a test result and keep only the newest TEST_HISTORY_KEEP per connection."""
    session.add(test)
    session.flush()
    session.refresh(test)
    keep = select(ConnectionTest.id).where(ConnectionTest.connection_id == test.connection_id)
    keep = keep.order_by(col(ConnectionTest.id).desc()).limit(TEST_HISTORY_KEEP)
    session.exec(
        delete(ConnectionTest).where(
            col(ConnectionTest.connection_id) == test.connection_id, col(ConnectionTest.id).not_in(keep)
        )
    )
    return test


def list_tests(*, session: Session, connection_id: int, limit: int = 50) -> list[ConnectionTest]:
    stmt = select(ConnectionTest).where(ConnectionTest.connection_id == connection_id)
    return list(session.exec(stmt.order_by(col(ConnectionTest.id).desc()).limit(limit)))
