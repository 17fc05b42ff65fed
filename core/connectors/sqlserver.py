"""SQL Server behind the connector interface, with pyodbc.

Every call opens its own short autocommit session on the database it was asked about and closes
it; every pyodbc exception leaves as a `core.errors.ConnectorError` (`translate_error`). The SQL
lives in module constants and small `(sql, params)` builders so tests can check it without a
server, and every SQL Server session of the app is made in one function (`odbc_connect`), the
one seam tests replace.
"""

from __future__ import annotations

import re
import socket
import struct
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

from core.connectors.base import (
    ColumnInfo,
    ConnectionSpec,
    Connector,
    DatabaseInfo,
    ForeignKeyInfo,
    IndexInfo,
    SchemaInfo,
    TableDetail,
    TableInfo,
    TestResult,
)
from core.errors import (
    AuthFailed,
    ConnectionRefused,
    ConnectorError,
    ConnectTimeout,
    DatabaseNotFound,
    DriverMissing,
    ObjectNotFound,
    PrivilegeMissing,
    QueryFailed,
    SerializationFailure,
    ServerUnavailable,
    UnknownHost,
    ValidationFailed,
)

Query = tuple[str, tuple[Any, ...]]

DEFAULT_PORT = 1433
PAGE_BYTES = 8192
INSTALL_HINT = "install unixODBC and an ODBC driver for SQL Server (msodbcsql18 or tdsodbc)"
# The spec's own fields always win over same-named entries in `spec.options`.
_RESERVED_KEYWORDS = {"driver", "odbc_driver", "server", "port", "database", "uid", "pwd", "user", "password"}
_SYSTEM_DATABASES = ("master", "tempdb", "model", "msdb")
# Fixed database-role schemas, and `cdc`, which holds SQL Server CDC's own change tables.
_SYSTEM_SCHEMAS = (
    "sys",
    "INFORMATION_SCHEMA",
    "guest",
    "cdc",
    "db_owner",
    "db_accessadmin",
    "db_securityadmin",
    "db_ddladmin",
    "db_backupoperator",
    "db_datareader",
    "db_datawriter",
    "db_denydatareader",
    "db_denydatawriter",
)
_EXACT_COUNT_CHUNK = 200  # tables per UNION ALL statement; keeps one statement's compile time sane

# ---------------------------------------------------------------------------------------------
# SQL


def _in_list(values: Sequence[str]) -> str:
    """A literal IN list of fixed, known-safe names (never user input)."""
    return ", ".join("N'" + v.replace("'", "''") + "'" for v in values)


VERSION_SQL = "SELECT @@VERSION"

# Sizes come from sys.master_files, which logins without VIEW ANY DEFINITION see empty (NULL size).
DATABASES_SQL = f"""
SELECT d.name, SUM(CAST(mf.size AS BIGINT)) * {PAGE_BYTES} AS size_bytes
FROM sys.databases AS d
LEFT JOIN sys.master_files AS mf ON mf.database_id = d.database_id
WHERE d.state_desc = 'ONLINE' AND d.name NOT IN ({_in_list(_SYSTEM_DATABASES)}) AND HAS_DBACCESS(d.name) = 1
GROUP BY d.name
ORDER BY d.name
"""
# Azure SQL Database has no sys.master_files.
DATABASES_PLAIN_SQL = f"""
SELECT d.name, NULL AS size_bytes
FROM sys.databases AS d
WHERE d.state_desc = 'ONLINE' AND d.name NOT IN ({_in_list(_SYSTEM_DATABASES)}) AND HAS_DBACCESS(d.name) = 1
ORDER BY d.name
"""

SCHEMAS_SQL = f"""
SELECT s.name, COUNT(t.object_id) AS table_count
FROM sys.schemas AS s
LEFT JOIN sys.tables AS t ON t.schema_id = s.schema_id AND t.is_ms_shipped = 0
WHERE s.name NOT IN ({_in_list(_SYSTEM_SCHEMAS)})
GROUP BY s.name
ORDER BY s.name
"""

