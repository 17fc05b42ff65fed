"""The copy paths, one per pair of database kinds. Each loads one table and returns the exact row count.

Every path: open a source reader (PostgreSQL: REPEATABLE READ READ ONLY, on the exported
snapshot when given) and a target transaction; apply the table policy and COPY/INSERT in that
one transaction; commit only when every row arrived. Anything else closes the target
connection uncommitted, so a failed or cancelled table leaves the target as it was.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

from psycopg2.extensions import connection as PgConnection
from psycopg2.sql import Composable

from core.connectors.base import ConnectionSpec
from core.errors import ConnectorError
from core.fullload import mssql, pgsql, reconcile
from core.fullload.job import Job
from core.fullload.model import LoadOptions, TableSpec
from core.fullload.pipe import CHUNK, PipeReader, pump, pump_batches
from core.typemap import POSTGRESQL

# Per-row overheads used to turn bytes moved into an estimate of rows moved: a heap tuple costs
# about 28 bytes of header and line pointer; a binary COPY row 2 bytes plus 4 per field.
_HEAP_ROW_OVERHEAD = 28

log = logging.getLogger(__name__)


def load_table(job: Job, source: ConnectionSpec, target: ConnectionSpec, options: LoadOptions) -> int:
    """Copy one prepared table with the fastest path the pair of kinds allows."""
    pair = (source.kind == POSTGRESQL, target.kind == POSTGRESQL)
    path = {
        (True, True): pg_to_pg,
        (False, True): mssql_to_pg,
        (True, False): pg_to_mssql,
        (False, False): mssql_to_mssql,
    }[pair]
    return path(job, source, target, options)


@contextmanager
def _pg(job: Job, conn: PgConnection) -> Iterator[PgConnection]:
    """A PostgreSQL connection the controlling thread may cancel while inside; closed (uncommitted) after."""
    try:
        with job.guard(conn.cancel):
            yield conn
    finally:
        conn.close()


@contextmanager
def _odbc(job: Job, conn: Any) -> Iterator[Any]:
    """A pyodbc cursor the controlling thread may cancel while inside; the connection closed after."""
    try:
        cur = conn.cursor()
        with job.guard(cur.cancel):
            yield cur
    finally:
        conn.close()


# ------------------------------------------------------------------ PostgreSQL -> PostgreSQL


def pg_to_pg(job: Job, source: ConnectionSpec, target: ConnectionSpec, options: LoadOptions) -> int:
    """COPY out piped into COPY in: binary when the target types equal the source's, text otherwise."""
    spec = _spec(job)
    with _pg(job, pgsql.open_source(source, options.snapshot_id)) as src, _pg(job, pgsql.open_target(target)) as tgt:
        _pg_expected(job, source, src, spec, binary_estimate=True)
        job.check()
        with pgsql.pg_errors(target), tgt.cursor() as tcur:
            state = pgsql.apply_policy(tcur, spec, options.target_table_policy, options.auto_create)
            spec = _fit_existing(tcur, spec, state, options)
            binary = _binary_ok(spec, src, tgt, tcur, state.created)
        fmt = "binary" if binary else "text"
        if not binary:
            _set_bytes_per_row(job, spec, binary=False)
        counted: list[int] = []
        rows = pump(
            produce=lambda sink: counted.append(_copy_out(src, source, spec, fmt, sink)),
            consume=lambda reader: _copy_in(tgt, target, pgsql.copy_in(spec, fmt, state.fresh), reader),
            cancel=job.cancel,
            stop_producer=src.cancel,
            on_open=lambda reader: _count_bytes(job, reader),
        )
        if counted and counted[0] >= 0 and rows >= 0 and counted[0] != rows:
            raise ConnectorError(f"the source sent {counted[0]} rows but the target received {rows}")
        _finish_target(job, tgt, target, spec, state)
    return rows


