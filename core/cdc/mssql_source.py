"""The SQL Server side of a pipeline's CDC: checks, LSNs, capture instances, value conversion, the stream.

SQL Server CDC has no slot and no push protocol: the capture job (run by SQL Server Agent) copies
committed changes of tracked tables from the log into change tables, and readers query them by
LSN range with `cdc.fn_cdc_get_all_changes_<capture_instance>(from, to, N'all update old')`.
Both ends of the range are inclusive; `sys.fn_cdc_get_max_lsn()` is the highest commit LSN the
capture job has finished, so `(last read, max]` never returns half a transaction. Each change row
carries `__$start_lsn`, the COMMIT LSN of its transaction, and `__$seqval`, its order inside it.

LSNs are binary(10) on the server and ints (big-endian, unsigned) here, so they compare and
store like PostgreSQL LSNs. Handoff without gap or duplicate: read `max_lsn()`, copy, then
`MssqlCdcStream.start(that_lsn)` reads strictly after it.

The SQL lives in module constants and `(sql, params)` builders so tests check it without a
server; sessions come from core.connectors.sqlserver.odbc_connect (the one seam tests replace).
Every pyodbc error leaves as a `core.errors.ConnectorError`.
"""

from __future__ import annotations

import math
import re
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from datetime import time as dtime
from decimal import Decimal
from typing import Any

from core.cdc.events import ChangeEvent
from core.cdc.pgoutput import TxnEnd
from core.connectors import sqlserver
from core.connectors.base import ConnectionSpec
from core.connectors.sqlserver import _pyodbc, quote_ident, translate_error
from core.errors import ConnectorError, ValidationFailed

Query = tuple[str, tuple[Any, ...]]
TableKey = tuple[str, str]
Item = ChangeEvent | TxnEnd

LSN_BYTES = 10
_MAX_LSN_INT = (1 << (8 * LSN_BYTES)) - 1
CAPTURE_INSTANCE_MAX = 100  # sys.sp_cdc_enable_table: @capture_instance cannot exceed 100 characters

OP_DELETE, OP_INSERT, OP_UPDATE_BEFORE, OP_UPDATE_AFTER = 1, 2, 3, 4


class ChangesLost(ConnectorError):
    """Changes the pipeline still needed are gone from the change tables: only a full reload helps."""

    kind = "changes_lost"


# -- LSNs ---------------------------------------------------------------------------------------


def lsn_to_int(lsn: bytes | bytearray | memoryview | None) -> int:
    """A binary(10) LSN as an int; None (a NULL LSN) is 0."""
    if lsn is None:
        return 0
    raw = bytes(lsn)
    if len(raw) > LSN_BYTES:
        raise ValueError(f"an LSN has {LSN_BYTES} bytes, not {len(raw)}")
    return int.from_bytes(raw, "big")


def int_to_lsn(value: int) -> bytes:
    """An int LSN as SQL Server's binary(10), big-endian."""
    if not 0 <= value <= _MAX_LSN_INT:
        raise ValueError(f"LSN {value} is out of the binary({LSN_BYTES}) range")
    return value.to_bytes(LSN_BYTES, "big")


def lsn_text(lsn: int | bytes | bytearray) -> str:
    """An LSN as SQL Server prints binary(10): 0x followed by 20 upper-case hex digits."""
    value = lsn if isinstance(lsn, int) else lsn_to_int(lsn)
    return "0x" + int_to_lsn(value).hex().upper()


def parse_lsn(text: str) -> int:
    """An LSN from text: `0x0000002A000001E80003`, bare hex, or Debezium's `0000002a:000001e8:0003`."""
    cleaned = text.strip().replace(":", "")
    if cleaned[:2].lower() == "0x":
        cleaned = cleaned[2:]
    if not cleaned or len(cleaned) > 2 * LSN_BYTES or not re.fullmatch(r"[0-9A-Fa-f]+", cleaned):
        raise ValueError(f"{text!r} is not a SQL Server LSN")
    return int(cleaned, 16)


def increment_lsn(value: int) -> int:
    """The lowest LSN above `value`, as a query's lower bound (what sys.fn_cdc_increment_lsn is for).

    The server function returns an LSN greater than its argument with no LSN in between; the
    change functions select `__$start_lsn >= from_lsn`. For that filter `value + 1` selects exactly
    the same rows (every LSN above `value` is >= `value + 1`) and costs no round trip. It is only
    ever used as a lower bound, and `MssqlCdcStream` checks it against the capture instance's
    minimum itself, so it never reaches the function out of range.
    """
    return value + 1


