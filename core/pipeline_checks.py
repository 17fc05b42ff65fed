"""What validation finds per table and per pipeline: everything that would make a run fail, before it runs.

Each table's problems land on its preview row (`errors`, `warnings`); problems of the pipeline as a
whole (the source cannot replicate, a right is missing on a database) come back apart. Whether a
start is accepted is decided from both by `startable`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from psycopg2.extensions import cursor as PgCursor

from core.cdc import mssql_source, pg_source
from core.connectors.base import ConnectionSpec
from core.errors import ConnectorError, StudioError
from core.fullload import LoadOptions, TablePlan, pgsql
from core.fullload.findings import table_findings
from core.pipeline_schemas import PreviewRow

_SOURCE_RIGHTS_SQL = """
SELECT c.relname, has_table_privilege(c.oid, 'SELECT'), pg_has_role(c.relowner, 'USAGE'),
       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = ANY(%s)
"""
_TARGET_RIGHTS_SQL = """
SELECT c.relname, has_table_privilege(c.oid, 'INSERT'), has_table_privilege(c.oid, 'UPDATE'),
       has_table_privilege(c.oid, 'DELETE'), has_table_privilege(c.oid, 'TRUNCATE')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = ANY(%s)
"""
_DATABASE_RIGHTS_SQL = """
SELECT has_database_privilege(current_database(), 'CREATE'),
       (SELECT has_schema_privilege(n.oid, 'CREATE') FROM pg_namespace n WHERE n.nspname = %s),
       EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'cdc_studio')
"""


@dataclass
class Checked:
    """The pipeline's own problems; the tables' are on their rows."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class Setup:
    """What validation needs to know of a pipeline."""

    source: ConnectionSpec
    target: ConnectionSpec
    source_schema: str
    target_schema: str
    mode: str
    policy: str
    auto_create: bool
    schema_drift: str
    slot: str | None


def check(setup: Setup, rows: list[PreviewRow]) -> Checked:
    """Fill each row's errors and warnings; return the pipeline-wide ones."""
    out = Checked()
    cdc = setup.mode != "FULL_LOAD_ONLY"
    _row_basics(setup, rows, cdc)
    if cdc and setup.source.kind == "postgresql":
        with pg_source.shared_session(setup.source):  # one source session for every table's check
            out.errors += pg_source.check_wal_level(setup.source, setup.slot)
            _replica_identity(setup, rows)
    if cdc and setup.source.kind == "sqlserver":
        tables = [(setup.source_schema, _name(r.source)) for r in rows]
        try:
            out.errors += mssql_source.check_cdc(setup.source, tables)
        except ConnectorError as exc:
            out.errors.append(f"cannot check SQL Server CDC on the source: {exc}")
    if setup.source.kind == "postgresql":
        _source_rights(setup, rows, cdc, out)
    if setup.target.kind == "postgresql":
        _target_rights(setup, rows, cdc, out)
    return out


def startable(pipeline_errors: list[str], rows: list[PreviewRow], on_table_error: str) -> bool:
    """A start is accepted without pipeline errors and, per on_table_error, with tables that fail alone."""
    if pipeline_errors or not rows:
        return False
    failing = [r for r in rows if r.errors]
    if on_table_error == "stop":
        return not failing
    return len(failing) < len(rows)


def _name(qualified: str) -> str:
    return qualified.split(".", 1)[1]


def _row_basics(setup: Setup, rows: list[PreviewRow], cdc: bool) -> None:
    for r in rows:
        if r.target_status == "missing" and setup.mode != "CDC_ONLY":
            r.errors.append(f"{r.target} does not exist and auto_create is off")
        if not r.has_primary_key:
            message = f"{r.source} has no primary key"
            if cdc:
                r.errors.append(f"{message}: CDC needs one (ALTER TABLE ... ADD PRIMARY KEY)")
            else:
                r.warnings.append(f"{message}: the target is created without one")


def _replica_identity(setup: Setup, rows: list[PreviewRow]) -> None:
    for r in rows:
        if not r.has_primary_key:
            continue  # said already
        r.errors += pg_source.check_replica_identity(setup.source, [(setup.source_schema, _name(r.source))])