def _fit_existing(tcur: Any, spec: TableSpec, state: pgsql.TargetState, options: LoadOptions) -> TableSpec:
    """An existing target table is reconciled with the source's columns (schema drift policy) in the load's
    transaction; the COPY then writes the columns it has, never its generated ones."""
    if state.created:
        return spec
    notes = reconcile.reconcile_on(tcur, spec, options.schema_drift)
    for note in notes:
        log.info("full load of %s: %s", spec.plan.source, note)
    if notes:
        state.fresh = False  # the changes ran in subtransactions: COPY FREEZE would be refused
    return reconcile.fit_to_target(tcur, spec)


def _spec(job: Job) -> TableSpec:
    assert job.spec is not None, "tables are prepared before they load"
    return job.spec


def _pg_expected(job: Job, source: ConnectionSpec, src: PgConnection, spec: TableSpec, binary_estimate: bool) -> None:
    """Rows expected (estimate, or exact under the snapshot when cheap) and bytes per row for progress."""
    with pgsql.pg_errors(source), src.cursor() as cur:
        oid, _ = pgsql.relation(cur, source.database, spec.plan.source_schema, spec.plan.source_table)
        expected, exact, size = pgsql.source_stats(cur, spec, oid)
    job.expect(expected, exact)
    job.table_bytes = size
    _set_bytes_per_row(job, spec, binary=binary_estimate)


def _set_bytes_per_row(job: Job, spec: TableSpec, binary: bool) -> None:
    expected = job.progress.rows_expected
    if expected <= 0:
        return
    heap_row = job.table_bytes / expected - _HEAP_ROW_OVERHEAD
    per_field = 4 if binary else 1
    job.bytes_per_row = max(8.0, heap_row + per_field * len(spec.columns) + (2 if binary else 0))


def _count_bytes(job: Job, reader: PipeReader) -> None:
    job.bytes_moved = lambda: reader.bytes_read


def _binary_ok(spec: TableSpec, src: PgConnection, tgt: PgConnection, tcur: Any, created: bool) -> bool:
    """Binary COPY only between equal types, equal server encodings and with no type oids in the data."""
    if pgsql.server_encoding(src) != pgsql.server_encoding(tgt):
        return False
    if not all(c.target.binary_safe for c in spec.columns):
        return False
    if created:
        return True
    oid = pgsql.target_oid(tcur, spec.plan.target_schema, spec.plan.target_table)
    return oid is not None and pgsql.same_types(spec, pgsql.target_types(tcur, oid))


def _copy_out(src: PgConnection, source: ConnectionSpec, spec: TableSpec, fmt: str, sink: BinaryIO) -> int:
    with pgsql.pg_errors(source), src.cursor() as cur:
        cur.copy_expert(pgsql.copy_out(spec, fmt), sink)
        return cur.rowcount


def _copy_in(tgt: PgConnection, target: ConnectionSpec, statement: Composable, reader: PipeReader) -> int:
    with pgsql.pg_errors(target), tgt.cursor() as cur:
        # types-psycopg2 wants readline() too, but COPY FROM STDIN only ever calls read()
        cur.copy_expert(statement, reader, size=CHUNK)  # type: ignore[arg-type]
        return cur.rowcount


def _finish_target(
    job: Job, tgt: PgConnection, target: ConnectionSpec, spec: TableSpec, state: pgsql.TargetState
) -> None:
    """The primary key of a table created by this load, then the one commit."""
    job.check()
    with pgsql.pg_errors(target):
        if state.created and spec.primary_key:
            with tgt.cursor() as cur:
                cur.execute(pgsql.add_primary_key(spec))
            job.check()
        tgt.commit()


# ------------------------------------------------------------------ SQL Server -> PostgreSQL


def mssql_to_pg(job: Job, source: ConnectionSpec, target: ConnectionSpec, options: LoadOptions) -> int:
    """fetchmany batches encoded as COPY text, piped into COPY FROM STDIN on the target."""
    spec = _spec(job)
    job.expect(spec.rows_expected, exact=False)
    with _odbc(job, mssql.connect(source, autocommit=True)) as scur, _pg(job, pgsql.open_target(target)) as tgt:
        with pgsql.pg_errors(target), tgt.cursor() as tcur:
            state = pgsql.apply_policy(tcur, spec, options.target_table_policy, options.auto_create)
            spec = _fit_existing(tcur, spec, state, options)
        names = [c.name for c in spec.copy_columns]
        statement = mssql.select_statement(spec.plan.source_schema, spec.plan.source_table, names)
        rows = pump(
            produce=lambda sink: _mssql_rows_to_copy(job, scur, source, statement, sink),
            consume=lambda reader: _copy_in(tgt, target, pgsql.copy_in(spec, "text", state.fresh), reader),
            cancel=job.cancel,
            stop_producer=scur.cancel,
        )
        _finish_target(job, tgt, target, spec, state)
    return rows