# -- SQL ----------------------------------------------------------------------------------------

DB_ENABLED_SQL = "SELECT name, is_cdc_enabled FROM sys.databases WHERE name = DB_NAME()"

TABLE_TRACKED_SQL = """
SELECT t.is_tracked_by_cdc
FROM sys.tables AS t
JOIN sys.schemas AS s ON s.schema_id = t.schema_id
WHERE s.name = ? AND t.name = ?
"""

# Debezium's test (status 4 = Running); needs VIEW SERVER STATE, absent on Azure SQL Database.
AGENT_SQL = "SELECT status, status_desc FROM sys.dm_server_services WHERE servicename LIKE N'SQL Server Agent (%'"

# cdc.captured_columns.object_id is the change table's id (= cdc.change_tables.object_id).
CAPTURE_INSTANCES_SQL = """
SELECT s.name AS source_schema, t.name AS source_table, ct.capture_instance, ct.start_lsn, ct.create_date,
       cc.column_name, cc.column_type, cc.column_ordinal
FROM cdc.change_tables AS ct
JOIN sys.tables AS t ON t.object_id = ct.source_object_id
JOIN sys.schemas AS s ON s.schema_id = t.schema_id
JOIN cdc.captured_columns AS cc ON cc.object_id = ct.object_id
ORDER BY s.name, t.name, ct.create_date, ct.capture_instance, cc.column_ordinal
"""

MAX_LSN_SQL = "SELECT sys.fn_cdc_get_max_lsn()"
MIN_LSN_SQL = "SELECT sys.fn_cdc_get_min_lsn(?)"

# tran_end_time is the server's local time (datetime, no zone): the current offset comes along so
# it can be made absolute (as Debezium does with TODATETIMEOFFSET(..., DATEPART(TZOFFSET, ...))).
COMMIT_TIMES_SQL = """
SELECT m.start_lsn, m.tran_end_time, DATEPART(TZOFFSET, SYSDATETIMEOFFSET())
FROM cdc.lsn_time_mapping AS m
WHERE m.start_lsn BETWEEN ? AND ?
"""

_META_COLUMNS = "[__$start_lsn], [__$seqval], [__$operation], [__$update_mask]"
_ORDER = "ORDER BY [__$start_lsn], [__$seqval], [__$operation]"


def n_literal(value: str) -> str:
    """A T-SQL N'...' string literal with every ' doubled."""
    return "N'" + value.replace("'", "''") + "'"


def check_capture_instance(name: str) -> str:
    """The capture instance name, refused when it cannot be one (it is spliced into a function name)."""
    if not name or len(name) > CAPTURE_INSTANCE_MAX or any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise ValidationFailed("capture_instance", f"{name!r} is not a valid capture instance name")
    return name


def changes_function(capture_instance: str) -> str:
    """`[cdc].[fn_cdc_get_all_changes_<instance>]`, bracket-quoted (a function name takes no parameter)."""
    return "[cdc]." + quote_ident("fn_cdc_get_all_changes_" + check_capture_instance(capture_instance))


def changes_query(
    capture_instance: str, columns: Sequence[str], from_lsn: int, to_lsn: int, limit: int | None = None
) -> Query:
    """Every change of one capture instance with commit LSN in [from_lsn, to_lsn], updates as 3+4 pairs.

    With `limit`, only the first `limit` rows in (commit LSN, seqval, operation) order.
    """
    if not columns:
        raise ValidationFailed("columns", f"capture instance {capture_instance} has no captured columns")
    cols = ", ".join(quote_ident(c) for c in columns)
    top = "TOP (?) " if limit else ""
    sql = (
        f"SELECT {top}{_META_COLUMNS}, {cols} "
        f"FROM {changes_function(capture_instance)}(?, ?, N'all update old') {_ORDER}"
    )
    bounds = (int_to_lsn(from_lsn), int_to_lsn(to_lsn))
    return sql, ((int(limit),) + bounds if limit else bounds)


def min_lsn_query(capture_instance: str) -> Query:
    """sys.fn_cdc_get_min_lsn of one capture instance (0x00... when it does not exist)."""
    return MIN_LSN_SQL, (capture_instance,)


