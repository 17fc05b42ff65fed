"""SQLModel tables of the app's own state. Schema changes go through Alembic migrations."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import JSON, Column, ForeignKey, Integer
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(index=True, unique=True, max_length=320)
    full_name: str = Field(default="", max_length=200)
    password_hash: str = Field(max_length=200)
    role: str = Field(default="viewer", max_length=20)
    is_active: bool = True
    created_at: datetime = Field(default_factory=utcnow)


class Connection(SQLModel, table=True):
    __tablename__ = "connections"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True, max_length=100)
    kind: str = Field(max_length=20)
    usage: str = Field(default="both", max_length=10)
    host: str = Field(max_length=255)
    port: int
    database: str = Field(max_length=128)
    username: str = Field(max_length=128)
    password_encrypted: str = Field(default="")
    schema_name: str | None = Field(default=None, max_length=128)
    options: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class ConnectionTest(SQLModel, table=True):
    __tablename__ = "connection_tests"

    id: int | None = Field(default=None, primary_key=True)
    connection_id: int = Field(
        sa_column=Column(Integer, ForeignKey("connections.id", ondelete="CASCADE"), index=True, nullable=False)
    )
    tested_at: datetime = Field(default_factory=utcnow)
    ok: bool
    latency_ms: float | None = None
    server_version: str | None = None
    error_kind: str | None = Field(default=None, max_length=40)
    error: str | None = None


class AuditEntry(SQLModel, table=True):
    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    user_email: str | None = Field(default=None, max_length=320)
    action: str = Field(max_length=60)
    target: str = Field(default="", max_length=300)
    detail: str = Field(default="")