def _mssql_rows_to_copy(job: Job, cur: Any, source: ConnectionSpec, statement: str, sink: BinaryIO) -> None:
    for batch in _mssql_batches(cur, source, statement):
        job.check()
        sink.write(mssql.encode_copy_rows(batch))
        job.rows_moved += len(batch)


def _mssql_batches(cur: Any, source: ConnectionSpec, statement: str) -> Iterator[list[tuple]]:
    driver_error = mssql.driver().Error
    try:
        cur.execute(statement)
        while batch := cur.fetchmany(mssql.FETCH_ROWS):
            yield [tuple(r) for r in batch]
    except driver_error as exc:
        raise mssql.odbc_error(exc, source) from None


# ------------------------------------------------------------------ -> SQL Server


def pg_to_mssql(job: Job, source: ConnectionSpec, target: ConnectionSpec, options: LoadOptions) -> int:
    """A server-side cursor on the source, fast_executemany INSERTs in large batches on the target."""
    spec = _spec(job)
    with (
        _pg(job, pgsql.open_source(source, options.snapshot_id)) as src,
        _odbc(job, mssql.connect(target, autocommit=False)) as tcur,
    ):
        _pg_expected(job, source, src, spec, binary_estimate=False)
        job.bytes_per_row = 0.0  # progress counts rows inserted here

        def produce(put: Callable[[list], None]) -> None:
            with pgsql.pg_errors(source), src.cursor(name="cdc_studio_fullload") as cur:
                cur.itersize = mssql.FETCH_ROWS
                cur.execute(pgsql.select_rows(spec))
                while batch := cur.fetchmany(mssql.FETCH_ROWS):
                    put(batch)

        return _into_mssql(job, spec, target, options, tcur, produce, src.cancel)


def mssql_to_mssql(job: Job, source: ConnectionSpec, target: ConnectionSpec, options: LoadOptions) -> int:
    """fetchmany batches from one SQL Server into fast_executemany INSERTs on another."""
    spec = _spec(job)
    job.expect(spec.rows_expected, exact=False)
    statement = mssql.select_statement(
        spec.plan.source_schema, spec.plan.source_table, [c.name for c in spec.copy_columns]
    )
    with (
        _odbc(job, mssql.connect(source, autocommit=True)) as scur,
        _odbc(job, mssql.connect(target, autocommit=False)) as tcur,
    ):

        def produce(put: Callable[[list], None]) -> None:
            for batch in _mssql_batches(scur, source, statement):
                put(batch)

        return _into_mssql(job, spec, target, options, tcur, produce, scur.cancel)


def _into_mssql(
    job: Job,
    spec: TableSpec,
    target: ConnectionSpec,
    options: LoadOptions,
    tcur: Any,
    produce: Callable[[Callable[[list], None]], None],
    stop_producer: Callable[[], None],
) -> int:
    """Policy action, then batches into fast_executemany, then one commit."""
    driver_error = mssql.driver().Error
    plan = spec.plan
    statement = mssql.insert_statement(plan.target_schema, plan.target_table, [c.name for c in spec.copy_columns])

    def on_rows(total: int) -> None:
        job.rows_moved = total

    try:
        mssql.apply_policy(tcur, spec, options.target_table_policy, options.auto_create)
        rows = pump_batches(
            produce=produce,
            consume=lambda batches: mssql.insert_batches(tcur, statement, batches, on_rows),
            cancel=job.cancel,
            stop_producer=stop_producer,
        )
        job.check()
        tcur.connection.commit()
        return rows
    except driver_error as exc:
        raise mssql.odbc_error(exc, target) from None
