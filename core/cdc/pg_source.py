"""The PostgreSQL side of a pipeline's CDC: publication, replication slot, checks, and the stream.

Per pipeline there is one publication limited to its tables and one logical slot using the
built-in `pgoutput` plugin, both named after the pipeline id. Handoff without gap or duplicate:
`create_slot_with_snapshot` creates the slot and exports its snapshot; the full load imports that
snapshot (`SET TRANSACTION SNAPSHOT`) in every reader before the handle is closed; then a
`LogicalStream` reads from the slot, which starts exactly at the snapshot's consistent point.
Call `ensure_publication` before creating the slot: pgoutput looks the publication up in the
catalog as of each decoded change, so one created later makes the stream fail.

The stream is driven by the caller (`poll` with a timeout, so a stop flag is honoured), and the
caller confirms a transaction's `TxnEnd.end_lsn` only after the target committed it. Every
psycopg2 error leaves as a `core.errors.ConnectorError` (`translate_error`).
"""

from __future__ import annotations

import os
import re
import secrets
import selectors
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg2
import psycopg2.extras
from psycopg2 import sql
from psycopg2.extensions import connection as PgConnection
from psycopg2.extensions import cursor as PgCursor

from core.cdc.pgoutput import Decoder, Item, TxnEnd, format_lsn, parse_lsn
from core.connectors import postgres
from core.connectors.base import ConnectionSpec
from core.connectors.postgres import translate_error
from core.errors import ConnectorError, SlotInvalidated, ValidationFailed

APPLICATION_NAME = "cdc-studio-cdc"
_NAME_PREFIX = "cdc_studio_p"
_SLOT_NAME = re.compile(r"^[a-z0-9_]{1,63}$")
_DUPLICATE_OBJECT = "42710"
_OBJECT_IN_USE = "55006"


class SlotExists(ConnectorError):
    """The replication slot already exists (creating it again would lose its position)."""

    kind = "slot_exists"


class SlotBusy(ConnectorError):
    """The replication slot stayed in use by a client that is not ours."""

    kind = "slot_busy"
    transient = True


# -- names ------------------------------------------------------------------------------------


def slot_name(pipeline_id: int) -> str:
    """The replication slot of a pipeline."""
    return f"{_NAME_PREFIX}{int(pipeline_id)}"


def new_slot_name(pipeline_id: int, instance: str) -> str:
    """A slot (and publication) name never given twice: this installation's tag, the id and a random part."""
    return _check_slot(f"cdc_studio_{instance}_p{int(pipeline_id)}_{secrets.token_hex(3)}")


def publication_name(pipeline_id: int) -> str:
    """The publication of a pipeline."""
    return f"{_NAME_PREFIX}{int(pipeline_id)}"


def stream_application_name(slot: str) -> str:
    """The application_name of our replication sessions on `slot`; drop terminates only these."""
    return f"{APPLICATION_NAME}:{slot}"


def _check_slot(slot: str) -> str:
    if not _SLOT_NAME.match(slot):
        raise ValidationFailed("slot", f"{slot!r} is not a valid slot name (lower-case letters, digits, _)")
    return slot


# -- sessions -----------------------------------------------------------------------------------


def _connect(spec: ConnectionSpec) -> PgConnection:
    """A plain autocommit session for the catalog and slot calls (UTF-8, our name)."""
    return postgres.connect(spec, application_name=APPLICATION_NAME, client_encoding="UTF8", own_name=True)


_shared = threading.local()  # this thread's shared_session, if any


@contextmanager
def shared_session(spec: ConnectionSpec) -> Iterator[None]:
    """Within this block this thread's catalog calls on `spec` share one session instead of one each.

    Starting a pipeline makes several (checks, publication, slot, keys): a connection costs a
    password handshake on both ends (SCRAM: milliseconds of CPU), which a restart waits for.
    """
    if getattr(_shared, "spec", None) is not None:
        yield
        return
    conn = _connect(spec)
    _shared.spec, _shared.conn = spec, conn
    try:
        yield
    finally:
        _shared.spec = _shared.conn = None
        conn.close()


