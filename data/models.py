"""SQLModel tables of the app's own state. Schema changes go through Alembic migrations."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import JSON, BigInteger, Column, Float, ForeignKey, Index, Integer
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
    must_change_password: bool = False  # an admin forced a reset: the user sets a new one at next sign-in
    password_changed_at: datetime | None = None
    sessions_valid_after: datetime | None = None  # login tokens and UI sessions issued before are refused


class ApiToken(SQLModel, table=True):
    """A personal API token: only its SHA-256 is kept (the token is shown once, when made)."""

    __tablename__ = "api_tokens"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(
        sa_column=Column(Integer, ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=False)
    )
    name: str = Field(max_length=100)
    role: str = Field(max_length=20)
    prefix: str = Field(max_length=16)  # the token's first characters, to tell tokens apart in lists
    token_hash: str = Field(index=True, unique=True, max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class LoginAttempt(SQLModel, table=True):
    """One sign-in attempt (API or UI), for rate limits and lockouts per account and per client address."""

    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("ix_login_attempts_email_at", "email", "at"),
        Index("ix_login_attempts_addr_at", "client_addr", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow)
    email: str = Field(max_length=320)
    client_addr: str = Field(default="", max_length=64)
    ok: bool = False


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
    actor_type: str = Field(default="user", max_length=10)  # user | token | system | anonymous
    token_id: int | None = None  # the API token the action was performed with
    object_type: str | None = Field(default=None, max_length=40, index=True)  # connection, pipeline, user ...
    object_id: str | None = Field(default=None, max_length=100)
    outcome: str = Field(default="ok", max_length=10)  # ok | refused | failed
    changes: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))  # {field: [before, after]}
    client_addr: str | None = Field(default=None, max_length=64)


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
    schema_drift: str = Field(default="propagate_columns", max_length=30)  # the API's schema_change_policy
    validation_schedule: str | None = Field(default=None, max_length=120)  # cron of automatic data checks
    slot_name: str | None = Field(default=None, max_length=63)  # its replication slot and publication
    state: str = Field(default="NOT_STARTED", max_length=20)
    full_load_status: str = Field(default="NOT_STARTED", max_length=20)
    cdc_status: str = Field(default="NOT_STARTED", max_length=20)
    error_message: str | None = None
    error_kind: str | None = Field(default=None, max_length=40)  # of the last error: transient | terminal
    retry_attempt: int = 0  # automatic restarts since the pipeline was last healthy
    retry_next_at: datetime | None = None  # when the next automatic restart is due (None: none planned)
    failing_since: datetime | None = None  # first failure of the current recovery (None: healthy)
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


class MetricSample(SQLModel, table=True):
    """One metrics point of a pipeline: a bucket of `grain` seconds (10 raw, 60 and 3600 rollups) starting at `ts`.

    `table_name` '' is the pipeline-wide point (rates, latency, lag, slot); a table's own points carry
    only its counts. Counts are sums over the bucket, gauges the bucket's mean (`_max` columns its max).
    """

    __tablename__ = "metric_samples"

    pipeline_id: int = Field(
        sa_column=Column(Integer, ForeignKey("pipelines.id", ondelete="CASCADE"), primary_key=True)
    )
    grain: int = Field(primary_key=True)
    ts: datetime = Field(primary_key=True)
    table_name: str = Field(default="", primary_key=True, max_length=300)
    samples: int = 1  # raw points merged into this one
    inserts: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    updates: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    deletes: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    load_rows: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    errors: int = 0
    retries: int = 0
    latency_p50_ms: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    latency_p95_ms: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    latency_max_ms: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    lag_bytes: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    lag_seconds: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    retained_wal_bytes: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


class AlertRule(SQLModel, table=True):
    """When to alert: `pipeline_id` None is the default for every pipeline; a pipeline's own rule of a
    kind overrides the defaults of that kind."""

    __tablename__ = "alert_rules"

    id: int | None = Field(default=None, primary_key=True)
    pipeline_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("pipelines.id", ondelete="CASCADE"), index=True, nullable=True),
    )
    kind: str = Field(max_length=40, index=True)
    threshold: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    for_seconds: int = 0
    severity: str = Field(default="warning", max_length=10)
    enabled: bool = True
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Alert(SQLModel, table=True):
    """One occurrence of a rule's condition on a pipeline's object: pending -> firing -> resolved."""

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_identity", "pipeline_id", "kind", "object", "state"),)

    id: int | None = Field(default=None, primary_key=True)
    rule_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("alert_rules.id", ondelete="SET NULL"), nullable=True)
    )
    pipeline_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("pipelines.id", ondelete="CASCADE"), nullable=True)
    )
    kind: str = Field(max_length=40)
    object: str = Field(default="", max_length=300)  # the slot, table, connector task ... ('' = the pipeline)
    severity: str = Field(default="warning", max_length=10)
    state: str = Field(default="pending", max_length=10, index=True)
    message: str = ""
    value: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    threshold: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    started_at: datetime = Field(default_factory=utcnow)  # the condition was first seen
    fired_at: datetime | None = None
    resolved_at: datetime | None = None
    last_seen_at: datetime = Field(default_factory=utcnow)
    last_notified_at: datetime | None = None
    acked_by: str | None = Field(default=None, max_length=320)
    acked_at: datetime | None = None
    silenced_until: datetime | None = None


class Channel(SQLModel, table=True):
    """Where alerts go. Secret config fields live encrypted in `secrets_encrypted`, never in `config`."""

    __tablename__ = "channels"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True, max_length=100)
    kind: str = Field(max_length=20)  # webhook | slack | email | pagerduty
    config: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    secrets_encrypted: str = Field(default="")
    pipeline_ids: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))  # empty = all
    min_severity: str = Field(default="warning", max_length=10)
    enabled: bool = True
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Delivery(SQLModel, table=True):
    """One notification to one channel and every attempt at it (failed ones are retried with backoff)."""

    __tablename__ = "alert_deliveries"

    id: int | None = Field(default=None, primary_key=True)
    channel_id: int = Field(
        sa_column=Column(Integer, ForeignKey("channels.id", ondelete="CASCADE"), index=True, nullable=False)
    )
    alert_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("alerts.id", ondelete="CASCADE"), index=True, nullable=True),
    )
    event: str = Field(max_length=10)  # firing | resolved | reminder | test
    created_at: datetime = Field(default_factory=utcnow, index=True)
    status: str = Field(default="pending", max_length=10, index=True)  # pending | sent | failed
    attempts: int = 0
    last_attempt_at: datetime | None = None
    next_attempt_at: datetime | None = None
    status_code: int | None = None
    error: str | None = None
    payload: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class AppSetting(SQLModel, table=True):
    """One admin setting of the installation, as a key and a JSON value (missing key: the default)."""

    __tablename__ = "app_settings"

    key: str = Field(primary_key=True, max_length=100)
    value: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    updated_by: str | None = Field(default=None, max_length=320)
    updated_at: datetime = Field(default_factory=utcnow)


class DataCheck(SQLModel, table=True):
    """One validation of a pipeline's tables (counts, or full: checksums down to rows): running -> completed
    or failed."""

    __tablename__ = "data_checks"

    id: int | None = Field(default=None, primary_key=True)
    pipeline_id: int = Field(
        sa_column=Column(Integer, ForeignKey("pipelines.id", ondelete="CASCADE"), index=True, nullable=False)
    )
    mode: str = Field(default="full", max_length=10)  # counts | full
    tables: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))  # [] = every table
    recheck_after_seconds: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    status: str = Field(default="running", max_length=10, index=True)  # running | completed | failed
    error: str | None = None
    created_by: str | None = Field(default=None, max_length=320)
    started_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None


class DataCheckTable(SQLModel, table=True):
    """One table of a data check: its state (PENDING, VALIDATING, VALIDATED, MISMATCHED, SUSPENDED,
    NO_PRIMARY_KEY, ERROR) and counts."""

    __tablename__ = "data_check_tables"

    id: int | None = Field(default=None, primary_key=True)
    check_id: int = Field(
        sa_column=Column(Integer, ForeignKey("data_checks.id", ondelete="CASCADE"), index=True, nullable=False)
    )
    pipeline_id: int = Field(sa_column=Column(Integer, nullable=False, index=True))
    table: str = Field(max_length=300)  # the source table, schema.name
    state: str = Field(default="PENDING", max_length=20)
    source_rows: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    target_rows: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    mismatched_rows: int = 0
    segments: int = 0  # key segments compared so far
    detail: str = ""  # why ERROR / SUSPENDED, or what is being done
    validated_at: datetime | None = None


class DataMismatch(SQLModel, table=True):
    """A row that differs between source and target, confirmed by the rechecks (values secrets-free: row data)."""

    __tablename__ = "data_mismatches"

    id: int | None = Field(default=None, primary_key=True)
    check_id: int = Field(
        sa_column=Column(Integer, ForeignKey("data_checks.id", ondelete="CASCADE"), index=True, nullable=False)
    )
    table: str = Field(max_length=300)
    key: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    kind: str = Field(max_length=10)  # missing (not on the target) | extra (only on the target) | different
    columns: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    source: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    target: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))


class SchemaChange(SQLModel, table=True):
    """A change of a pipeline's source schema as it was detected, and what the pipeline's policy did about it."""

    __tablename__ = "schema_changes"

    id: int | None = Field(default=None, primary_key=True)
    pipeline_id: int = Field(
        sa_column=Column(Integer, ForeignKey("pipelines.id", ondelete="CASCADE"), index=True, nullable=False)
    )
    table: str = Field(max_length=300)  # schema.table on the source
    # column_added | column_dropped | column_renamed | type_changed | nullability_changed | table_dropped | table_added
    kind: str = Field(max_length=30)
    column: str | None = Field(default=None, max_length=128)
    before: str | None = Field(default=None, max_length=300)  # e.g. the old type, the old name, NULL / NOT NULL
    after: str | None = Field(default=None, max_length=300)
    detected_by: str = Field(default="stream", max_length=20)  # stream (a relation message) | schedule
    policy: str = Field(max_length=30)  # the pipeline's schema_change_policy when it was seen
    action: str = Field(default="", max_length=1000)  # what was done: propagated to the target, ignored, paused ...
    detected_at: datetime = Field(default_factory=utcnow, index=True)
