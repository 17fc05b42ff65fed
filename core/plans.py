"""What a pipeline will do, typed: the full load's tables and options, the CDC engine's plan.

Resolved from a stored pipeline by core.pipelines (`load_plan`, `cdc_plan`); the runner and the
engines take these and never read the app database for them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from core.connectors.base import ConnectionSpec
from core.fullload import LoadOptions, TablePlan


class LoadPlan(NamedTuple):
    """What a full load runs: source, target, the tables and the options."""

    source: ConnectionSpec
    target: ConnectionSpec
    tables: list[TablePlan]
    options: LoadOptions


@dataclass
class CdcPlan:
    pipeline_id: int
    source: ConnectionSpec
    target: ConnectionSpec
    tables: list[TablePlan]
    mode: str
    auto_create: bool
    target_table_policy: str
    engine: str = "embedded"
    sink: str = "studio"
    slot: str | None = None  # the pipeline's slot and publication name (None: the legacy cdc_studio_p<id>)
    on_table_error: str = "continue"  # continue: a failing table is set aside, the others go on | stop
    schema_drift: str = "propagate_columns"
    refused: dict[tuple[str, str], str] = field(default_factory=dict)  # by validation at this start: source -> reason
    failed_tables: dict[tuple[str, str], str] = field(default_factory=dict)  # set aside earlier: source -> reason
    since: dict[tuple[str, str], int] = field(default_factory=dict)  # reloaded alone: apply from this commit LSN
    reload: list[tuple[str, str]] = field(default_factory=list)  # tables to reload alone before streaming