@contextmanager
def _cursor(spec: ConnectionSpec) -> Iterator[PgCursor]:
    """A cursor on an autocommit session on `spec.database` (fresh, or the thread's shared one); errors translated."""
    shared = getattr(_shared, "spec", None) is spec
    conn = _shared.conn if shared else _connect(spec)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            yield cur
    except psycopg2.Error as exc:
        raise translate_error(exc, spec) from None
    finally:
        if not shared:
            conn.close()


# What PostgreSQL's own subscriber asks of a publisher, so values come out unambiguous.
_REPLICATION_GUCS = "-c datestyle=ISO -c intervalstyle=postgres -c extra_float_digits=3"
# The walsender's logical_decoding_work_mem for our sessions (a per-session setting): a transaction
# that outgrows it is streamed while still in progress (PostgreSQL 14+), so a large one is decoded
# and applied as it is written, not all at once after its commit (the server's default is 64MB).
STREAM_WORK_MEM = "1MB"
STREAMING_SINCE = 140000  # pgoutput protocol version 2 with `streaming`
# In a burst (a read took BULK_MESSAGES and emptied the socket), the next read waits for BULK_BYTES
# or BULK_WAIT_S (see LogicalStream.poll). A quiet stream's few messages are read at once.
BULK_MESSAGES = 512
BULK_BYTES = 256 * 1024
BULK_WAIT_S = 0.005


def _replication_connection(
    spec: ConnectionSpec, slot: str, work_mem: str | None = None
) -> psycopg2.extras.LogicalReplicationConnection:
    gucs = _REPLICATION_GUCS if work_mem is None else f"{_REPLICATION_GUCS} -c logical_decoding_work_mem={work_mem}"
    return postgres.replication_connect(spec, stream_application_name(slot), gucs)


# -- publication and checks ---------------------------------------------------------------------


def ensure_publication(spec: ConnectionSpec, name: str, tables: Sequence[tuple[str, str]]) -> str:
    """Create the publication for `tables`, or set its table list; returns created|altered|unchanged.

    Partitioned tables publish under the root's name (publish_via_partition_root).
    """
    if not tables:
        raise ValidationFailed("tables", "a CDC pipeline needs at least one table")
    wanted = sorted(set(tables))
    table_list = sql.SQL(", ").join(sql.Identifier(s, t) for s, t in wanted)
    with _cursor(spec) as cur:
        cur.execute("SELECT pubviaroot FROM pg_publication WHERE pubname = %s", (name,))
        row = cur.fetchone()
        if row is None:
            cur.execute(
                sql.SQL("CREATE PUBLICATION {} FOR TABLE {} WITH (publish_via_partition_root = true)").format(
                    sql.Identifier(name), table_list
                )
            )
            return "created"
        # pg_publication_rel, not pg_publication_tables: the latter lists partitions under the root.
        cur.execute(
            "SELECT n.nspname, c.relname FROM pg_publication_rel pr JOIN pg_publication p ON p.oid = pr.prpubid "
            "JOIN pg_class c ON c.oid = pr.prrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE p.pubname = %s",
            (name,),
        )
        current = sorted(cur.fetchall())
        changed = False
        if current != wanted:
            cur.execute(sql.SQL("ALTER PUBLICATION {} SET TABLE {}").format(sql.Identifier(name), table_list))
            changed = True
        if not row[0]:
            cur.execute(
                sql.SQL("ALTER PUBLICATION {} SET (publish_via_partition_root = true)").format(sql.Identifier(name))
            )
            changed = True
        return "altered" if changed else "unchanged"


