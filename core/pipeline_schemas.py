"""The shapes of pipelines in and out of the service (API bodies, page forms, responses)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.lifecycle import CdcStatus, LoadStatus, State

Mode = Literal["FULL_LOAD_ONLY", "CDC_ONLY", "FULL_LOAD_AND_CDC"]
Policy = Literal["fail", "truncate", "append", "drop_recreate"]
Engine = Literal["embedded", "kafka_connect"]
Sink = Literal["studio", "connect"]  # kafka_connect: the app applies (studio) or a JDBC sink connector does
OnTableError = Literal["continue", "stop"]  # a table that fails to load or apply: only it stops, or everything
# What a source schema change does (the API's schema_change_policy; `schema_drift` is its older name):
# propagate_columns adds/changes columns on the target and never drops data; propagate_fully also creates, loads
# and streams new tables that match the pipeline's patterns; ignore leaves the target as it is; pause stops the
# pipeline in ERROR with the change described; stop_table sets only the changed table aside.
SchemaDrift = Literal["propagate_columns", "propagate_fully", "ignore", "pause", "stop_table"]

MODES: tuple[str, ...] = ("FULL_LOAD_ONLY", "CDC_ONLY", "FULL_LOAD_AND_CDC")
POLICIES: tuple[str, ...] = ("fail", "truncate", "append", "drop_recreate")

# What people read instead of the enum names (forms, the pipeline page).
MODE_LABELS: dict[str, str] = {
    "FULL_LOAD_ONLY": "Full load only (copy the tables once, or on a schedule)",
    "CDC_ONLY": "Changes only (CDC from now on, no initial copy)",
    "FULL_LOAD_AND_CDC": "Full load, then changes (copy, then keep in sync)",
}
MODE_SHORT: dict[str, str] = {
    "FULL_LOAD_ONLY": "Full load only",
    "CDC_ONLY": "Changes only (CDC)",
    "FULL_LOAD_AND_CDC": "Full load + CDC",
}
POLICY_LABELS: dict[str, str] = {
    "fail": "Stop if the target table has rows",
    "truncate": "Empty the target table first",
    "append": "Add the rows to what is there",
    "drop_recreate": "Drop and create the target table again",
}
ENGINE_LABELS: dict[str, str] = {
    "embedded": "Embedded (the app reads the changes itself)",
    "kafka_connect": "Debezium on Kafka Connect",
}
ON_TABLE_ERROR_LABELS: dict[str, str] = {
    "continue": "Set the failing table aside, the others go on",
    "stop": "Stop the whole pipeline",
}
SCHEMA_DRIFT_LABELS: dict[str, str] = {
    "propagate_columns": "Add or change the columns on the target (never drop data)",
    "propagate_fully": "Also create, load and stream new matching tables",
    "ignore": "Ignore the change (the target stays as it is)",
    "pause": "Pause the pipeline (ERROR, with the change described)",
    "stop_table": "Set that table aside, the others go on",
}


class TableMapping(BaseModel):
    source: str = Field(min_length=1, max_length=128)
    target: str = Field(min_length=1, max_length=128)


class _Base(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")


class PipelineCreate(_Base):
    """A new pipeline. Databases default to the connections' own; schemas must be given."""

    name: str = Field(min_length=1, max_length=100)
    description: str = Field(default="", max_length=2000)
    source_connection_id: int
    target_connection_id: int
    source_database: str | None = Field(default=None, max_length=128)
    source_schema: str = Field(min_length=1, max_length=128)
    target_database: str | None = Field(default=None, max_length=128)
    target_schema: str = Field(min_length=1, max_length=128)
    tables: list[str] = Field(min_length=1)
    exclude: list[str] = Field(default_factory=list)
    table_mappings: list[TableMapping] = Field(default_factory=list)
    mode: Mode = "FULL_LOAD_ONLY"
    auto_create: bool = True
    target_table_policy: Policy = "fail"
    schedule: str | None = Field(default=None, max_length=120)
    engine: Engine = "embedded"
    sink: Sink = "studio"
    on_table_error: OnTableError = "continue"
    schema_drift: SchemaDrift = "propagate_columns"
    schema_change_policy: SchemaDrift | None = None  # the same setting as schema_drift; given, it wins
    validation_schedule: str | None = Field(default=None, max_length=120)  # cron of automatic data checks

    @model_validator(mode="after")
    def _one_policy(self) -> PipelineCreate:
        if self.schema_change_policy is not None:
            if "schema_drift" in self.model_fields_set and self.schema_drift != self.schema_change_policy:
                raise ValueError("schema_change_policy and schema_drift name the same setting: give one of them")
            self.schema_drift = self.schema_change_policy
        self.schema_change_policy = self.schema_drift
        return self

    def stored(self) -> dict:
        """The fields as the Pipeline row keeps them (schema_change_policy is stored as schema_drift)."""
        return self.model_dump(exclude={"schema_change_policy"})