# Per table: rows of the heap or clustered index (index_id 0/1), pages reserved by all its indexes.
STATS_DMV = """
SELECT ps.object_id,
       SUM(CASE WHEN ps.index_id IN (0, 1) THEN ps.row_count ELSE 0 END) AS row_count,
       SUM(ps.reserved_page_count) AS reserved_pages
FROM sys.dm_db_partition_stats AS ps
GROUP BY ps.object_id
"""
# The same from catalog views, for logins without VIEW DATABASE STATE (the DMV needs it).
STATS_CATALOG = """
SELECT r.object_id, r.row_count, sz.reserved_pages
FROM (SELECT p.object_id, SUM(CASE WHEN p.index_id IN (0, 1) THEN p.rows ELSE 0 END) AS row_count
      FROM sys.partitions AS p
      GROUP BY p.object_id) AS r
LEFT JOIN (SELECT p.object_id, SUM(a.total_pages) AS reserved_pages
           FROM sys.partitions AS p
           JOIN sys.allocation_units AS a
             ON a.container_id = CASE WHEN a.type IN (1, 3) THEN p.hobt_id ELSE p.partition_id END
           GROUP BY p.object_id) AS sz ON sz.object_id = r.object_id
"""

_TABLES_SQL = """
SELECT t.name,
       CAST(COALESCE(st.row_count, 0) AS BIGINT) AS row_count,
       CAST(COALESCE(st.reserved_pages, 0) AS BIGINT) * {page} AS size_bytes,
       CAST(CASE WHEN EXISTS (SELECT 1 FROM sys.indexes AS i
                              WHERE i.object_id = t.object_id AND i.is_primary_key = 1)
            THEN 1 ELSE 0 END AS BIT) AS has_primary_key
FROM sys.tables AS t
JOIN sys.schemas AS s ON s.schema_id = t.schema_id
LEFT JOIN ({stats}) AS st ON st.object_id = t.object_id
WHERE s.name = ? AND t.is_ms_shipped = 0
ORDER BY t.name
"""

_TABLE_STATS_SQL = """
SELECT CAST(COALESCE(st.row_count, 0) AS BIGINT), CAST(COALESCE(st.reserved_pages, 0) AS BIGINT) * {page}
FROM ({stats}) AS st
WHERE st.object_id = ?
"""

SCHEMA_EXISTS_SQL = "SELECT s.schema_id FROM sys.schemas AS s WHERE s.name = ?"

TABLE_ID_SQL = """
SELECT t.object_id
FROM sys.tables AS t
JOIN sys.schemas AS s ON s.schema_id = t.schema_id
WHERE s.name = ? AND t.name = ?
"""

# Alias types (sysname, user-defined) are shown as their base system type; CLR types
# (geography, hierarchyid ...) keep their own name.
COLUMNS_SQL = """
SELECT c.name, COALESCE(bt.name, ty.name) AS type_name, c.max_length, c.precision, c.scale,
       c.is_nullable, dc.definition AS default_definition, c.column_id
FROM sys.columns AS c
JOIN sys.types AS ty ON ty.user_type_id = c.user_type_id
LEFT JOIN sys.types AS bt
  ON bt.user_type_id = c.system_type_id AND ty.user_type_id <> ty.system_type_id AND ty.is_assembly_type = 0
LEFT JOIN sys.default_constraints AS dc ON dc.object_id = c.default_object_id
WHERE c.object_id = ?
ORDER BY c.column_id
"""

# Key columns only (INCLUDE columns left out), in key order.
INDEXES_SQL = """
SELECT i.name, i.is_unique, i.is_primary_key, c.name AS column_name
FROM sys.indexes AS i
JOIN sys.index_columns AS ic ON ic.object_id = i.object_id AND ic.index_id = i.index_id
JOIN sys.columns AS c ON c.object_id = ic.object_id AND c.column_id = ic.column_id
WHERE i.object_id = ? AND i.index_id > 0 AND i.is_hypothetical = 0 AND ic.is_included_column = 0
ORDER BY i.is_primary_key DESC, i.name, ic.key_ordinal, ic.index_column_id
"""