def check_replica_identity(spec: ConnectionSpec, tables: Sequence[tuple[str, str]]) -> list[str]:
    """Problems that keep tables from CDC (no primary key nor usable replica identity), with the fix."""
    problems: list[str] = []
    with _cursor(spec) as cur:
        for schema, table in tables:
            name = sql.Identifier(schema, table).as_string(cur)
            cur.execute(
                "SELECT c.relreplident, "
                "EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary), "
                "EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident) "
                "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p')",
                (schema, table),
            )
            row = cur.fetchone()
            if row is None:
                problems.append(f"table {name} does not exist in database {spec.database}")
                continue
            identity, has_pk, has_identity_index = row
            # The applier needs a key on the target too, so a primary key is the fix that works end to end.
            fix = f"ALTER TABLE {name} " + ("ADD PRIMARY KEY (...)" if not has_pk else "REPLICA IDENTITY DEFAULT")
            if identity == "n":
                problems.append(f"{name} has REPLICA IDENTITY NOTHING: updates and deletes cannot be captured: {fix}")
            elif identity == "d" and not has_pk:
                problems.append(f"{name} has no primary key, so updates and deletes cannot be captured: {fix}")
            elif identity == "i" and not has_identity_index:
                problems.append(f"{name} uses REPLICA IDENTITY USING INDEX but the index is gone: {fix}")
    return problems


def catalog_cursor(spec: ConnectionSpec) -> Any:
    """A cursor for catalog reads on `spec` (the thread's shared session inside `shared_session`)."""
    return _cursor(spec)


def primary_keys(spec: ConnectionSpec, tables: Sequence[tuple[str, str]]) -> dict[tuple[str, str], list[str]]:
    """The primary-key columns of each table, in key order ([] for a table without one)."""
    keys: dict[tuple[str, str], list[str]] = {}
    with _cursor(spec) as cur:
        for schema, table in tables:
            cur.execute(
                "SELECT a.attname FROM pg_index i "
                "CROSS JOIN unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) "
                "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
                "WHERE i.indisprimary AND i.indrelid = to_regclass(format('%%I.%%I', %s::text, %s::text)) "
                "ORDER BY k.ord",
                (schema, table),
            )
            keys[(schema, table)] = [r[0] for r in cur.fetchall()]
    return keys


def check_wal_level(spec: ConnectionSpec, slot: str | None = None) -> list[str]:
    """Server-side problems for logical replication (wal_level, replication privilege, free slots, senders).

    The pipeline's own `slot`, if it exists already, does not count as taken: a restart reuses it.
    """
    problems: list[str] = []
    with _cursor(spec) as cur:
        cur.execute(
            "SELECT current_setting('wal_level'), "
            "r.rolreplication OR r.rolsuper OR coalesce(pg_has_role(r.oid, "
            "  (SELECT oid FROM pg_roles WHERE rolname = 'rds_replication'), 'member'), false), "
            "current_setting('max_replication_slots')::int, "
            "(SELECT count(*) FROM pg_replication_slots WHERE slot_name IS DISTINCT FROM %s), "
            "current_setting('max_wal_senders')::int, (SELECT count(*) FROM pg_stat_replication), "
            "(SELECT wal_status FROM pg_replication_slots WHERE slot_name = %s) "
            "FROM pg_roles r WHERE r.rolname = current_user",
            (slot, slot),
        )
        wal_level, may_replicate, max_slots, used_slots, max_senders, senders, slot_wal = cur.fetchone()  # type: ignore[misc]
    if wal_level != "logical":
        problems.append(
            f"wal_level is '{wal_level}': set wal_level = logical in postgresql.conf (or "
            "ALTER SYSTEM SET wal_level = logical; on managed services the logical replication parameter) "
            "and restart the server"
        )
    if not may_replicate:
        problems.append(
            f"user {spec.username} may not replicate: ALTER ROLE {spec.username} WITH REPLICATION "
            "(on Amazon RDS: GRANT rds_replication TO the user)"
        )
    if used_slots >= max_slots:
        problems.append(
            f"all {max_slots} replication slots are in use: raise max_replication_slots or drop unused slots"
        )
    if max_senders < 1:
        problems.append("max_wal_senders is 0: set it to at least the number of pipelines and restart")
    elif senders >= max_senders:
        problems.append(
            f"all {max_senders} WAL senders (max_wal_senders) are in use: raise it and restart, "
            "or stop another replication client"
        )
    if slot_wal == "lost":
        problems.append(f"replication slot {slot} is lost (wal_status lost): {SlotInvalidated.fix}")
    return problems