def commit_times_query(first_lsn: int, last_lsn: int) -> Query:
    """Commit times (server local) of the transactions with commit LSN in [first_lsn, last_lsn]."""
    return COMMIT_TIMES_SQL, (int_to_lsn(first_lsn), int_to_lsn(last_lsn))


def enable_db_command(database: str) -> str:
    """The statement that enables CDC on a database (needs sysadmin)."""
    return f"USE {quote_ident(database)}; EXEC sys.sp_cdc_enable_db;"


def enable_table_command(database: str, schema: str, table: str) -> str:
    """The statement that starts capturing a table (needs db_owner; SQL Server Agent runs the job)."""
    return (
        f"USE {quote_ident(database)}; EXEC sys.sp_cdc_enable_table @source_schema = {n_literal(schema)}, "
        f"@source_name = {n_literal(table)}, @role_name = NULL, @supports_net_changes = 0;"
    )


# -- sessions -----------------------------------------------------------------------------------


_datetimeoffset = sqlserver.datetimeoffset_from_bytes  # how datetimeoffset values are read (odbc_connect)


@contextmanager
def _cursor(spec: ConnectionSpec) -> Iterator[Any]:
    """A cursor on a fresh session; driver errors inside leave translated."""
    driver_error = _pyodbc().Error
    conn = sqlserver.odbc_connect(spec)
    try:
        cur = conn.cursor()
        yield cur
    except driver_error as exc:
        raise translate_error(exc, spec) from None
    finally:
        conn.close()


def _fetch(cur: Any, query: Query) -> list[Any]:
    sql, params = query
    if params:
        cur.execute(sql, *params)
    else:
        cur.execute(sql)
    return cur.fetchall()


# -- checks -------------------------------------------------------------------------------------


def check_cdc(spec: ConnectionSpec, tables: Sequence[TableKey]) -> list[str]:
    """Problems that keep the database or tables from CDC, each with the statement that fixes it."""
    problems: list[str] = []
    with _cursor(spec) as cur:
        rows = _fetch(cur, (DB_ENABLED_SQL, ()))
        database = rows[0][0] if rows else spec.database
        if not rows or not rows[0][1]:
            problems.append(
                f"CDC is not enabled on database {database}: run (as sysadmin): {enable_db_command(database)}"
            )
        for schema, table in tables:
            tracked = _fetch(cur, (TABLE_TRACKED_SQL, (schema, table)))
            if not tracked:
                problems.append(f"table {schema}.{table} does not exist in database {database}")
            elif not tracked[0][0]:
                fix = enable_table_command(database, schema, table)
                problems.append(f"table {schema}.{table} is not tracked by CDC: run: {fix}")
    return problems


def agent_warning(spec: ConnectionSpec) -> str | None:
    """A warning when SQL Server Agent (which runs the capture job) is not running; None if fine or unknown.

    sys.dm_server_services needs VIEW SERVER STATE and does not exist on Azure SQL Database: then
    nothing can be said and None is returned.
    """
    driver_error = _pyodbc().Error
    try:
        with _cursor(spec) as cur:
            try:
                rows = _fetch(cur, (AGENT_SQL, ()))
            except driver_error:
                return None
    except ConnectorError:
        return None
    if not rows or rows[0][0] == 4:
        return None
    return (
        f"SQL Server Agent is not running (status: {rows[0][1]}): the CDC capture job runs under it, so no "
        "changes reach the change tables. Start SQL Server Agent (on Linux: mssql-conf set sqlagent.enabled "
        "true, then restart SQL Server)"
    )


# -- capture instances --------------------------------------------------------------------------


@dataclass(frozen=True)
class CaptureInstance:
    """One capture instance of a source table: its name, low endpoint and captured columns in order."""

    name: str
    start_lsn: int
    columns: tuple[str, ...]
    column_types: tuple[str, ...] = ()
    schema: str = ""
    table: str = ""
    created: datetime | None = None