_FOREIGN_KEYS_SQL = """
SELECT fk.name, ps.name AS schema_name, pt.name AS table_name, pc.name AS column_name,
       rs.name AS referenced_schema, rt.name AS referenced_table, rc.name AS referenced_column
FROM sys.foreign_keys AS fk
JOIN sys.foreign_key_columns AS fkc ON fkc.constraint_object_id = fk.object_id
JOIN sys.tables AS pt ON pt.object_id = fk.parent_object_id
JOIN sys.schemas AS ps ON ps.schema_id = pt.schema_id
JOIN sys.columns AS pc ON pc.object_id = fkc.parent_object_id AND pc.column_id = fkc.parent_column_id
JOIN sys.tables AS rt ON rt.object_id = fk.referenced_object_id
JOIN sys.schemas AS rs ON rs.schema_id = rt.schema_id
JOIN sys.columns AS rc ON rc.object_id = fkc.referenced_object_id AND rc.column_id = fkc.referenced_column_id
WHERE {where}
ORDER BY ps.name, pt.name, fk.name, fkc.constraint_column_id
"""
_FK_FILTERS = {
    "schema": "ps.name = ?",
    "outgoing": "fk.parent_object_id = ?",
    "incoming": "fk.referenced_object_id = ?",
}


def quote_ident(name: str) -> str:
    """A SQL Server identifier in [brackets], with every ']' doubled."""
    return "[" + name.replace("]", "]]") + "]"


def tables_query(schema: str, *, dmv: bool = True) -> Query:
    """Tables of one schema with row count, size and PK flag (DMV stats, or catalog-view stats)."""
    return _TABLES_SQL.format(stats=STATS_DMV if dmv else STATS_CATALOG, page=PAGE_BYTES), (schema,)


def table_stats_query(object_id: int, *, dmv: bool = True) -> Query:
    """Row count and size of one table by object id."""
    return _TABLE_STATS_SQL.format(stats=STATS_DMV if dmv else STATS_CATALOG, page=PAGE_BYTES), (object_id,)


def foreign_keys_query(direction: str, value: Any) -> Query:
    """Foreign-key column pairs by schema name, or by the referencing/referenced table's object id."""
    return _FOREIGN_KEYS_SQL.format(where=_FK_FILTERS[direction]), (value,)


def exact_counts_query(schema: str, tables: Sequence[str]) -> Query:
    """COUNT_BIG(*) of each table in one UNION ALL statement; rows come back as (index, count)."""
    parts = [
        f"SELECT {i} AS i, COUNT_BIG(*) AS n FROM {quote_ident(schema)}.{quote_ident(table)}"
        for i, table in enumerate(tables)
    ]
    return "\nUNION ALL\n".join(parts), ()


def render_type(type_name: str, max_length: int | None, precision: int | None, scale: int | None) -> str:
    """A column type as written in DDL, from sys.columns' type name, max_length, precision and scale."""
    name = type_name.lower()
    if name in ("varchar", "char", "varbinary", "binary"):
        return f"{name}(max)" if max_length == -1 else f"{name}({max_length})"
    if name in ("nvarchar", "nchar"):
        # max_length counts bytes; n-types store two bytes per character.
        return f"{name}(max)" if max_length == -1 else f"{name}({(max_length or 0) // 2})"
    if name in ("decimal", "numeric"):
        return f"{name}({precision},{scale})"
    if name in ("datetime2", "datetimeoffset", "time"):
        return f"{name}({scale})"
    return name


def clean_default(definition: str | None) -> str | None:
    """A default constraint's definition without the parentheses SQL Server wraps it in: ((0)) -> 0."""
    if definition is None:
        return None
    text = definition.strip()
    while text.startswith("(") and text.endswith(")") and _wraps_whole(text):
        text = text[1:-1].strip()
    return text


def _wraps_whole(text: str) -> bool:
    """True when the first '(' closes at the last character (so the pair can be dropped)."""
    depth, quoted = 0, False
    for i, ch in enumerate(text):
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
            if depth == 0:
                return i == len(text) - 1
    return False