# -- slots --------------------------------------------------------------------------------------


@dataclass
class SlotInfo:
    """A newly created slot: changes after `consistent_point` will come through it."""

    slot_name: str
    consistent_point: int

    @property
    def consistent_point_text(self) -> str:
        return format_lsn(self.consistent_point)


@dataclass
class SlotHandle(SlotInfo):
    """A slot created with an exported snapshot, and the replication session that keeps it valid.

    The snapshot `snapshot_name` stays importable only while this session is open and idle:
    every full-load reader must run `SET TRANSACTION SNAPSHOT '<snapshot_name>'` (REPEATABLE
    READ) before `close()`. Closing does not drop the slot.
    """

    snapshot_name: str = ""
    _conn: Any = field(default=None, repr=False)

    def close(self) -> None:
        """Release the exported snapshot (the slot stays)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> SlotHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def create_slot(spec: ConnectionSpec, slot: str) -> SlotInfo:
    """Create a pgoutput slot without a snapshot (CDC_ONLY). Raises SlotExists if it is there already."""
    conn, (name, lsn, _snapshot) = _create_slot(spec, slot, "NOEXPORT_SNAPSHOT")
    conn.close()
    return SlotInfo(slot_name=name, consistent_point=lsn)


def create_slot_with_snapshot(spec: ConnectionSpec, slot: str, temporary: bool = False) -> SlotHandle:
    """Create a pgoutput slot and export its snapshot; the handle must stay open during the full load.

    A `temporary` slot only marks a consistent point for its snapshot (one table loaded again while
    the pipeline's own slot goes on): it is gone when the handle closes. Raises SlotExists if the slot
    is there already (drop it, or stream from it, instead).
    """
    conn, (name, lsn, snapshot) = _create_slot(spec, slot, "EXPORT_SNAPSHOT", temporary)
    return SlotHandle(slot_name=name, consistent_point=lsn, snapshot_name=snapshot, _conn=conn)


def _create_slot(
    spec: ConnectionSpec, slot: str, snapshot_action: str, temporary: bool = False
) -> tuple[Any, tuple[str, int, str]]:
    _check_slot(slot)
    existing = _slot_row(spec, slot)
    if existing is not None:
        raise _slot_exists(spec, slot, existing["database"])
    conn = _replication_connection(spec, slot)
    created = False
    try:
        with conn.cursor() as cur:
            # The slot name is checked against [a-z0-9_] above; replication commands take no parameters.
            kind = "TEMPORARY LOGICAL" if temporary else "LOGICAL"
            cur.execute(f'CREATE_REPLICATION_SLOT "{slot}" {kind} pgoutput {snapshot_action}')
            created = True
            name, lsn, snapshot, _plugin = cur.fetchone()  # type: ignore[misc]
        return conn, (name, parse_lsn(lsn), snapshot or "")
    except BaseException as exc:
        conn.close()
        if created and not temporary:
            drop_slot(spec, slot)  # created but not handed out: leave nothing behind
        if isinstance(exc, psycopg2.Error):
            if exc.pgcode == _DUPLICATE_OBJECT:
                raise _slot_exists(spec, slot, None) from None
            raise translate_error(exc, spec) from None
        raise


def _slot_exists(spec: ConnectionSpec, slot: str, database: str | None) -> SlotExists:
    where = f" (database {database})" if database else ""
    return SlotExists(
        f"replication slot {slot} already exists on {spec.host}:{spec.port}{where}; "
        "stream from it to resume, or delete the pipeline's slot to start over"
    )


def _slot_row(spec: ConnectionSpec, slot: str) -> dict[str, Any] | None:
    with _cursor(spec) as cur:
        cur.execute(
            "SELECT s.database, s.active, s.active_pid, a.application_name "
            "FROM pg_replication_slots s LEFT JOIN pg_stat_activity a ON a.pid = s.active_pid "
            "WHERE s.slot_name = %s",
            (slot,),
        )
        row = cur.fetchone()
    if row is None:
        return None
    return dict(zip(("database", "active", "active_pid", "application_name"), row, strict=True))


def drop_slot(spec: ConnectionSpec, slot: str, timeout_s: float = 30) -> bool:
    """Drop the slot if it exists (False if it did not), retrying while it is active.

    An active session is terminated only when it is ours (`stream_application_name(slot)`);
    another client is waited for until `timeout_s`, then SlotBusy says who holds the slot.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        row = _slot_row(spec, slot)
        if row is None:
            return False
        if not row["active"]:
            try:
                with _cursor(spec) as cur:
                    cur.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
                return True
            except ConnectorError:
                if _slot_row(spec, slot) is None:
                    return True  # dropped concurrently
                if time.monotonic() > deadline:
                    raise
        elif row["application_name"] == stream_application_name(slot):
            with _cursor(spec) as cur:
                cur.execute("SELECT pg_terminate_backend(%s)", (row["active_pid"],))
        elif time.monotonic() > deadline:
            raise SlotBusy(
                f"replication slot {slot} is still in use by process {row['active_pid']} "
                f"(application '{row['application_name'] or ''}') after {timeout_s:g} s; stop that client "
                f"or run SELECT pg_terminate_backend({row['active_pid']}), then delete again"
            )
        time.sleep(0.1)


def drop_slot_and_publication(spec: ConnectionSpec, slot: str, publication: str, timeout_s: float = 30) -> None:
    """Remove what a pipeline created on the source; a no-op for what is already gone."""
    with _cursor(spec) as cur:
        cur.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(publication)))
    drop_slot(spec, slot, timeout_s)


