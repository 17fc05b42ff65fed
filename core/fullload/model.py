"""The full-load engine's public shapes: what to copy, how, and what happened."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from core.typemap import EnumType, TargetType

POLICIES = ("fail", "truncate", "append", "drop_recreate")

PENDING, RUNNING, COMPLETED, FAILED, CANCELLED = "PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"


@dataclass
class TablePlan:
    """One source table and the target table it is copied into."""

    source_schema: str
    source_table: str
    target_schema: str
    target_table: str

    @property
    def source(self) -> str:
        return f"{self.source_schema}.{self.source_table}"

    @property
    def target(self) -> str:
        return f"{self.target_schema}.{self.target_table}"


@dataclass
class LoadOptions:
    """How a full load treats the target and how much runs at once."""

    auto_create: bool = True
    target_table_policy: str = "fail"  # fail | truncate | append | drop_recreate
    parallelism: int = 4  # tables loading at once
    snapshot_id: str | None = None  # PostgreSQL source: every reader runs SET TRANSACTION SNAPSHOT this


@dataclass
class TableProgress:
    """Where one table's copy stands; handed to `on_progress` as a copy, safe to keep."""

    source: str
    target: str
    status: str  # PENDING | RUNNING | COMPLETED | FAILED | CANCELLED
    rows_copied: int = 0
    rows_expected: int = 0
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    rows_per_second: float = 0.0


@dataclass
class FullLoadResult:
    """The outcome of a full load: overall status and every table's final progress."""

    status: str  # COMPLETED | FAILED | CANCELLED
    tables: list[TableProgress]
    rows_copied: int
    rows_failed_tables: int


class Cancelled(Exception):  # noqa: N818 - a state, not a failure
    """The load was asked to stop; the table ends CANCELLED and its target transaction rolls back."""


@dataclass
class ColumnPlan:
    name: str
    source_type: str
    target: TargetType
    not_null: bool


@dataclass
class TableSpec:
    """A table ready to load: its plan, the columns with mapped types and the primary key."""

    plan: TablePlan
    columns: list[ColumnPlan]
    primary_key: list[str]
    relkind: str = "r"
    rows_expected: int = 0
    enums: list[EnumType] = field(default_factory=list)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]
