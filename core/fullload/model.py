"""The full-load engine's public shapes: what to copy, how, and what happened."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from core.typemap import DomainType, EnumType, PgUserType, TargetType

POLICIES = ("fail", "truncate", "append", "drop_recreate")
# The schema_change_policy values; for a target table's columns, propagate_fully and pause (a person pressed Start
# after the pause: the change is approved) fit it as propagate_columns does.
DRIFTS = ("propagate_columns", "propagate_fully", "ignore", "pause", "stop_table")

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
    schema_drift: str = "propagate_columns"  # existing target tables: propagate_columns | ignore | stop_table


@dataclass(frozen=True)
class Finding:
    """Something validation found about a table: an `error` fails the run, a `warning` deserves a look."""

    level: str  # error | warning
    message: str


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
    """A source column and what the target gets: mapped type, NOT NULL, default and generation.

    `generated` is the source's generation expression; `generated_on_target` says the target column
    is created GENERATED with it (then the load never writes it), else it is a plain column filled
    from the source's values. `default` is the expression the target column is created with
    (None: none, or not carried; `source_default` is what the source has).
    """

    name: str
    source_type: str
    target: TargetType
    not_null: bool
    user: PgUserType | None = None
    source_default: str | None = None
    default: str | None = None
    generated: str | None = None
    generated_on_target: bool = False
    identity: bool = False


@dataclass
class TableSpec:
    """A table ready to load: its plan, the columns with mapped types and the primary key.

    `load_columns`, when set, are the columns the COPY writes into an existing target table (the
    ones it has, generated ones left out); otherwise every column not generated on the target.
    `notes` are findings made while preparing (types carried as text, defaults not carried ...).
    """

    plan: TablePlan
    columns: list[ColumnPlan]
    primary_key: list[str]
    relkind: str = "r"
    rows_expected: int = 0
    enums: list[EnumType] = field(default_factory=list)
    domains: list[DomainType] = field(default_factory=list)
    load_columns: list[str] | None = None
    notes: list[Finding] = field(default_factory=list)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def copy_columns(self) -> list[ColumnPlan]:
        """The columns the load reads from the source and writes into the target, in order."""
        if self.load_columns is not None:
            wanted = set(self.load_columns)
            return [c for c in self.columns if c.name in wanted]
        return [c for c in self.columns if not c.generated_on_target]

    @property
    def user_types(self) -> list[EnumType | DomainType]:
        """Enums and domains to create before the table, dependencies first, each once."""
        seen: dict[tuple[str, str], EnumType | DomainType] = {}
        for col in self.columns:
            for t in col.target.user_types():
                seen.setdefault((type(t).__name__, t.name), t)
        return list(seen.values())