def slot_status(spec: ConnectionSpec, slot: str) -> dict[str, Any] | None:
    """The slot's activity, positions (ints), retained WAL and lag in bytes; None when there is no slot."""
    with _cursor(spec) as cur:
        cur.execute(
            "SELECT s.database, s.active, s.active_pid, s.wal_status, "
            "pg_wal_lsn_diff(s.restart_lsn, '0/0')::bigint, pg_wal_lsn_diff(s.confirmed_flush_lsn, '0/0')::bigint, "
            "pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint, "
            "pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn)::bigint, "
            "pg_wal_lsn_diff(pg_current_wal_lsn(), s.confirmed_flush_lsn)::bigint "
            "FROM pg_replication_slots s WHERE s.slot_name = %s",
            (slot,),
        )
        row = cur.fetchone()
    if row is None:
        return None
    keys = (
        "database",
        "active",
        "active_pid",
        "wal_status",
        "restart_lsn",
        "confirmed_flush_lsn",
        "current_lsn",
        "retained_wal_bytes",
        "lag_bytes",
    )
    return {"slot_name": slot, **dict(zip(keys, row, strict=True))}


def emit_heartbeat(spec: ConnectionSpec) -> int:
    """Write a non-transactional logical message to the source's WAL and return its LSN.

    With pgoutput protocol 1 the message itself is not delivered (the `messages` option is off);
    it only makes the WAL move so the walsender sends a keepalive whose WAL end lies past it.
    The slot then advances through `LogicalStream`'s keepalive rule even when no published table
    changes; on an idle server this is what keeps `lag_bytes` near zero and measurable.
    """
    with _cursor(spec) as cur:
        cur.execute(
            "SELECT pg_wal_lsn_diff(pg_logical_emit_message(false, 'cdc_studio_heartbeat', now()::text), '0/0')"
        )
        return int(cur.fetchone()[0])  # type: ignore[index]


# -- the stream ---------------------------------------------------------------------------------