def capture_instance_history(cur: Any, tables: Sequence[TableKey]) -> dict[TableKey, list[CaptureInstance]]:
    """The capture instances of each of `tables` that has any, oldest first (a table has at most two)."""
    wanted = set(tables)
    found: dict[tuple[str, str, str], dict[str, Any]] = {}
    for schema, table, name, start_lsn, created, column, column_type, _ordinal in _fetch(
        cur, (CAPTURE_INSTANCES_SQL, ())
    ):
        if (schema, table) not in wanted:
            continue
        entry = found.setdefault(
            (schema, table, name),
            {"start_lsn": lsn_to_int(start_lsn), "created": created, "columns": [], "types": []},
        )
        entry["columns"].append(column)
        entry["types"].append(column_type)
    history: dict[TableKey, list[CaptureInstance]] = {}
    for (schema, table, name), entry in found.items():
        history.setdefault((schema, table), []).append(
            CaptureInstance(
                name=name,
                start_lsn=entry["start_lsn"],
                columns=tuple(entry["columns"]),
                column_types=tuple(entry["types"]),
                schema=schema,
                table=table,
                created=entry["created"],
            )
        )
    for instances in history.values():
        instances.sort(key=_creation_order)
    return history


def _creation_order(ci: CaptureInstance) -> tuple[Any, ...]:
    return (ci.created is not None, ci.created or datetime.min, ci.start_lsn, ci.name)


def capture_instances(cur: Any, tables: Sequence[TableKey]) -> dict[TableKey, CaptureInstance]:
    """The newest capture instance of each of `tables` that has one (after a schema change there are two)."""
    return {key: instances[-1] for key, instances in capture_instance_history(cur, tables).items()}


def max_lsn(spec: ConnectionSpec) -> int:
    """sys.fn_cdc_get_max_lsn(): the highest commit LSN in the change tables (0 before the first capture)."""
    with _cursor(spec) as cur:
        return _max_lsn(cur)


def _max_lsn(cur: Any) -> int:
    rows = _fetch(cur, (MAX_LSN_SQL, ()))
    return lsn_to_int(rows[0][0]) if rows else 0


def min_lsn(cur: Any, capture_instance: str) -> int:
    """sys.fn_cdc_get_min_lsn(instance): the instance's low endpoint; 0 when it does not exist or is hidden."""
    rows = _fetch(cur, min_lsn_query(capture_instance))
    return lsn_to_int(rows[0][0]) if rows else 0


# -- values -------------------------------------------------------------------------------------

_DTO_TEXT = re.compile(r"^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2}(?:\.\d+)?)\s*([+-]\d{2}:?\d{2}|Z)$")


def pg_text(value: Any, sql_type: str | None = None) -> str | None:
    """A pyodbc value as PostgreSQL's text input for it; None stays None (NULL).

    `sql_type` (cdc.captured_columns.column_type) tells strings that are really datetimeoffset
    (drivers without the output converter send them as text) or uniqueidentifier apart.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float | Decimal):
        return _number_text(value)
    if isinstance(value, str):
        kind = (sql_type or "").lower()
        if kind == "uniqueidentifier":
            return value.lower()
        if kind == "datetimeoffset":
            return _datetimeoffset_text(value)
        return value
    if isinstance(value, datetime):  # before date: datetime is a date
        return value.isoformat(sep=" ")
    if isinstance(value, date | dtime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()
    return str(value)


def _number_text(value: float | Decimal) -> str:
    """A float or Decimal as PostgreSQL reads it (NaN and infinities by name)."""
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(value)
    if value.is_nan():
        return "NaN"
    if value.is_infinite():
        return "Infinity" if value > 0 else "-Infinity"
    return format(value, "f")


def _datetimeoffset_text(text: str) -> str:
    """SQL Server's `2024-01-02 03:04:05.1234567 +01:00` as `2024-01-02 03:04:05.1234567+01:00`."""
    m = _DTO_TEXT.match(text.strip())
    if not m:
        return text
    day, clock, offset = m.groups()
    return f"{day} {clock}{'+00:00' if offset == 'Z' else offset}"


# -- rows to events -----------------------------------------------------------------------------

SortKey = tuple[int, int, int]