def short_version(version: str) -> str:
    """@@VERSION's first line without build architecture and KB number."""
    first = (version or "").strip().splitlines()[0] if (version or "").strip() else ""
    first = re.sub(r"\((KB\d+|X64|X86|ARM64)\)", "", first, flags=re.I)
    first = first.replace(" - ", " ")
    return " ".join(first.split())


# ---------------------------------------------------------------------------------------------
# Connection string


def _pyodbc() -> Any:
    """The pyodbc module, or DriverMissing when it (or unixODBC under it) cannot be loaded."""
    try:
        import pyodbc
    except ImportError as exc:
        raise DriverMissing(f"pyodbc cannot be loaded ({exc}): {INSTALL_HINT}") from None
    return pyodbc


SQL_SS_TIMESTAMPOFFSET = -155  # ODBC type code of datetimeoffset: pyodbc has no conversion of its own
_DTO_STRUCT = struct.Struct("<6hI2h")  # the driver's SQL_SS_TIMESTAMPOFFSET_STRUCT, 20 bytes


def datetimeoffset_from_bytes(raw: bytes | None) -> datetime | None:
    """SQL_SS_TIMESTAMPOFFSET_STRUCT (year..second, fraction in ns, offset hours and minutes) as an aware datetime."""
    if raw is None:
        return None
    year, month, day, hour, minute, second, fraction, off_h, off_m = _DTO_STRUCT.unpack(raw)
    zone = timezone(timedelta(hours=off_h, minutes=off_m))
    return datetime(year, month, day, hour, minute, second, fraction // 1000, zone)


def odbc_connect(spec: ConnectionSpec, *, autocommit: bool = True, database: str | None = None) -> Any:
    """A pyodbc session on `spec` (on `database` if given); datetimeoffset values come back as aware
    datetimes. The one place the app opens SQL Server sessions (tests replace it)."""
    pyodbc = _pyodbc()
    try:
        conn = pyodbc.connect(
            build_connection_string(spec, database), timeout=spec.connect_timeout_s, autocommit=autocommit
        )
    except pyodbc.Error as exc:
        # from None: the driver's exception is summarized already and must not drag the string along.
        raise translate_error(exc, spec, database, probe=True) from None
    conn.add_output_converter(SQL_SS_TIMESTAMPOFFSET, datetimeoffset_from_bytes)
    return conn


def pick_driver(spec: ConnectionSpec, installed: Sequence[str] | None = None) -> str:
    """The ODBC driver to use: the one named in the options, else the best installed one."""
    chosen = spec.options.get("driver") or spec.options.get("odbc_driver")
    if chosen:
        return chosen.strip().strip("{}")
    if installed is None:
        installed = _pyodbc().drivers()
    # Microsoft's drivers newest first (18 before 17), then FreeTDS, then anything else for SQL Server.
    versioned = {d: re.fullmatch(r"ODBC Driver (\d+) for SQL Server", d) for d in installed}
    numbered = sorted(((int(m.group(1)), d) for d, m in versioned.items() if m), reverse=True)
    if numbered:
        return numbered[0][1]
    for name in installed:
        if is_freetds(name):
            return name
    others = [d for d in installed if "sql server" in d.lower()]
    if others:
        return others[0]
    raise DriverMissing(f"no ODBC driver for SQL Server is installed: {INSTALL_HINT}")


def is_freetds(driver: str) -> bool:
    """FreeTDS wants SERVER and PORT apart and an explicit TDS version."""
    lowered = driver.lower()
    return "freetds" in lowered or "tdsodbc" in lowered


def odbc_value(value: str) -> str:
    """A connection-string value, braced (with '}' doubled) when ODBC would misread it bare."""
    if value != value.strip() or any(ch in value for ch in ";{}="):
        return "{" + value.replace("}", "}}") + "}"
    return value


def _keyword(key: str) -> str:
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_ ]*", key):
        raise ValidationFailed("options", f"'{key}' is not a valid ODBC connection keyword")
    return key.strip()