class LogicalStream:
    """Reads a slot's pgoutput stream and decodes it; the caller drives it and confirms.

    Usage::

        with LogicalStream(spec, slot, publication) as stream:
            stream.start()
            while not stop:
                for item in stream.poll(0.5):   # ChangeEvent | RelationChanged | TxnEnd
                    ...                          # group events until a TxnEnd, apply them
                stream.confirm(txn_end.end_lsn)  # only after the target committed

    Streaming (PostgreSQL 14+, unless `stream_work_mem` is None): a transaction that outgrows
    `stream_work_mem` on the walsender also arrives while in progress, in StreamStart ... StreamStop
    blocks (other transactions may come between them), and ends with a streamed TxnEnd or a
    StreamAbort; see core.cdc.pgoutput.

    Feedback: psycopg2 answers the server's keepalive reply requests and sends a status message
    every `status_interval_s` while `poll` is called, reporting only what was confirmed. While
    the caller cannot poll (back-pressure) it must call `keepalive()` at least every
    ~`wal_sender_timeout`/3 (20 s by default), or the server ends the session.

    Heartbeat rule: when `poll` has caught up, no transaction is open in the decoder and every
    delivered transaction is confirmed, the server's WAL end (from keepalives) is confirmed too,
    because everything before it has been delivered; so a slot on a source whose published
    tables do not change still releases WAL.

    psycopg2 (2.9) also moves the flush position to a keepalive's WAL end on its own, when what
    was confirmed is at or past the start of the last message read. A transaction that began
    before the confirmed LSN and is only partly read could then let it confirm past a delivered
    but unapplied transaction. The server sends keepalives inside a transaction's messages only
    after wal_sender_timeout/2 without a status message; polling (a status every
    `status_interval_s`) or `keepalive()` while blocked keeps that from happening.
    """

    def __init__(
        self,
        spec: ConnectionSpec,
        slot: str,
        publication: str,
        *,
        decoder: Decoder | None = None,
        status_interval_s: float = 5.0,
        auto_advance: bool = True,
        stream_work_mem: str | None = STREAM_WORK_MEM,
    ) -> None:
        self.spec = spec
        self.slot = _check_slot(slot)
        self.publication = publication
        self.decoder = decoder or Decoder()
        self.status_interval_s = status_interval_s
        self.auto_advance = auto_advance
        self.stream_work_mem = stream_work_mem  # None: never stream in-progress transactions
        self.streaming = False  # the session asked for in-progress transactions (see Decoder)
        self.confirmed_lsn = 0  # the highest flush position we reported
        self.delivered_end_lsn = 0  # end LSN of the last transaction handed to the caller
        self.caught_up = True  # the last poll read everything that had arrived (fewer than max_messages)
        self._conn: Any = None
        self._cur: Any = None
        self._selector: selectors.BaseSelector | None = None
        self._socket: socket.socket | None = None
        self._bulk = False  # the last read emptied the socket in the middle of a burst
        self._read = 0  # messages the last read took

    def start(self, start_lsn: int = 0) -> None:
        """Open the replication session and start streaming.

        `start_lsn` 0 resumes after the slot's confirmed position. A larger value skips every
        transaction whose commit LSN is below it: pass the last applied `position + 1` to skip
        what the target already has when the slot's confirmation lagged behind.
        """
        self._conn = _replication_connection(self.spec, self.slot, self.stream_work_mem)
        try:
            self._cur = self._conn.cursor()
            options = {"proto_version": "1", "publication_names": self.publication}
            self.streaming = self.stream_work_mem is not None and self._conn.server_version >= STREAMING_SINCE
            if self.streaming:
                options.update(proto_version="2", streaming="on")
            self._cur.start_replication(
                slot_name=self.slot,
                slot_type=psycopg2.extras.REPLICATION_LOGICAL,
                start_lsn=start_lsn,
                decode=False,
                options=options,
                status_interval=self.status_interval_s,
            )
            self._selector = selectors.DefaultSelector()
            self._selector.register(self._conn.fileno(), selectors.EVENT_READ)
            # A second handle on the session's socket, to set SO_RCVLOWAT (closing it leaves the session open).
            self._socket = socket.socket(fileno=os.dup(self._conn.fileno()))
        except BaseException as exc:
            self.close()
            if isinstance(exc, psycopg2.Error):
                raise translate_error(exc, self.spec) from None
            raise

    @property
    def wal_end(self) -> int:
        """The server's WAL end from the last message or keepalive."""
        return int(self._cur.wal_end) if self._cur is not None else 0

    @property
    def pending(self) -> bool:
        """Whether something delivered (or half-delivered, or streamed and not ended) has not been confirmed yet."""
        d = self.decoder
        return d.in_transaction or bool(d.open_streams) or self.delivered_end_lsn > self.confirmed_lsn

    def poll(self, timeout_s: float = 0.5, max_messages: int = 10_000) -> list[Item]:
        """Decoded items that arrived, waiting at most `timeout_s` when none are ready.

        After a read that emptied the socket in the middle of a burst (BULK_MESSAGES or more),
        the next one first lets the burst build up again (BULK_BYTES, at most BULK_WAIT_S): the
        walsender sends every message on its own, and a reader that wakes up for each of them
        costs the walsender a wake-up per message; measured here, it then sends half as fast.
        """
        if self._cur is None:
            raise RuntimeError("LogicalStream.poll before start()")
        if self._bulk:
            self._let_build_up()
        out: list[Item] = self._drain(max_messages)
        self._bulk = self.caught_up and self._read >= BULK_MESSAGES
        if not out and self._selector is not None:
            self._selector.select(timeout_s)
            out = self._drain(max_messages)
        if out:
            for item in reversed(out):
                if isinstance(item, TxnEnd):
                    self.delivered_end_lsn = max(self.delivered_end_lsn, item.end_lsn)
                    break
        elif self.auto_advance and not self.pending and self.wal_end > self.confirmed_lsn:
            self._feedback(self.wal_end, reply=False)
        return out

    def _drain(self, max_messages: int) -> list[Item]:
        out: list[Item] = []
        decode = self.decoder.decode_into
        read = self._cur.read_message
        self.caught_up = False
        n = 0
        try:
            for n in range(max_messages):  # noqa: B007 - n counts the messages read
                msg = read()
                if msg is None:
                    self.caught_up = True
                    break
                decode(msg.payload, out)
            else:
                n = max_messages
        except psycopg2.Error as exc:
            raise translate_error(exc, self.spec) from None
        self._read = n
        return out

    def _let_build_up(self) -> None:
        """Wait until BULK_BYTES are waiting on the socket, or BULK_WAIT_S passed."""
        sock = self._socket
        if sock is None or self._selector is None:
            time.sleep(BULK_WAIT_S)
            return
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, BULK_BYTES)
            try:
                self._selector.select(BULK_WAIT_S)
            finally:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1)
        except OSError:  # a socket without SO_RCVLOWAT: a plain pause does the same, less precisely
            self._socket = None
            time.sleep(BULK_WAIT_S)

    def confirm(self, lsn: int) -> None:
        """Report `lsn` (a TxnEnd.end_lsn) as flushed: the slot may release WAL before it."""
        if lsn > self.confirmed_lsn:
            self._feedback(lsn, reply=True)

    def keepalive(self) -> None:
        """Send a status message now (no new position): call it while back-pressure stops polling."""
        try:
            self._cur.send_feedback(force=True)
        except psycopg2.Error as exc:
            raise translate_error(exc, self.spec) from None

    def _feedback(self, lsn: int, reply: bool) -> None:
        try:
            self._cur.send_feedback(write_lsn=lsn, flush_lsn=lsn, apply_lsn=lsn, reply=reply, force=True)
        except psycopg2.Error as exc:
            raise translate_error(exc, self.spec) from None
        self.confirmed_lsn = lsn

    def close(self) -> None:
        """End the session (the slot keeps its confirmed position)."""
        if self._selector is not None:
            self._selector.close()
            self._selector = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None
                self._cur = None

    def __enter__(self) -> LogicalStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