def rows_to_events(
    instance: CaptureInstance, key_columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> list[tuple[SortKey, ChangeEvent]]:
    """Change rows of one capture instance as (sort key, event), an update's 3+4 rows joined into one.

    Rows are (__$start_lsn, __$seqval, __$operation, __$update_mask, *captured columns) in
    (start_lsn, seqval, operation) order. The key comes from the before image for updates and
    deletes, so a changed primary key still finds the old row. Without key columns the whole
    image is the key (like PostgreSQL's REPLICA IDENTITY FULL). `position` is the commit LSN;
    `commit_time` is filled in later.
    """
    names = instance.columns
    types = instance.column_types or (None,) * len(names)
    out: list[tuple[SortKey, ChangeEvent]] = []
    before: tuple[SortKey, dict[str, str | None]] | None = None
    where = f"{instance.schema}.{instance.table}"
    for row in rows:
        start, seq, op = lsn_to_int(row[0]), lsn_to_int(row[1]), int(row[2])
        image = {n: pg_text(v, t) for n, v, t in zip(names, row[4:], types, strict=True)}
        sort_key = (start, seq, op)
        if before is not None and op != OP_UPDATE_AFTER:
            raise ConnectorError(f"{where}: update before-image at LSN {lsn_text(before[0][0])} has no after-image")
        if op == OP_UPDATE_BEFORE:
            before = (sort_key, image)
            continue
        if op == OP_UPDATE_AFTER:
            if before is not None and before[0][:2] != (start, seq):
                raise ConnectorError(f"{where}: update rows at LSN {lsn_text(start)} do not pair up")
            old = before[1] if before is not None else None
            key_from = old if old is not None else image
            event = _event("update", instance, key_from, key_columns, old, image, start)
            out.append((before[0] if before is not None else sort_key, event))
            before = None
        elif op == OP_INSERT:
            out.append((sort_key, _event("insert", instance, image, key_columns, None, image, start)))
        elif op == OP_DELETE:
            out.append((sort_key, _event("delete", instance, image, key_columns, image, None, start)))
        else:
            raise ConnectorError(f"{where}: unknown __$operation {op} at LSN {lsn_text(start)}")
    if before is not None:
        raise ConnectorError(f"{where}: update before-image at LSN {lsn_text(before[0][0])} has no after-image")
    return out


def _event(
    op: str,
    instance: CaptureInstance,
    key_from: dict[str, str | None],
    key_columns: Sequence[str],
    before: dict[str, str | None] | None,
    after: dict[str, str | None] | None,
    position: int,
) -> ChangeEvent:
    key = {c: key_from[c] for c in key_columns} if key_columns else dict(key_from)
    return ChangeEvent(
        op=op, schema=instance.schema, table=instance.table, key=key, before=before, after=after, position=position
    )


def merge_events(*per_table: Sequence[tuple[SortKey, ChangeEvent]]) -> list[ChangeEvent]:
    """Events of several tables in source order: (commit LSN, seqval, operation)."""
    merged = [pair for events in per_table for pair in events]
    merged.sort(key=lambda pair: pair[0])
    return [event for _key, event in merged]


def group_transactions(events: Sequence[ChangeEvent], commit_times: Mapping[int, datetime]) -> list[Item]:
    """Events in commit-LSN groups, each followed by its TxnEnd; commit times filled in."""
    out: list[Item] = []
    current: int | None = None
    now = datetime.now(UTC)
    for event in events:
        if current is not None and event.position != current:
            out.append(_txn_end(current, commit_times, now))
        current = event.position
        event.commit_time = commit_times.get(event.position, now)
        out.append(event)
    if current is not None:
        out.append(_txn_end(current, commit_times, now))
    return out


def _txn_end(lsn: int, commit_times: Mapping[int, datetime], now: datetime) -> TxnEnd:
    return TxnEnd(xid=None, commit_lsn=lsn, end_lsn=lsn, commit_time=commit_times.get(lsn, now))


def commit_times(rows: Sequence[Sequence[Any]]) -> dict[int, datetime]:
    """(start_lsn, tran_end_time local, server UTC offset in minutes) rows as commit LSN -> aware UTC time."""
    out: dict[int, datetime] = {}
    for lsn, end_time, offset_minutes in rows:
        if end_time is None:
            continue
        if end_time.tzinfo is None:
            end_time = end_time.replace(tzinfo=timezone(timedelta(minutes=int(offset_minutes or 0))))
        out[lsn_to_int(lsn)] = end_time.astimezone(UTC)
    return out


# -- the stream ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Segment:
    """One capture instance's share of a read range: commit LSNs [lo, hi]."""

    key: TableKey
    instance: CaptureInstance
    lo: int
    hi: int


class MssqlCdcStream:
    """Reads the change tables of `tables` by LSN range; same interface as `LogicalStream`.

    Usage::

        with MssqlCdcStream(spec, {("dbo", "orders"): ["id"]}) as stream:
            stream.start(stored_lsn)             # 0: from the current max LSN
            while not stop:
                for item in stream.poll(0.5):    # ChangeEvent | TxnEnd, whole transactions
                    ...
                stream.confirm(txn_end.end_lsn)  # after the target committed

    `start_lsn` is the last LSN already applied, and reading is STRICTLY after it: pass the
    target's stored position (or the max LSN read before a full load) as it is, not `+ 1` as for
    `LogicalStream.start`, or a transaction committed at exactly that LSN + 1 would be skipped.

    Each poll reads `(read_lsn, fn_cdc_get_max_lsn()]`, at most `max_rows` rows per capture
    instance (whole transactions; one larger transaction is read whole). A table whose schema
    changed may have two capture instances: the older one is read up to the newer one's start
    LSN, the newer one after it. When the range starts below what the change tables still hold
    (the cleanup job removed it), poll raises `ChangesLost` instead of skipping.

    There is no slot: `confirm` only remembers. The position to persist is the last applied
    commit LSN; `read_lsn` is how far the change tables have been read (with `idle_txn_end` an
    empty TxnEnd is emitted when the range moved but held no change of these tables, so a caller
    that stores confirmed positions keeps up with an idle table and never falls behind the
    cleanup job's low water mark).
    """

    def __init__(
        self,
        spec: ConnectionSpec,
        tables: Mapping[TableKey, Sequence[str]],
        *,
        poll_interval_s: float = 0.5,
        max_rows: int = 10_000,
        idle_txn_end: bool = False,
    ) -> None:
        if not tables:
            raise ValidationFailed("tables", "a CDC pipeline needs at least one table")
        if max_rows < 1:
            raise ValidationFailed("max_rows", "must be at least 1")
        self.spec = spec
        self.tables = {key: list(columns) for key, columns in tables.items()}
        self.poll_interval_s = poll_interval_s
        self.max_rows = max_rows
        self.idle_txn_end = idle_txn_end
        self.confirmed_lsn = 0
        self.caught_up = True  # each poll reads whole transactions up to the max LSN
        self.read_lsn = 0  # every commit LSN up to here has been read (and handed out)
        self.delivered_end_lsn = 0
        self._floors: dict[TableKey, int] = {}
        self._conn: Any = None
        self._cur: Any = None
        self._last_read = -math.inf

    # -- lifecycle

    def start(self, start_lsn: int = 0) -> None:
        """Open the session and position the stream strictly after `start_lsn` (0: the current max LSN)."""
        self.close()
        self._floors = {}
        self._conn = sqlserver.odbc_connect(self.spec)
        try:
            with self._translated():
                self._cur = self._conn.cursor()
                history = self._history()
                if start_lsn:
                    self.read_lsn = start_lsn
                else:
                    self.read_lsn = _max_lsn(self._cur)
                    # "From now": a table whose capture began later starts at its own low endpoint.
                    for key, instances in history.items():
                        self._floors[key] = instances[0].start_lsn
                for key, instances in history.items():
                    self._segments(key, instances, increment_lsn(self.read_lsn), self.read_lsn)
            self.confirmed_lsn = self.delivered_end_lsn = self.read_lsn
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """End the session (SQL Server keeps nothing for us)."""
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None
                self._cur = None

    def __enter__(self) -> MssqlCdcStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def confirm(self, lsn: int) -> None:
        """Remember that everything up to `lsn` is applied (no slot to tell)."""
        self.confirmed_lsn = max(self.confirmed_lsn, lsn)

    def keepalive(self) -> None:
        """Nothing to keep alive: the session is only used while polling."""

    # -- reading

    def poll(self, timeout_s: float = 0.5) -> list[Item]:
        """Whole transactions committed since the last read; waits up to `timeout_s` when there are none."""
        if self._cur is None:
            raise RuntimeError("MssqlCdcStream.poll before start()")
        deadline = time.monotonic() + timeout_s
        while True:
            wait = self._last_read + self.poll_interval_s - time.monotonic()
            if wait > 0:
                if time.monotonic() + wait > deadline:
                    time.sleep(max(0.0, deadline - time.monotonic()))
                    return []
                time.sleep(wait)
            with self._translated():
                items = self._read()
            self._last_read = time.monotonic()
            if items or time.monotonic() >= deadline:
                return items

    def _read(self) -> list[Item]:
        head = _max_lsn(self._cur)
        if head <= self.read_lsn:
            return []
        lo = increment_lsn(self.read_lsn)
        history = self._history()
        segments = [seg for key in self.tables for seg in self._segments(key, history[key], lo, head)]
        upper, rows = self._fetch_range(segments, head)
        per_table = [rows_to_events(seg.instance, self.tables[seg.key], seg_rows) for seg, seg_rows in rows]
        events = merge_events(*per_table)
        self.read_lsn = upper
        if not events:
            if self.idle_txn_end:
                self.delivered_end_lsn = upper
                return [TxnEnd(xid=None, commit_lsn=upper, end_lsn=upper, commit_time=datetime.now(UTC))]
            return []
        times = commit_times(_fetch(self._cur, commit_times_query(events[0].position, events[-1].position)))
        self.delivered_end_lsn = events[-1].position
        return group_transactions(events, times)

    def _fetch_range(self, segments: Sequence[_Segment], head: int) -> tuple[int, list[tuple[_Segment, list[Any]]]]:
        """Rows of every segment, cut at a commit-LSN boundary when a segment hit `max_rows`."""
        limit = self.max_rows
        fetched = [(seg, self._rows(seg, seg.lo, seg.hi, limit)) for seg in segments]
        truncated = [lsn_to_int(rows[-1][0]) for _seg, rows in fetched if len(rows) >= limit]
        if not truncated:
            return head, fetched
        cut = min(truncated)  # the first commit LSN that may be incomplete
        if any(lsn_to_int(r[0]) < cut for _seg, rows in fetched for r in rows):
            kept = [(seg, [r for r in rows if lsn_to_int(r[0]) < cut]) for seg, rows in fetched]
            return cut - 1, kept
        # One transaction alone exceeds max_rows: read it whole, transactions are never split.
        return cut, [(seg, self._rows(seg, seg.lo, min(seg.hi, cut), None)) for seg in segments if seg.lo <= cut]

    def _rows(self, seg: _Segment, lo: int, hi: int, limit: int | None) -> list[Any]:
        if lo > hi:
            return []
        return _fetch(self._cur, changes_query(seg.instance.name, seg.instance.columns, lo, hi, limit))

    def _history(self) -> dict[TableKey, list[CaptureInstance]]:
        """Capture instances of every table; a table without one is an error with the fix."""
        history = capture_instance_history(self._cur, list(self.tables))
        database = self.spec.database
        for (schema, table), key_columns in self.tables.items():
            instances = history.get((schema, table))
            if not instances:
                raise ConnectorError(
                    f"table {schema}.{table} has no CDC capture instance (CDC is not enabled for it, or it was "
                    f"disabled): run: {enable_table_command(database, schema, table)} and reload the table"
                )
            for instance in instances:
                missing = [c for c in key_columns if c not in instance.columns]
                if missing:
                    raise ConnectorError(
                        f"capture instance {instance.name} of {schema}.{table} does not capture key column(s) "
                        f"{', '.join(missing)}: enable the table again capturing every key column"
                    )
        return history

    def _segments(self, key: TableKey, instances: Sequence[CaptureInstance], lo: int, hi: int) -> list[_Segment]:
        """Which capture instance covers which part of [lo, hi]; ChangesLost when lo is below all of them."""
        lo = max(lo, self._floors.get(key, 0))
        low_end = instances[0].start_lsn
        if lo < low_end:
            schema, table = key
            raise ChangesLost(
                f"changes of {schema}.{table} from LSN {lsn_text(lo)} are no longer in the change tables (they "
                f"start at {lsn_text(low_end)}: the CDC cleanup job removed older ones, or capture was re-enabled). "
                "The target has missed changes: run a full load again. To keep changes longer: "
                "EXEC sys.sp_cdc_change_job @job_type = N'cleanup', @retention = <minutes>;"
            )
        out: list[_Segment] = []
        for i, instance in enumerate(instances):
            end = instances[i + 1].start_lsn - 1 if i + 1 < len(instances) else hi
            seg_lo, seg_hi = max(lo, instance.start_lsn), min(hi, end)
            if seg_lo <= seg_hi:
                out.append(_Segment(key, instance, seg_lo, seg_hi))
        return out

    @contextmanager
    def _translated(self) -> Iterator[None]:
        driver_error = _pyodbc().Error
        try:
            yield
        except driver_error as exc:
            raise translate_error(exc, self.spec) from None
