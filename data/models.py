"""SQLModel tables of the app's own state. Schema changes go through Alembic migrations."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import JSON, BigInteger, Column, ForeignKey, Integer
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


class Pipeline(SQLModel, table=True):
    __tablename__ = "pipelines"
    __table_args__ = {"sqlite_autoincrement": True}  # a deleted pipeline's id is never given again

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True, max_length=100)
    description: str = Field(default="")
    source_connection_id: int = Field(sa_column=Column(Integer, ForeignKey("connections.id"), nullable=False))
    target_connection_id: int = Field(sa_column=Column(Integer, ForeignKey("connections.id"), nullable=False))
    source_database: str = Field(max_length=128)
    source_schema: str = Field(max_length=128)
    target_database: str = Field(max_length=128)
    target_schema: str = Field(max_length=128)
    tables: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    exclude: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    table_mappings: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    mode: str = Field(default="FULL_LOAD_ONLY", max_length=30)
    auto_create: bool = True
    target_table_policy: str = Field(default="fail", max_length=20)
    schedule: str | None = Field(default=None, max_length=120)
    engine: str = Field(default="embedded", max_length=20)
    sink: str = Field(default="studio", max_length=20)
    on_table_error: str = Field(default="continue", max_length=20)
    schema_drift: str = Field(default="propagate_columns", max_length=30)
    slot_name: str | None = Field(default=None, max_length=63)  # its replication slot and publication
    state: str = Field(default="NOT_STARTED", max_length=20)
    full_load_status: str = Field(default="NOT_STARTED", max_length=20)
    cdc_status: str = Field(default="NOT_STARTED", max_length=20)
    error_message: str | None = None
    created_by: str | None = Field(default=None, max_length=320)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class PipelineRun(SQLModel, table=True):
    __tablename__ = "pipeline_runs"

    id: int | None = Field(default=None, primary_key=True)
    pipeline_id: int = Field(
        sa_column=Column(Integer, ForeignKey("pipelines.id", ondelete="CASCADE"), index=True, nullable=False)
    )
    run_type: str = Field(default="FULL_LOAD", max_length=20)
    trigger: str = Field(default="manual", max_length=20)
    status: str = Field(default="RUNNING", max_length=20)
    started_at: datetime = Field(default_factory=utcnow)
    completed_at: datetime | None = None
    rows_processed: int = 0
    rows_failed: int = 0
    error_message: str | None = None


class PipelineTable(SQLModel, table=True):
    """The latest full-load status of one table of a pipeline (replaced at every run)."""

    __tablename__ = "pipeline_tables"

    id: int | None = Field(default=None, primary_key=True)
    pipeline_id: int = Field(
        sa_column=Column(Integer, ForeignKey("pipelines.id", ondelete="CASCADE"), index=True, nullable=False)
    )
    run_id: int | None = None
    source: str = Field(max_length=300)
    target: str = Field(max_length=300)
    status: str = Field(default="PENDING", max_length=20)
    rows_copied: int = 0
    rows_expected: int = 0
    rows_per_second: float = 0.0
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    cdc_since_lsn: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


class MetricMinute(SQLModel, table=True):
    """Change counts per pipeline, table and minute: the dashboard aggregates these, not events."""

    __tablename__ = "metric_minutes"

    pipeline_id: int = Field(
        sa_column=Column(Integer, ForeignKey("pipelines.id", ondelete="CASCADE"), primary_key=True)
    )
    minute: datetime = Field(primary_key=True)
    table_name: str = Field(primary_key=True, max_length=300)
    inserts: int = 0
    updates: int = 0
    deletes: int = 0
    truncates: int = 0


class EventLogEntry(SQLModel, table=True):
    """The raw event log, capped per pipeline (the newest N changes with their rows)."""

    __tablename__ = "event_log"

    id: int | None = Field(default=None, primary_key=True)
    pipeline_id: int = Field(
        sa_column=Column(Integer, ForeignKey("pipelines.id", ondelete="CASCADE"), index=True, nullable=False)
    )
    applied_at: datetime = Field(default_factory=utcnow)
    commit_time: datetime | None = None
    table_name: str = Field(max_length=300)
    op: str = Field(max_length=10)
    key: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    before: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    after: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    position: str = Field(default="", max_length=40)