def build_connection_string(
    spec: ConnectionSpec, database: str | None = None, installed: Sequence[str] | None = None
) -> str:
    """The ODBC connection string for `spec`, on `database` if given (else the spec's database)."""
    driver = pick_driver(spec, installed)
    host, port = spec.host, spec.port or DEFAULT_PORT
    parts: dict[str, tuple[str, str]] = {}  # lower-case keyword -> (keyword, value)

    def put(key: str, value: str) -> None:
        parts[key.lower()] = (key, value)

    put("DRIVER", "{" + driver.replace("}", "}}") + "}")
    if is_freetds(driver):
        put("SERVER", odbc_value(host))
        put("PORT", str(port))
    else:
        put("SERVER", odbc_value(f"{host},{port}"))
    db = database or spec.database
    if db:
        put("DATABASE", odbc_value(db))
    put("UID", odbc_value(spec.username))
    put("PWD", odbc_value(spec.password))
    if is_freetds(driver):
        put("TDS_Version", "7.4")
    for key, value in spec.options.items():
        if key.lower() in _RESERVED_KEYWORDS:
            continue
        put(_keyword(key), odbc_value(str(value)))
    return ";".join(f"{k}={v}" for k, v in parts.values()) + ";"


# ---------------------------------------------------------------------------------------------
# Errors

_STATE_RE = re.compile(r"\[([0-9A-Z]{5})\]")
_NATIVE_RE = re.compile(r"\((\d+)\)")
_UNKNOWN_HOST = (
    "name resolution",
    "unknown host",
    "getaddrinfo",
    "no such host",
    "name or service not known",
    "could not resolve",
    "server name not found",
    "0x2af9",
    "(11001)",
)
_REFUSED = ("refused", "0x274d", "(10061)")
_TIMEOUT = ("timeout", "timed out", "0x274c", "(10060)")
_TLS = ("ssl provider", "certificate", "tls", "encryption not supported")


def _where(spec: ConnectionSpec) -> str:
    return f"{spec.host}:{spec.port or DEFAULT_PORT}"


def server_message(raw: str) -> str:
    """The server's words: SQLSTATE and [vendor][driver] tags, native numbers and call names dropped."""
    records = [r for r in re.split(r";?\s*\[[0-9A-Z]{5}\]\s*", raw) if r.strip()]
    out: list[str] = []
    for record in records or [raw]:
        text = re.sub(r"^(\s*\[[^\]]*\])+\s*", "", record)
        text = re.sub(r"(\s*\((SQL\w+|\d+)\))+\s*$", "", text)
        text = " ".join(text.split())
        if text and text not in out:
            out.append(text)
    return "; ".join(out)


def scrub(message: str, password: str) -> str:
    """The message with the password (and its braced form) replaced by ***."""
    if password and len(password) >= 3:
        for form in (odbc_value(password), password):
            message = message.replace(form, "***")
    return re.sub(r"(?i)(PWD=)(\{(?:[^}]|\}\})*\}|[^;]*)", r"\1***", message)


def translate_error(
    exc: BaseException, spec: ConnectionSpec, database: str | None = None, *, probe: bool = False
) -> ConnectorError:
    """A pyodbc exception as the project's error, in plain words and without the password.

    `probe` (used while connecting) checks name resolution and the TCP port when the driver only
    says it could not connect, as FreeTDS does for unknown hosts.
    """
    if isinstance(exc, ConnectorError):
        return exc
    args: tuple[Any, ...] = getattr(exc, "args", ())
    state = args[0] if len(args) >= 2 and isinstance(args[0], str) else ""
    raw = str(args[1]) if len(args) >= 2 else str(exc)
    err = _classify(state, raw, spec, database or spec.database, probe)
    return type(err)(scrub(str(err), spec.password))