class PipelineUpdate(_Base):
    """A partial edit of a pipeline that is not running."""

    name: str | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=2000)
    source_connection_id: int | None = None
    target_connection_id: int | None = None
    source_database: str | None = Field(default=None, max_length=128)
    source_schema: str | None = Field(default=None, min_length=1, max_length=128)
    target_database: str | None = Field(default=None, max_length=128)
    target_schema: str | None = Field(default=None, min_length=1, max_length=128)
    tables: list[str] | None = Field(default=None, min_length=1)
    exclude: list[str] | None = None
    table_mappings: list[TableMapping] | None = None
    mode: Mode | None = None
    auto_create: bool | None = None
    target_table_policy: Policy | None = None
    schedule: str | None = Field(default=None, max_length=120)
    engine: Engine | None = None
    sink: Sink | None = None
    on_table_error: OnTableError | None = None
    schema_drift: SchemaDrift | None = None
    schema_change_policy: SchemaDrift | None = None
    validation_schedule: str | None = Field(default=None, max_length=120)


class RunPublic(BaseModel):
    id: int
    run_type: str
    trigger: str
    status: str
    started_at: datetime
    completed_at: datetime | None
    rows_processed: int
    rows_failed: int
    error_message: str | None


class PipelinePublic(BaseModel):
    id: int
    name: str
    description: str
    source_connection_id: int
    target_connection_id: int
    source_connection_name: str | None = None
    target_connection_name: str | None = None
    source_database: str
    source_schema: str
    target_database: str
    target_schema: str
    tables: list[str]
    exclude: list[str]
    table_mappings: list[TableMapping]
    mode: str
    auto_create: bool
    target_table_policy: str
    schedule: str | None
    engine: str
    sink: str = "studio"
    on_table_error: str = "continue"
    schema_drift: str = "propagate_columns"
    schema_change_policy: str = "propagate_columns"
    validation_schedule: str | None = None
    next_validation_at: datetime | None = None
    slot_name: str | None = None
    state: State
    full_load_status: LoadStatus
    cdc_status: CdcStatus
    error_message: str | None
    created_at: datetime
    updated_at: datetime
    last_run: RunPublic | None = None
    next_run_at: datetime | None = None


class TableStatus(BaseModel):
    source: str
    target: str
    status: str
    rows_copied: int = 0
    rows_expected: int = 0
    rows_per_second: float = 0.0
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class RetryInfo(BaseModel):
    """Automatic recovery of a pipeline: restarts since it was last healthy, when the next one is due (None:
    none planned — a terminal error, or running again), the last error and its kind (transient|terminal)."""

    attempt: int = 0
    next_at: datetime | None = None
    last_error: str | None = None
    error_kind: str | None = None
    failing_since: datetime | None = None
    connector_restarts: dict | None = None  # kafka_connect: {count, last_at, limit, gave_up} in the last hour


class PipelineStatus(BaseModel):
    id: int
    state: State
    full_load_status: LoadStatus
    cdc_status: CdcStatus
    error_message: str | None
    tables: list[TableStatus]
    engine: str = "embedded"
    connector: dict | None = None  # kafka_connect: {name, state, tasks: [{id, state, worker_id, trace}]}
    # ok | degraded (a table FAILED while the others run) | recovering (ERROR, transient: a restart is planned)
    # | failed (ERROR that needs a person)
    health: str = "ok"
    failed_tables: list[str] = Field(default_factory=list)
    retry: RetryInfo | None = None  # None when there is nothing to retry and no error


class TableProgress(BaseModel):
    """One table's load: rows copied of the expected, as a percentage (None while the count is unknown)."""

    source: str
    target: str
    status: str
    rows_copied: int = 0
    rows_expected: int = 0
    percent: float | None = None
    rows_per_second: float = 0.0
    error: str | None = None


class PipelineProgress(BaseModel):
    """What a pipeline does now: `phase` loading | streaming | retrying | idle, its tables' load, the live
    CDC figures (None unless a stream runs) and its recovery."""

    id: int
    state: State
    phase: Literal["loading", "streaming", "retrying", "idle"]
    full_load_status: LoadStatus
    cdc_status: CdcStatus
    tables: list[TableProgress]
    rows_copied: int = 0
    rows_expected: int = 0
    percent: float | None = None
    cdc: dict | None = None
    retry: RetryInfo | None = None


class PreviewRow(BaseModel):
    source: str
    target: str
    target_status: str  # will_be_created | exists | exists_different | missing
    row_count: int
    has_primary_key: bool
    size_bytes: int = 0
    differences: dict | None = None
    errors: list[str] = Field(default_factory=list)  # what makes this table fail (validate fills these)
    warnings: list[str] = Field(default_factory=list)  # what deserves a look: type fallbacks, generated columns


class ValidationReport(BaseModel):
    """`ok`: nothing wrong at all. `startable`: a start is accepted — with on_table_error `continue` a table
    with errors is refused alone (it ends FAILED with its reason) while the others run."""

    ok: bool
    errors: list[str]
    warnings: list[str]
    tables: list[PreviewRow] = Field(default_factory=list)
    startable: bool = True


class SchemaChangePublic(BaseModel):
    """One entry of a pipeline's schema history (GET /api/v1/pipelines/{id}/schema/history)."""

    id: int
    table: str
    # column_added | column_dropped | column_renamed | type_changed | nullability_changed | table_dropped | table_added
    kind: str
    column: str | None = None
    before: str | None = None
    after: str | None = None
    detected_by: str
    policy: str
    action: str
    detected_at: datetime
