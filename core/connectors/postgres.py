"""PostgreSQL behind the connector interface, with psycopg2.

Every call opens its own short read-only session on the database it was asked about and
closes it; every psycopg2 exception leaves as a `core.errors.ConnectorError` (`translate_error`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg2
import psycopg2.extras
from psycopg2 import sql
from psycopg2.extensions import connection as PgConnection
from psycopg2.extensions import cursor as PgCursor

from core.connectors import pg_readiness
from core.connectors.base import (
    ColumnInfo,
    ConnectionSpec,
    Connector,
    DatabaseInfo,
    ForeignKeyInfo,
    IndexInfo,
    ReadinessItem,
    SchemaInfo,
    TableDetail,
    TableInfo,
    TestResult,
)
from core.errors import (
    AuthFailed,
    ConnectionLost,
    ConnectionRefused,
    ConnectorError,
    ConnectTimeout,
    DatabaseNotFound,
    ObjectNotFound,
    PrivilegeMissing,
    QueryFailed,
    SerializationFailure,
    ServerUnavailable,
    SlotInvalidated,
    SnapshotUnavailable,
    UnknownHost,
)

APPLICATION_NAME = "cdc-studio"
STATEMENT_TIMEOUT_MS = 30_000
# Fields of the spec always win over same-named entries in `spec.options`.
_RESERVED_KEYWORDS = {"host", "port", "dbname", "user", "password", "connect_timeout"}

_USER_SCHEMA_FILTER = """
    n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND n.nspname NOT LIKE 'pg\\_toast%%' AND n.nspname NOT LIKE 'pg\\_temp\\_%%'
"""

# Rows and size count heap tables (leaf partitions included, in the schema they live in), so the
# schema where the data is can be opened first; reltuples -1 (never analyzed) counts as 0 rows.
_SCHEMAS_SQL = f"""
SELECT n.nspname,
       count(c.oid) FILTER (WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition),
       coalesce(sum(greatest(c.reltuples, 0)) FILTER (WHERE c.relkind = 'r'), 0)::bigint,
       coalesce(sum(pg_total_relation_size(c.oid)) FILTER (WHERE c.relkind = 'r'), 0)::bigint
FROM pg_namespace n LEFT JOIN pg_class c ON c.relnamespace = n.oid
WHERE {_USER_SCHEMA_FILTER} GROUP BY n.nspname ORDER BY n.nspname
"""

# One catalog pass: tables of a schema (optionally one table), their storage size summed over
# leaf partitions, and a planner-style row estimate; `unknown` marks tables whose reltuples is
# -1 (never analyzed or vacuumed), for which the estimate cannot be trusted.
_TABLES_SQL = """
WITH t AS (
    SELECT c.oid, n.nspname, c.relname, c.relkind
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p') AND NOT c.relispartition
      AND (%(table)s::text IS NULL OR c.relname = %(table)s::text)
), leaf AS (
    SELECT t.oid AS root, t.oid AS relid FROM t WHERE t.relkind = 'r'
    UNION ALL
    SELECT t.oid, pt.relid FROM t, pg_partition_tree(t.oid) pt WHERE t.relkind = 'p' AND pt.isleaf
), stats AS (
    SELECT leaf.root,
           bool_or(c.reltuples < 0) AS unknown,
           sum(CASE WHEN c.reltuples < 0 THEN 0
                    WHEN c.relpages > 0
                        THEN c.reltuples / c.relpages
                             * (pg_relation_size(c.oid) / current_setting('block_size')::int)
                    ELSE c.reltuples END) AS estimate,
           sum(pg_total_relation_size(c.oid)) AS size_bytes
    FROM leaf JOIN pg_class c ON c.oid = leaf.relid
    GROUP BY leaf.root
)
SELECT t.nspname, t.relname,
       coalesce(round(s.estimate), 0)::bigint,
       coalesce(s.size_bytes, 0)::bigint,
       EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = t.oid AND k.contype = 'p'),
       coalesce(s.unknown, false)
