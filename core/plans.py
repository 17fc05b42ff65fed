"""What a pipeline will do, typed: the full load's tables and options, the CDC engine's plan.

`load_plan` and `cdc_plan` resolve a stored pipeline (its connections, the live source's tables,
the selection and mappings) into a `LoadPlan` and a `CdcPlan`; the runner and the engines take
these and never read the app database for them. `resolve` is the check of a pipeline's schemas and
tables against the live source that creating, editing and previewing a pipeline share.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import NamedTuple

from sqlmodel import Session

from core.connections import spec_of
from core.connectors import get_connector
from core.connectors.base import ConnectionSpec, TableInfo
from core.errors import ConnectorError, NotFound, ValidationFailed
from core.fullload import LoadOptions, TablePlan
from core.fullload.model import FAILED as TABLE_FAILED
from core.fullload.model import RUNNING as TABLE_RUNNING
from core.pipeline_schemas import PipelineCreate
from core.table_select import select_tables
from data import connections as conn_db
from data import pipelines as pipe_db
from data.db import session_scope
from data.models import Connection, Pipeline


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
    patterns: list[str] = field(default_factory=list)  # the pipeline's table selection (new tables: propagate_fully)
    exclude: list[str] = field(default_factory=list)
    mappings: list[dict] = field(default_factory=list)
    target_schema: str = ""
    resync: bool = False  # no slot: every table is emptied and loaded under the new slot's snapshot (any mode)


@dataclass
class Resolved:
    """A pipeline's connections, specs and the selected (source table, target name) pairs."""

    source: ConnectionSpec
    target: ConnectionSpec
    source_tables: list[TableInfo]
    pairs: list[tuple[TableInfo, str]]


def stored_pipeline(session: Session, pipeline_id: int) -> Pipeline:
    """The stored pipeline; NotFound when there is none."""
    p = pipe_db.get_pipeline(session=session, pipeline_id=pipeline_id)
    if p is None:
        raise NotFound(f"pipeline {pipeline_id} not found")
    return p


def connection_for(session: Session, field_name: str, connection_id: int, usage: str) -> Connection:
    """The connection a pipeline uses as its `usage` ('source' or 'target'); ValidationFailed naming
    `field_name` when it does not exist or is not for that usage."""
    c = conn_db.get_connection(session=session, connection_id=connection_id)
    if c is None:
        raise ValidationFailed(field_name, f"connection {connection_id} does not exist")
    if c.usage not in (usage, "both"):
        raise ValidationFailed(field_name, f"connection '{c.name}' is for usage '{c.usage}', not {usage}")
    return c


def spec_in(c: Connection, database: str) -> ConnectionSpec:
    """The connection's spec, pointed at `database`."""
    return dataclasses.replace(spec_of(c), database=database)


def stored_request(p: Pipeline) -> PipelineCreate:
    """A stored pipeline as the request that would create it."""
    return PipelineCreate.model_validate(p.model_dump(include=set(PipelineCreate.model_fields)))


def resolve(data: PipelineCreate, src: Connection, tgt: Connection) -> Resolved:
    """Check schemas and tables against the live source; raises ValidationFailed naming the field."""
    source = spec_in(src, data.source_database or src.database)
    target = spec_in(tgt, data.target_database or tgt.database)
    src_conn = get_connector(source)
    try:
        schemas = [s.name for s in src_conn.list_schemas(source.database)]
    except ConnectorError as exc:
        raise ValidationFailed("source_connection_id", f"cannot read the source: {exc}") from None
    if data.source_schema not in schemas:
        raise ValidationFailed("source_schema", f"schema '{data.source_schema}' does not exist in {source.database}")
    tables = src_conn.list_tables(source.database, data.source_schema)
    by_name = {t.name: t for t in tables}
    pairs = select_tables(
        [t.name for t in tables], data.tables, data.exclude, [m.model_dump() for m in data.table_mappings]
    )
    if not data.auto_create:
        _require_target_schema(target, data.target_schema)
    return Resolved(source, target, tables, [(by_name[s], t) for s, t in pairs])


def _require_target_schema(target: ConnectionSpec, schema: str) -> None:
    try:
        schemas = [s.name for s in get_connector(target).list_schemas(target.database)]
    except ConnectorError as exc:
        raise ValidationFailed("target_connection_id", f"cannot read the target: {exc}") from None
    if schema not in schemas:
        raise ValidationFailed(
            "target_schema", f"schema '{schema}' does not exist in {target.database} and auto_create is off"
        )


def load_plan(pipeline_id: int) -> LoadPlan:
    """Resolve a stored pipeline into what the full-load engine runs."""
    with session_scope() as session:
        p = stored_pipeline(session, pipeline_id)
        src = connection_for(session, "source_connection_id", p.source_connection_id, "source")
        tgt = connection_for(session, "target_connection_id", p.target_connection_id, "target")
    resolved = resolve(stored_request(p), src, tgt)
    plans = [TablePlan(p.source_schema, info.name, p.target_schema, target) for info, target in resolved.pairs]
    options = LoadOptions(
        auto_create=p.auto_create, target_table_policy=p.target_table_policy, schema_drift=p.schema_drift
    )
    return LoadPlan(resolved.source, resolved.target, plans, options)


def cdc_plan(pipeline_id: int, reload: list[str] | tuple[str, ...] = ()) -> CdcPlan:
    """Resolve a stored pipeline into what the CDC engine runs (with its tables' earlier failures and reloads)."""
    load = load_plan(pipeline_id)
    with session_scope() as session:
        p = stored_pipeline(session, pipeline_id)
        rows = pipe_db.list_tables(session=session, pipeline_id=pipeline_id)
    failed = {pair(r.source): r.error or "failed earlier" for r in rows if r.status == TABLE_FAILED}
    since = {pair(r.source): r.cdc_since_lsn for r in rows if r.cdc_since_lsn is not None}
    # A table whose load was cut short (the app stopped while it copied, e.g. a reload while streaming) holds a
    # partial copy: it is loaded again before the stream goes on.
    interrupted = [r.source for r in rows if r.status == TABLE_RUNNING and p.mode != "FULL_LOAD_ONLY"]
    reload = list(dict.fromkeys([*reload, *interrupted]))
    return CdcPlan(
        pipeline_id=pipeline_id,
        source=load.source,
        target=load.target,
        tables=load.tables,
        mode=p.mode,
        auto_create=p.auto_create,
        target_table_policy=p.target_table_policy,
        engine=p.engine,
        sink=p.sink,
        slot=p.slot_name,
        on_table_error=p.on_table_error,
        schema_drift=p.schema_drift,
        failed_tables=failed,
        since=since,
        reload=[pair(t) for t in reload],
        patterns=list(p.tables or []),
        exclude=list(p.exclude or []),
        mappings=list(p.table_mappings or []),
        target_schema=p.target_schema,
    )


def pair(source: str) -> tuple[str, str]:
    """'schema.table' as (schema, table)."""
    schema, _, table = source.partition(".")
    return schema, table