def _classify(state: str, raw: str, spec: ConnectionSpec, database: str, probe: bool) -> ConnectorError:
    states = {state, *_STATE_RE.findall(raw)} - {""}
    natives = {int(n) for n in _NATIVE_RE.findall(raw)}
    text = raw.lower()
    detail = server_message(raw) or "the ODBC driver failed without a message"
    where = _where(spec)
    if "IM002" in states or "can't open lib" in text or "data source name not found" in text:
        lib = re.search(r"can't open lib '([^']*)'", raw, flags=re.I)
        driver = f"ODBC driver '{lib.group(1)}'" if lib else "the ODBC driver"
        return DriverMissing(f"{driver} is not installed or cannot be loaded: {INSTALL_HINT}")
    if 4060 in natives or "cannot open database" in text:
        named = re.search(r'cannot open database "([^"]*)"', raw, flags=re.I)
        db = named.group(1) if named else database
        return DatabaseNotFound(
            f"cannot open database '{db}' on {where}: it does not exist or user '{spec.username}' has no access to it"
        )
    if "28000" in states or natives & {18456, 18452, 18470, 18486, 18487, 18488}:
        return AuthFailed(
            f"login failed for user '{spec.username}' at {where}: check the user name and password, "
            "and that the server accepts SQL Server logins"
        )
    if any(s in text for s in _UNKNOWN_HOST):
        return UnknownHost(f"unknown host '{spec.host}': the name does not resolve")
    if any(s in text for s in _REFUSED):
        return _refused(spec)
    recoverable = _recoverable(states, natives, text, detail, where)
    if recoverable is not None:
        return recoverable
    if states & {"HYT00", "HYT01"} or any(s in text for s in _TIMEOUT):
        return _timeout(spec)
    if 208 in natives or "42S02" in states or "invalid object name" in text:
        return ObjectNotFound(f"{detail} (in database '{database}')")
    if any(s in text for s in _TLS):
        return ConnectorError(
            f"the encrypted connection to {where} failed: {detail} — set TrustServerCertificate=yes "
            "(or install the server's certificate) or Encrypt=no in the connection options"
        )
    if any(s.startswith("08") for s in states):
        if not probe:
            return ConnectionRefused(f"cannot reach SQL Server at {where}: {detail}")
        found = probe_endpoint(spec.host, spec.port or DEFAULT_PORT, spec.connect_timeout_s)
        return found or ConnectorError(
            f"{where} accepts TCP connections but the SQL Server login handshake failed: {detail}"
        )
    return QueryFailed(detail)


def _recoverable(states: set[str], natives: set[int], text: str, detail: str, where: str) -> ConnectorError | None:
    """A query timeout; SQL Server's transient errors (deadlock victim, lock timeout, server pausing or
    shutting down, out of connections); a missing permission (terminal, named)."""
    if "query timeout" in text:
        return QueryFailed(f"the query timed out: {detail}")
    if "40001" in states or natives & {1205, 1222}:
        return SerializationFailure(f"{detail} ({where})")
    if natives & {6005, 17142, 17809, 10928, 10929, 40197, 40501, 40613}:
        return ServerUnavailable(f"{detail} ({where})")
    if natives & {229, 230, 262, 297, 300}:
        return PrivilegeMissing(detail)
    return None


def _refused(spec: ConnectionSpec) -> ConnectionRefused:
    return ConnectionRefused(
        f"connection refused by {_where(spec)}: is SQL Server running and listening on TCP port "
        f"{spec.port or DEFAULT_PORT}?"
    )


def _timeout(spec: ConnectionSpec) -> ConnectTimeout:
    return ConnectTimeout(f"timeout after {spec.connect_timeout_s} s connecting to {_where(spec)}")


def probe_endpoint(host: str, port: int, timeout_s: float) -> ConnectorError | None:
    """Why `host:port` cannot be reached (unknown host, refused, timeout), or None when it can."""
    spec = ConnectionSpec(
        kind="sqlserver", host=host, port=port, database="", username="", connect_timeout_s=int(timeout_s)
    )
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return UnknownHost(f"unknown host '{host}': the name does not resolve")
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return None
    except ConnectionRefusedError:
        return _refused(spec)
    except TimeoutError:
        return _timeout(spec)
    except OSError as exc:
        return ConnectionRefused(f"cannot reach SQL Server at {_where(spec)}: {exc.strerror or exc}")