def add_findings(setup: Setup, rows: list[PreviewRow]) -> list[str]:
    """What each table's columns will become and what would fail, onto its row (core.fullload.findings);
    returns the problem of checking at all (a side cannot be reached), if any."""
    plans = [TablePlan(setup.source_schema, _name(r.source), setup.target_schema, _name(r.target)) for r in rows]
    options = LoadOptions(
        auto_create=setup.auto_create, target_table_policy=setup.policy, schema_drift=setup.schema_drift
    )
    try:
        found = table_findings(setup.source, setup.target, plans, options, cdc=setup.mode != "FULL_LOAD_ONLY")
    except StudioError as exc:
        return [f"cannot check the tables' columns: {exc}"]
    for r in rows:
        for finding in found.get(r.source, []):
            (r.errors if finding.level == "error" else r.warnings).append(finding.message)
    return []


def _source_rights(setup: Setup, rows: list[PreviewRow], cdc: bool, out: Checked) -> None:
    names = [_name(r.source) for r in rows]
    try:
        with _session(setup.source) as cur:
            rights = _rows_by_name(cur, _SOURCE_RIGHTS_SQL, (setup.source_schema, names))
    except StudioError as exc:
        out.errors.append(f"cannot check rights on the source: {exc}")
        return
    user = setup.source.username
    for r in rows:
        got = rights.get(_name(r.source))
        if got is None:
            continue
        may_select, owns, superuser = got
        if not may_select:
            r.errors.append(f"user {user} may not read {r.source} on the source: GRANT SELECT ON {r.source} TO {user}")
        if cdc and not (owns or superuser):
            r.errors.append(
                f"user {user} does not own {r.source}, so it cannot be added to the pipeline's "
                "publication: make the user a member of the table's owner role (or create the "
                "publication as the owner)"
            )


def _target_rights(setup: Setup, rows: list[PreviewRow], cdc: bool, out: Checked) -> None:
    try:
        with _session(setup.target) as cur:
            rights = _rows_by_name(cur, _TARGET_RIGHTS_SQL, (setup.target_schema, [_name(r.target) for r in rows]))
            cur.execute(_DATABASE_RIGHTS_SQL, (setup.target_schema,))
            db = pgsql.one_row(cur)
    except StudioError as exc:
        out.errors.append(f"cannot check rights on the target: {exc}")
        return
    may_create_db, may_create_schema, has_offsets_schema = db
    user, database = setup.target.username, setup.target.database
    creating = [r for r in rows if r.target_status == "will_be_created"]
    if creating and may_create_schema is None and not may_create_db:
        out.errors.append(
            f"schema {setup.target_schema} does not exist on the target and user {user} may not "
            f"create schemas in {database}: GRANT CREATE ON DATABASE {database} TO {user}"
        )
    elif creating and may_create_schema is False:
        out.errors.append(
            f"user {user} may not create tables in target schema {setup.target_schema}: "
            f"GRANT CREATE ON SCHEMA {setup.target_schema} TO {user}"
        )
    if cdc and not has_offsets_schema and not may_create_db:
        out.errors.append(
            f"CDC keeps its applied position in schema cdc_studio on the target, which user {user} "
            f"may not create: GRANT CREATE ON DATABASE {database} TO {user}, or create it"
        )
    needed = ["INSERT"] + (["UPDATE", "DELETE"] if cdc else []) + (["TRUNCATE"] if setup.policy == "truncate" else [])
    for r in rows:
        got = rights.get(_name(r.target))
        if got is None:
            continue
        have = dict(zip(("INSERT", "UPDATE", "DELETE", "TRUNCATE"), got, strict=True))
        missing = [right for right in needed if not have[right]]
        if missing:
            r.errors.append(
                f"user {user} lacks {', '.join(missing)} on target table {r.target}: "
                f"GRANT {', '.join(missing)} ON {r.target} TO {user}"
            )


@contextmanager
def _session(spec: ConnectionSpec) -> Iterator[PgCursor]:
    """A cursor on one short session for a few catalog queries; driver errors in the project's words."""
    conn = pgsql.connect(spec)
    try:
        with pgsql.pg_errors(spec), conn.cursor() as cur:
            yield cur
    finally:
        conn.close()


def _rows_by_name(cur: PgCursor, statement: str, params: tuple) -> dict[str, tuple]:
    cur.execute(statement, params)
    return {row[0]: tuple(row[1:]) for row in cur.fetchall()}