FROM t LEFT JOIN stats s ON s.root = t.oid
ORDER BY t.relname
"""

_COLUMNS_SQL = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
       CASE WHEN a.attgenerated = '' THEN pg_get_expr(d.adbin, d.adrelid) END
FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""

_PRIMARY_KEY_SQL = """
SELECT a.attname
FROM pg_constraint con
CROSS JOIN unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
WHERE con.conrelid = %s AND con.contype = 'p'
ORDER BY k.ord
"""

# `conparentid = 0` leaves out the copies PostgreSQL makes of a constraint for each partition.
_FOREIGN_KEYS_SQL = """
SELECT con.conname, n.nspname, c.relname,
       array(SELECT a.attname::text
             FROM unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
             ORDER BY k.ord),
       rn.nspname, rc.relname,
       array(SELECT a.attname::text
             FROM unnest(con.confkey) WITH ORDINALITY AS k(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum
             ORDER BY k.ord)
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_class rc ON rc.oid = con.confrelid
JOIN pg_namespace rn ON rn.oid = rc.relnamespace
WHERE con.contype = 'f' AND con.conparentid = 0 AND {where}
ORDER BY n.nspname, c.relname, con.conname
"""
_FK_FILTERS = {
    "schema": "n.nspname = %s",
    "outgoing": "con.conrelid = %s",
    "incoming": "con.confrelid = %s",
}

# Plain key columns by name; expressions as PostgreSQL prints them. INCLUDE columns are left out.
_INDEXES_SQL = """
SELECT i.relname, ix.indisunique, ix.indisprimary,
       array(SELECT CASE WHEN ix.indkey[k - 1] <> 0
                         THEN (SELECT a.attname::text FROM pg_attribute a
                               WHERE a.attrelid = ix.indrelid AND a.attnum = ix.indkey[k - 1])
                         ELSE pg_get_indexdef(ix.indexrelid, k, true) END
             FROM generate_series(1, ix.indnkeyatts) AS k
             ORDER BY k)
FROM pg_index ix JOIN pg_class i ON i.oid = ix.indexrelid
WHERE ix.indrelid = %s
ORDER BY ix.indisprimary DESC, i.relname
"""


def translate_error(exc: BaseException, spec: ConnectionSpec, database: str | None = None) -> ConnectorError:
    """A psycopg2 exception as the project's error, in plain words and without the password."""
    if isinstance(exc, ConnectorError):
        return exc
    database = database or spec.database
    raw = str(getattr(exc, "pgerror", None) or exc).strip()
    pgcode = getattr(exc, "pgcode", None)
    err = _by_pgcode(pgcode, raw, spec, database) if pgcode else None
    if err is None:
        err = _by_message(raw, spec, database)
    return type(err)(_scrub(str(err), spec.password))


# SQLSTATEs after which the same work, started again, may succeed (classes 08, 53, and these).
_TRANSIENT_CODES = {
    "57P01": ConnectionLost,  # admin_shutdown: terminating connection due to administrator command
    "57P02": ConnectionLost,  # crash_shutdown
    "57P03": ServerUnavailable,  # cannot_connect_now: starting up, shutting down, in recovery
    "57P05": ConnectionLost,  # idle_session_timeout
    "40001": SerializationFailure,
    "40P01": SerializationFailure,  # deadlock_detected
    "55P03": SerializationFailure,  # lock_not_available
    "55006": ServerUnavailable,  # object_in_use: e.g. the slot is still held by the session that just broke
}
_SLOT_GONE = ("can no longer get changes from replication slot", "cannot read from logical replication slot")


def _by_pgcode(pgcode: str, raw: str, spec: ConnectionSpec, database: str) -> ConnectorError | None:
    if pgcode in ("28P01", "28000"):
        return AuthFailed(f"password authentication failed for user {spec.username}")
    transient = _TRANSIENT_CODES.get(pgcode)
    if transient is not None:
        return transient(f"{_server_message(raw)} ({_where(spec)})")
    if pgcode.startswith("08"):
        return ConnectionLost(f"the connection to {_where(spec)} failed: {_server_message(raw)}")
    if pgcode.startswith("53"):  # too_many_connections, disk_full, out_of_memory: the server may recover
        return ServerUnavailable(f"{_server_message(raw)} ({_where(spec)})")
    if pgcode == "42501":
        return PrivilegeMissing(f"{_server_message(raw)}: grant it to user {spec.username}")
    text = raw.lower()
    if any(s in text for s in _SLOT_GONE) or (pgcode == "58P01" and "wal segment" in text):
        return SlotInvalidated(_server_message(raw))
    if pgcode == "42704" and "replication slot" in text:
        return SlotInvalidated(_server_message(raw))
    if pgcode == "22023" and "snapshot" in text:
        return SnapshotUnavailable(_server_message(raw))
    if pgcode == "3D000":
        return DatabaseNotFound(f"database '{database}' does not exist on {_where(spec)}")
    if pgcode in ("42P01", "3F000"):
        return ObjectNotFound(_server_message(raw))
    if pgcode == "57014":
        return QueryFailed(f"query cancelled (statement timeout?): {_server_message(raw)}")
    return QueryFailed(_server_message(raw))


def _by_message(raw: str, spec: ConnectionSpec, database: str) -> ConnectorError:
    text = raw.lower()
    if "password authentication failed" in text or "no password supplied" in text:
        return AuthFailed(f"password authentication failed for user {spec.username}")
    if "no pg_hba.conf entry" in text:
        return AuthFailed(
            f"the server at {_where(spec)} does not accept user {spec.username} from this host (no pg_hba.conf entry)"
        )
    if re.search(r'role ".*" does not exist', text):
        return AuthFailed(f"password authentication failed for user {spec.username} (no such role)")
    if any(s in text for s in _SERVER_UNAVAILABLE):
        return ServerUnavailable(f"{_server_message(raw)} ({_where(spec)})")
    if any(s in text for s in _CONNECTION_LOST):
        return ConnectionLost(f"the connection to {_where(spec)} broke: {_server_message(raw)}")
    if "could not translate host name" in text or "name or service not known" in text:
        return UnknownHost(f"unknown host '{spec.host}'")
    if "connection refused" in text:
        return ConnectionRefused(
            f"connection refused by {_where(spec)} — is the server running and accepting TCP connections?"
        )
    if "timeout expired" in text or "timed out" in text:
        return ConnectTimeout(f"timeout after {spec.connect_timeout_s} s connecting to {_where(spec)}")
    if re.search(r'database ".*" does not exist', text):
        return DatabaseNotFound(f"database '{database}' does not exist on {_where(spec)}")
    return QueryFailed(_server_message(raw) or "the database driver failed without a message")


# libpq's words (no SQLSTATE) for a server that is there but not serving, and for a session that broke.
_SERVER_UNAVAILABLE = (
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "the database system is not yet accepting connections",
    "too many clients already",
    "remaining connection slots are reserved",
)
_CONNECTION_LOST = (
    "server closed the connection unexpectedly",
    "terminating connection due to administrator command",
    "connection already closed",
    "no connection to the server",
    "could not receive data from server",
    "could not send data to server",
    "connection reset by peer",
    "broken pipe",
    "ssl syscall error",
    "ssl connection has been closed unexpectedly",
    "lost synchronization with server",
    "server conn crashed",
    "eof detected",
    # libpq, reading a replication stream the server ended (it sent CopyDone while shutting down)
    "no copy in progress",
)


def _where(spec: ConnectionSpec) -> str:
    return f"{spec.host}:{spec.port or PostgresConnector.default_port}"


def _server_message(raw: str) -> str:
    """The server's own words: libpq's 'connection to server ... failed:' prefix and severity dropped."""
    text = re.sub(r"^connection to server at .*? failed:\s*", "", raw.strip(), flags=re.S)
    text = re.sub(r"^(FATAL|ERROR):\s+", "", text)
    return " ".join(text.split())


def _scrub(message: str, password: str) -> str:
    return message.replace(password, "***") if password else message


# ------------------------------------------------------------------ sessions: the one place they are made


def connect_kwargs(
    spec: ConnectionSpec,
    *,
    application_name: str,
    database: str | None = None,
    client_encoding: str | None = None,
    own_name: bool = False,
) -> dict[str, Any]:
    """psycopg2 keywords of a session on `spec` (on `database` if given): the spec's fields win over
    same-named `spec.options`; `application_name` is a default (`own_name`: always ours)."""
    reserved = _RESERVED_KEYWORDS if client_encoding is None else _RESERVED_KEYWORDS | {"client_encoding"}
    kwargs: dict[str, Any] = {k: v for k, v in spec.options.items() if k not in reserved}
    if own_name:
        kwargs["application_name"] = application_name
    else:
        kwargs.setdefault("application_name", application_name)
    kwargs.update(
        host=spec.host,
        port=spec.port or PostgresConnector.default_port,
        dbname=database or spec.database,
        user=spec.username,
        password=spec.password,
        connect_timeout=spec.connect_timeout_s,
    )
    if client_encoding is not None:
        kwargs["client_encoding"] = client_encoding
    return kwargs


def connect(
    spec: ConnectionSpec,
    *,
    application_name: str,
    database: str | None = None,
    session_sql: str | None = None,
    autocommit: bool = True,
    client_encoding: str | None = None,
    own_name: bool = False,
) -> PgConnection:
    """A plain session on `spec`: `session_sql` runs first (autocommit), then the session is left in
    `autocommit` mode. Driver errors leave as the project's (translate_error)."""
    kwargs = connect_kwargs(
        spec, application_name=application_name, database=database, client_encoding=client_encoding, own_name=own_name
    )
    try:
        conn = psycopg2.connect(**kwargs)
    except psycopg2.Error as exc:
        # from None: the driver's exception is already summarized and must not drag the dsn along.
        raise translate_error(exc, spec, database) from None
    try:
        conn.autocommit = True
        if session_sql:
            with conn.cursor() as cur:
                cur.execute(session_sql)
        conn.autocommit = autocommit
    except psycopg2.Error as exc:
        conn.close()
        raise translate_error(exc, spec, database) from None
    except BaseException:
        conn.close()
        raise
    return conn


def replication_connect(
    spec: ConnectionSpec, application_name: str, server_options: str = ""
) -> psycopg2.extras.LogicalReplicationConnection:
    """A logical replication session on `spec` named `application_name` (always: a slot's sessions are
    told apart by it), UTF-8 values, with `server_options` (`-c name=value ...`) as its settings."""
    kwargs = connect_kwargs(spec, application_name=application_name, client_encoding="UTF8", own_name=True)
    kwargs["options"] = f"{kwargs.get('options', '')} {server_options}".strip()
    try:
        return psycopg2.connect(connection_factory=psycopg2.extras.LogicalReplicationConnection, **kwargs)
    except psycopg2.Error as exc:
        raise translate_error(exc, spec) from None


def _version(server_version: int) -> str:
    """libpq's integer version (150018, 90624) as people write it."""
    major = server_version // 10000
    if major >= 10:
        return f"PostgreSQL {major}.{server_version % 10000}"
    return f"PostgreSQL {major}.{server_version // 100 % 100}.{server_version % 100}"


class PostgresConnector(Connector):
    """PostgreSQL discovery over short read-only psycopg2 sessions."""

    kind = "postgresql"
    default_port = 5432

    @contextmanager
    def _cursor(self, database: str | None = None) -> Iterator[PgCursor]:
        """A cursor on a fresh read-only autocommit session with a statement timeout."""
        conn = connect(
            self.spec,
            application_name=APPLICATION_NAME,
            database=database,
            session_sql=f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}; SET default_transaction_read_only = on",
        )
        try:
            with conn.cursor() as cur:
                yield cur
        except psycopg2.Error as exc:
            raise translate_error(exc, self.spec, database) from exc
        finally:
            conn.close()

    def test(self) -> TestResult:
        """Connect, run SELECT 1 and report the server version and the round-trip time."""
        started = time.perf_counter()
        conn = connect(self.spec, application_name=APPLICATION_NAME, autocommit=False)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
                cur.fetchone()
            latency_ms = (time.perf_counter() - started) * 1000
            return TestResult(server_version=_version(conn.server_version), latency_ms=round(latency_ms, 2))
        except psycopg2.Error as exc:
            raise translate_error(exc, self.spec) from exc
        finally:
            conn.close()

    def cdc_readiness(self, database: str) -> list[ReadinessItem]:
        """The CDC readiness checklist: server settings, the user's REPLICATION attribute, tables without a PK."""
        with self._cursor(database) as cur:
            return pg_readiness.readiness(cur, self.spec.username)

    def list_databases(self) -> list[DatabaseInfo]:
        """Non-template databases that accept connections; size only where the login may connect."""
        with self._cursor() as cur:
            cur.execute(
                "SELECT datname, CASE WHEN has_database_privilege(oid, 'CONNECT') "
                "THEN pg_database_size(oid) END "
                "FROM pg_database WHERE NOT datistemplate AND datallowconn ORDER BY datname"
            )
            return [DatabaseInfo(name=name, size_bytes=size) for name, size in cur.fetchall()]

    def list_schemas(self, database: str) -> list[SchemaInfo]:
        """User schemas of `database`: table counts (partitions not counted), estimated rows and size."""
        with self._cursor(database) as cur:
            cur.execute(_SCHEMAS_SQL, ())
            return [
                SchemaInfo(name=name, table_count=count, row_count=rows, size_bytes=size)
                for name, count, rows, size in cur.fetchall()
            ]

    def list_tables(self, database: str, schema: str, exact: bool = False) -> list[TableInfo]:
        """Tables of a schema: estimates from the catalog, exact counts where asked or where unknown."""
        with self._cursor(database) as cur:
            tables = _table_stats(cur, schema, None)
            if not tables:
                _require_schema(cur, database, schema)
                return []
            need = [t for t, unknown in tables if exact or unknown]
            for info, count in zip(need, _exact_counts(cur, schema, [t.name for t in need]), strict=True):
                info.row_count, info.row_count_exact = count, True
            return [t for t, _ in tables]

    def count_rows(self, database: str, schema: str, table: str) -> int:
        """The exact row count of one table (count(*))."""
        with self._cursor(database) as cur:
            _require_table(cur, database, schema, table)
            return _exact_counts(cur, schema, [table])[0]

    def table_detail(self, database: str, schema: str, table: str) -> TableDetail:
        """Columns, primary key, foreign keys both ways, indexes, row count and size of one table."""
        with self._cursor(database) as cur:
            oid = _require_table(cur, database, schema, table)
            cur.execute(_COLUMNS_SQL, (oid,))
            columns = [
                ColumnInfo(name=n, type=t, nullable=nullable, default=d, position=i)
                for i, (n, t, nullable, d) in enumerate(cur.fetchall(), start=1)
            ]
            cur.execute(_PRIMARY_KEY_SQL, (oid,))
            primary_key = [r[0] for r in cur.fetchall()]
            stats = _table_stats(cur, schema, table)
            row_count, size_bytes = 0, 0
            if stats:
                info, unknown = stats[0]
                row_count = _exact_counts(cur, schema, [table])[0] if unknown else info.row_count
                size_bytes = info.size_bytes
            return TableDetail(
                schema=schema,
                name=table,
                columns=columns,
                primary_key=primary_key,
                foreign_keys=_foreign_keys(cur, "outgoing", oid),
                referenced_by=_foreign_keys(cur, "incoming", oid),
                indexes=_indexes(cur, oid),
                row_count=row_count,
                size_bytes=size_bytes,
            )

    def foreign_keys(self, database: str, schema: str) -> list[ForeignKeyInfo]:
        """Every foreign key whose referencing table is in `schema`, columns in constraint order."""
        with self._cursor(database) as cur:
            return _foreign_keys(cur, "schema", schema)