def _denied_dmv(exc: BaseException) -> bool:
    """True for 'VIEW DATABASE STATE permission denied' (the partition-stats DMV needs it)."""
    raw = str(exc.args[1]) if len(getattr(exc, "args", ())) >= 2 else str(exc)
    natives = {int(n) for n in _NATIVE_RE.findall(raw)}
    return bool(natives & {297, 300}) or "view database state" in raw.lower()


# ---------------------------------------------------------------------------------------------
# The connector


class SqlServerConnector(Connector):
    """SQL Server discovery over short pyodbc sessions, catalog views and DMVs."""

    kind = "sqlserver"
    default_port = DEFAULT_PORT

    @contextmanager
    def _cursor(self, database: str | None = None) -> Iterator[Any]:
        """A cursor on a fresh session; driver errors inside leave translated."""
        driver_error = _pyodbc().Error
        conn = odbc_connect(self.spec, database=database)
        try:
            cur = conn.cursor()
            try:
                yield cur
            finally:
                cur.close()
        except driver_error as exc:
            raise translate_error(exc, self.spec, database) from exc
        finally:
            conn.close()

    @staticmethod
    def _fetch(cur: Any, query: Query) -> list[Any]:
        sql, params = query
        if params:
            cur.execute(sql, *params)
        else:
            cur.execute(sql)
        return cur.fetchall()

    def test(self) -> TestResult:
        """Connect, run SELECT @@VERSION and report the short version and the round-trip time."""
        started = time.perf_counter()
        with self._cursor(self.spec.database or None) as cur:
            rows = self._fetch(cur, (VERSION_SQL, ()))
        latency_ms = (time.perf_counter() - started) * 1000
        version = short_version(str(rows[0][0])) if rows else "SQL Server"
        return TestResult(server_version=version, latency_ms=round(latency_ms, 2))

    def list_databases(self) -> list[DatabaseInfo]:
        """Online user databases the login may open; sizes where the login may see them."""
        driver_error = _pyodbc().Error
        with self._cursor(self.spec.database or None) as cur:
            try:
                rows = self._fetch(cur, (DATABASES_SQL, ()))
            except driver_error:
                rows = self._fetch(cur, (DATABASES_PLAIN_SQL, ()))
        return [DatabaseInfo(name=n, size_bytes=None if size is None else int(size)) for n, size in rows]

    def list_schemas(self, database: str) -> list[SchemaInfo]:
        """User schemas of `database` with their table counts."""
        with self._cursor(database) as cur:
            rows = self._fetch(cur, (SCHEMAS_SQL, ()))
        return [SchemaInfo(name=name, table_count=int(count)) for name, count in rows]

    def list_tables(self, database: str, schema: str, exact: bool = False) -> list[TableInfo]:
        """Tables of a schema: counts from partition stats, or exact COUNT_BIG(*) when asked."""
        with self._cursor(database) as cur:
            rows = self._stats(cur, tables_query, schema)
            if not rows:
                self._require_schema(cur, database, schema)
                return []
            tables = [
                TableInfo(schema=schema, name=name, row_count=int(n), size_bytes=int(size), has_primary_key=bool(pk))
                for name, n, size, pk in rows
            ]
            if exact:
                counts = self._exact_counts(cur, schema, [t.name for t in tables])
                for info, count in zip(tables, counts, strict=True):
                    info.row_count, info.row_count_exact = count, True
            return tables

    def count_rows(self, database: str, schema: str, table: str) -> int:
        """The exact row count of one table (COUNT_BIG(*))."""
        with self._cursor(database) as cur:
            self._require_table(cur, database, schema, table)
            return self._exact_counts(cur, schema, [table])[0]

    def table_detail(self, database: str, schema: str, table: str) -> TableDetail:
        """Columns, primary key, foreign keys both ways, indexes, row count and size of one table."""
        with self._cursor(database) as cur:
            object_id = self._require_table(cur, database, schema, table)
            columns = [
                ColumnInfo(
                    name=name,
                    type=render_type(type_name, max_len, prec, scale),
                    nullable=bool(nullable),
                    default=clean_default(default),
                    position=int(position),
                )
                for name, type_name, max_len, prec, scale, nullable, default, position in self._fetch(
                    cur, (COLUMNS_SQL, (object_id,))
                )
            ]
            indexes = _shape_indexes(self._fetch(cur, (INDEXES_SQL, (object_id,))))
            outgoing = _shape_foreign_keys(self._fetch(cur, foreign_keys_query("outgoing", object_id)))
            incoming = _shape_foreign_keys(self._fetch(cur, foreign_keys_query("incoming", object_id)))
            stats = self._stats(cur, table_stats_query, object_id)
        row_count, size_bytes = (int(stats[0][0] or 0), int(stats[0][1] or 0)) if stats else (0, 0)
        primary = next((ix.columns for ix in indexes if ix.primary), [])
        return TableDetail(
            schema=schema,
            name=table,
            columns=columns,
            primary_key=list(primary),
            foreign_keys=outgoing,
            referenced_by=incoming,
            indexes=indexes,
            row_count=row_count,
            size_bytes=size_bytes,
        )

    def foreign_keys(self, database: str, schema: str) -> list[ForeignKeyInfo]:
        """Every foreign key whose referencing table is in `schema`, columns in constraint order."""
        with self._cursor(database) as cur:
            return _shape_foreign_keys(self._fetch(cur, foreign_keys_query("schema", schema)))

    def _stats(self, cur: Any, build: Any, arg: Any) -> list[Any]:
        """Run a stats query on the DMV, falling back to catalog views when the login may not read it."""
        driver_error = _pyodbc().Error
        try:
            return self._fetch(cur, build(arg, dmv=True))
        except driver_error as exc:
            if not _denied_dmv(exc):
                raise
        return self._fetch(cur, build(arg, dmv=False))

    def _exact_counts(self, cur: Any, schema: str, tables: list[str]) -> list[int]:
        """COUNT_BIG(*) per table, a UNION ALL statement per chunk, in the order given."""
        counts: list[int] = []
        for start in range(0, len(tables), _EXACT_COUNT_CHUNK):
            chunk = tables[start : start + _EXACT_COUNT_CHUNK]
            found = {int(i): int(n) for i, n in self._fetch(cur, exact_counts_query(schema, chunk))}
            counts.extend(found[i] for i in range(len(chunk)))
        return counts

    def _require_schema(self, cur: Any, database: str, schema: str) -> None:
        if not self._fetch(cur, (SCHEMA_EXISTS_SQL, (schema,))):
            raise ObjectNotFound(f"schema {schema} does not exist in database {database}")

    def _require_table(self, cur: Any, database: str, schema: str, table: str) -> int:
        """The table's object id, or ObjectNotFound in words a person understands."""
        rows = self._fetch(cur, (TABLE_ID_SQL, (schema, table)))
        if not rows:
            raise ObjectNotFound(f"table {schema}.{table} does not exist in database {database}")
        return int(rows[0][0])


def _shape_indexes(rows: list[Any]) -> list[IndexInfo]:
    """One IndexInfo per index from (name, unique, primary, column) rows in key order."""
    indexes: dict[str, IndexInfo] = {}
    for name, unique, primary, column in rows:
        info = indexes.get(name)
        if info is None:
            info = IndexInfo(name=name, columns=[], unique=bool(unique), primary=bool(primary))
            indexes[name] = info
        info.columns.append(column)
    return list(indexes.values())


def _shape_foreign_keys(rows: list[Any]) -> list[ForeignKeyInfo]:
    """One ForeignKeyInfo per constraint from column-pair rows in constraint_column_id order."""
    fks: dict[tuple[str, str], ForeignKeyInfo] = {}
    for name, schema, table, column, ref_schema, ref_table, ref_column in rows:
        fk = fks.get((schema, name))
        if fk is None:
            fk = fks[(schema, name)] = ForeignKeyInfo(
                name=name,
                schema=schema,
                table=table,
                columns=[],
                referenced_schema=ref_schema,
                referenced_table=ref_table,
                referenced_columns=[],
            )
        fk.columns.append(column)
        fk.referenced_columns.append(ref_column)
    return list(fks.values())