def _table_stats(cur: PgCursor, schema: str, table: str | None) -> list[tuple[TableInfo, bool]]:
    """(TableInfo with the estimate, estimate-unknown flag) for a schema's tables, or one table."""
    cur.execute(_TABLES_SQL, {"schema": schema, "table": table})
    return [
        (TableInfo(schema=s, name=n, row_count=rows, size_bytes=size, has_primary_key=pk), unknown)
        for s, n, rows, size, pk, unknown in cur.fetchall()
    ]


def _exact_counts(cur: PgCursor, schema: str, tables: list[str]) -> list[int]:
    """count(*) of each table in one UNION ALL round trip, in the order given."""
    if not tables:
        return []
    parts = [
        sql.SQL("SELECT {i}, count(*) FROM {s}.{t}").format(
            i=sql.Literal(i), s=sql.Identifier(schema), t=sql.Identifier(table)
        )
        for i, table in enumerate(tables)
    ]
    cur.execute(sql.SQL(" UNION ALL ").join(parts))
    counts = dict(cur.fetchall())
    return [counts[i] for i in range(len(tables))]


def _require_schema(cur: PgCursor, database: str, schema: str) -> None:
    cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
    if cur.fetchone() is None:
        raise ObjectNotFound(f"schema {schema} does not exist in database {database}")


def _require_table(cur: PgCursor, database: str, schema: str, table: str) -> int:
    """The table's oid, or ObjectNotFound in words a person understands."""
    cur.execute(
        "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')",
        (schema, table),
    )
    row = cur.fetchone()
    if row is None:
        raise ObjectNotFound(f"table {schema}.{table} does not exist in database {database}")
    return row[0]


def _foreign_keys(cur: PgCursor, direction: str, value: Any) -> list[ForeignKeyInfo]:
    cur.execute(_FOREIGN_KEYS_SQL.format(where=_FK_FILTERS[direction]), (value,))
    return [
        ForeignKeyInfo(
            name=name,
            schema=s,
            table=t,
            columns=list(cols),
            referenced_schema=rs,
            referenced_table=rt,
            referenced_columns=list(rcols),
        )
        for name, s, t, cols, rs, rt, rcols in cur.fetchall()
    ]


def _indexes(cur: PgCursor, oid: int) -> list[IndexInfo]:
    cur.execute(_INDEXES_SQL, (oid,))
    return [
        IndexInfo(name=name, columns=list(cols), unique=unique, primary=primary)
        for name, unique, primary, cols in cur.fetchall()
    ]
