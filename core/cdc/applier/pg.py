"""PgApplier: apply batches of change events to a PostgreSQL target, exactly once.

One batch = one target transaction: read (and lock) the stored offset, skip events at or before
it, fold the rest into net changes per table, COPY them into TEMP staging tables, run the
set-based statements (TRUNCATE, DELETE ... USING, INSERT ... ON CONFLICT, UPDATE ... FROM) and
write the new offset, then commit. Any failure rolls all of it back and drops the session.
A source transaction too large for one batch can be sent ahead in parts (`apply_part`): they
go into the same target transaction, which the next `apply` commits with its position.

New rows skip staging where they can: a table whose changes in a batch are all inserts decoded
no further than their pgoutput messages (`RawInsert`) is COPYed straight into the target from
those messages (core.cdc.applier.rawcopy). Such a run has no key twice (the source key allows a
key again only after a delete or update, which would be in the run), so it is the same as the
upserts unless the target already has one of the keys; then COPY fails, the target transaction
is rolled back and everything in it is written again through staging (and that table goes
through staging for a while).
"""

from __future__ import annotations

import copy
import io
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import psycopg2
import psycopg2.errors
from psycopg2.extensions import connection as PgConnection

from core.cdc.applier.catalog import SchemaMismatch, TargetTable, load_table, qualified
from core.cdc.applier.copytext import MarkerInValue, payload
from core.cdc.applier.netchange import Plan, TableChanges, collect
from core.cdc.applier.rawcopy import copy_text
from core.cdc.applier.statements import DELETE_GROUP, Statements
from core.cdc.events import ChangeEvent, InsertRun, RawInsert, expand, row_count
from core.cdc.offsets import (
    DEFAULT_SOURCE,
    ensure_offsets_table,
    read_offset,
    read_offset_for_update,
    read_offsets,
    write_offset,
)
from core.connectors import postgres
from core.connectors.base import ConnectionSpec
from core.connectors.postgres import translate_error
from core.errors import StudioError

APPLICATION_NAME = "cdc-studio-apply"
_SESSION_SQL = "SET statement_timeout = 0; SET idle_in_transaction_session_timeout = 0; SET client_encoding = 'UTF8'"
_COPY_CHUNK = 1 << 18
DIRECT_BACKOFF = 100  # target transactions a table goes through staging after its direct COPY met an existing key

SourceTable = tuple[str, str]
T = TypeVar("T")


class _DirectConflict(Exception):
    """A direct COPY met a key the target already has: write the transaction again through staging."""


@dataclass
class ApplyStats:
    """What one `apply()` did. Event counts are source changes; `rows_*` are net target row writes."""

    position: int | None
    applied: bool = False  # False when the whole batch was at or before the stored offset
    events: int = 0
    skipped: int = 0
    inserts: int = 0
    updates: int = 0
    deletes: int = 0
    truncates: int = 0
    rows_upserted: int = 0
    rows_deleted: int = 0
    per_table: dict[str, dict[str, int]] = field(default_factory=dict)  # "schema.table" (source) -> op -> count
    by_table: Counter = field(default_factory=Counter)  # (schema, table, op) of the source -> count
    seconds: float = 0.0


@dataclass
class _OpenTransaction:
    """A target transaction between its first write and its commit."""

    stats: ApplyStats
    stored: dict[str, int | None] = field(default_factory=dict)  # stream -> offset read FOR UPDATE
    staged: set[int] = field(default_factory=set)  # oids whose TEMP staging table it created
    written: list[ChangeEvent] = field(default_factory=list)  # events of the parts written so far
    direct: bool = True  # new rows may be COPYed straight into the target


class PgApplier:
    """Applies change batches to the PostgreSQL target of one pipeline; not thread-safe (one per pipeline)."""

    def __init__(
        self,
        spec: ConnectionSpec,
        pipeline_id: int,
        tables: Mapping[SourceTable, tuple[str, str]],
        *,
        source: str = DEFAULT_SOURCE,
        lenient: bool = False,
    ) -> None:
        """Connect to the target, create the offsets table if missing, and learn every mapped table.

        Raises ValidationFailed for a target table without a primary key, ObjectNotFound for a missing one.
        """
        self.spec = spec
        self.pipeline_id = pipeline_id
        self.source = source
        self.lenient = lenient  # values of columns the target lacks are dropped (schema drift `ignore`)
        self._map: dict[SourceTable, tuple[str, str]] = dict(tables)
        self._tables: dict[SourceTable, TargetTable] = {}
        self._sql: dict[int, Statements] = {}  # by target oid
        self._staged: set[int] = set()  # oids whose TEMP staging table exists in this session
        self._open: _OpenTransaction | None = None  # the target transaction in progress, if any
        self._direct_off: dict[int, int] = {}  # oid -> target transactions it still goes through staging
        self._conn: PgConnection | None = None
        try:
            conn = self._connection()
            with conn.cursor() as cur:
                ensure_offsets_table(cur)
            conn.commit()
            self.refresh()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ session

    def _connection(self) -> PgConnection:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        conn = postgres.connect(
            self.spec, application_name=APPLICATION_NAME, session_sql=_SESSION_SQL, autocommit=False
        )
        self._conn = conn
        self._staged.clear()
        self._sql.clear()
        return conn

    def _discard(self) -> None:
        """Drop the session after a failure: its transaction is rolled back and TEMP tables vanish."""
        conn, self._conn = self._conn, None
        self._open = None
        self._staged.clear()
        self._sql.clear()
        if conn is not None and not conn.closed:
            try:
                conn.rollback()
            except psycopg2.Error:
                pass
            conn.close()

    @contextmanager
    def _guarded(self) -> Iterator[None]:
        """Work on the session: any failure drops it (its transaction rolls back, TEMP tables vanish);
        psycopg2 errors leave in the project's words."""
        try:
            yield
        except psycopg2.Error as exc:
            self._discard()
            raise translate_error(exc, self.spec) from None
        except BaseException:
            self._discard()
            raise

    def close(self) -> None:
        """Close the target session (nothing is pending between batches)."""
        self._discard()

    def __enter__(self) -> PgApplier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ catalog

    def refresh(self, source_table: SourceTable | None = None) -> None:
        """Re-read target columns and keys (all tables, or one) after the target's schema changed."""
        if self._open is not None:
            raise RuntimeError("PgApplier.refresh while applied parts wait for their commit: rollback() first")
        wanted = [source_table] if source_table is not None else list(self._map)
        conn = self._connection()
        with self._guarded():
            with conn.cursor() as cur:
                for src in wanted:
                    if src not in self._map:
                        raise SchemaMismatch(f"source table {src[0]}.{src[1]} is not mapped to a target", table=src)
                    old = self._tables.get(src)
                    self._tables[src] = load_table(cur, *self._map[src], lenient=self.lenient)
                    if old is not None and old.oid in self._staged:
                        cur.execute(self._statements(old).drop_stage())
                        self._staged.discard(old.oid)
                    if old is not None:
                        self._sql.pop(old.oid, None)
            conn.commit()

    def add_table(self, source_table: SourceTable, target: tuple[str, str]) -> None:
        """Map a source table the pipeline streams from now on (e.g. a new table loaded while streaming)."""
        self._map[source_table] = target
        self.refresh(source_table)

    def target_table(self, source_table: SourceTable) -> TargetTable:
        """What the applier knows about the target of a source table."""
        try:
            return self._tables[source_table]
        except KeyError:
            schema, table = source_table
            raise SchemaMismatch(
                f"changes arrived for source table {qualified(schema, table)}, which has no target in this pipeline",
                table=source_table,
            ) from None

    def _statements(self, table: TargetTable) -> Statements:
        st = self._sql.get(table.oid)
        if st is None or st.table is not table:
            st = self._sql[table.oid] = Statements(table, self._connection())
        return st

    # ------------------------------------------------------------------ apply

    def stored_position(self) -> int | None:
        """The last position applied to the target for this pipeline and source (None: nothing yet)."""
        conn = self._connection()
        with self._guarded():
            value = read_offset(conn, self.pipeline_id, self.source)
            conn.commit()
        return value

    def apply(self, events: Sequence[ChangeEvent], position: int) -> ApplyStats:
        """Apply whole source transactions and record `position`, in one target transaction.

        Events at or before the stored offset are skipped (a re-delivery after a crash). An empty
        batch with a newer position just moves the offset (heartbeats, filtered transactions).
        """
        return self.apply_streams({self.source: (events, position)})

    def apply_part(self, events: Sequence[ChangeEvent]) -> None:
        """Apply part of a source transaction too large for one batch, in a target transaction left open.

        The next `apply()` adds the rest and commits all of it with its position; `rollback()` (or
        any failure) discards the parts. Events at or before the stored offset are skipped, as in `apply`.
        """
        conn = self._connection()

        def part(cur: Any) -> None:
            stats = self._open_stats()
            stored = self._stored_for_update(cur, self.source)
            live = events if stored is None else [e for e in events if e.position > stored]
            if len(live) != len(events):
                stats.skipped += row_count(events) - row_count(live)
            self._write(cur, live, stats, clear_stage=True)
            self._open.written.extend(live)  # type: ignore[union-attr]

        with self._guarded():
            self._retrying(conn, part)

    def rollback(self) -> None:
        """Discard the parts applied since the last commit (the session is dropped, as after a failure)."""
        self._discard()

    def apply_streams(self, streams: Mapping[str, tuple[Sequence[ChangeEvent], int]]) -> ApplyStats:
        """Apply the events of several source streams and record each stream's position, in one transaction.

        `streams` maps a stream name (e.g. 'kafka:<topic>:<partition>') to its events, in stream
        order, and the position of the last of them. Per stream, events at or before its stored
        offset are skipped, so a batch read again after a crash changes nothing twice.
        """
        started = time.perf_counter()
        conn = self._connection()
        total = sum(row_count(events) for events, _position in streams.values())

        def write(cur: Any) -> ApplyStats | None:
            live: list[ChangeEvent] = []
            moved: dict[str, int] = {}
            for name, (events, position) in streams.items():
                stored = self._stored_for_update(cur, name)
                if stored is not None and position <= stored:
                    continue
                moved[name] = position
                live.extend(events if stored is None else [e for e in events if e.position > stored])
            if not moved:
                return None
            stats = self._open_stats()
            stats.position, stats.applied = max(moved.values()), True
            stats.skipped += total - row_count(live)
            self._write(cur, live, stats)
            for name, position in moved.items():
                write_offset(cur, self.pipeline_id, position, name)
            return stats

        with self._guarded():
            stats = self._retrying(conn, write)
            if stats is None:  # everything was applied before (a batch read again after a crash)
                self._rollback(conn)
                last = max((p for _e, p in streams.values()), default=None)
                return ApplyStats(position=last, skipped=total, seconds=time.perf_counter() - started)
            conn.commit()
            self._open = None
        stats.seconds = time.perf_counter() - started
        return stats

    def apply_unfiltered(self, events: Sequence[ChangeEvent]) -> ApplyStats:
        """Apply `events` in one target transaction whatever the stored offset, which stays as it is: the held
        changes of a table copied while the stream went on (core.cdc.tableload) are older than the stream's
        position, and new to the copy. Not exactly-once by itself: the caller redoes the copy after a crash."""
        started = time.perf_counter()
        conn = self._connection()

        def write(cur: Any) -> ApplyStats:
            stats = self._open_stats()
            stats.applied = True
            self._write(cur, list(events), stats)
            return stats

        with self._guarded():
            stats = self._retrying(conn, write)
            conn.commit()
            self._open = None
        stats.seconds = time.perf_counter() - started
        return stats

    def apply_isolated(self, events: Sequence[ChangeEvent], position: int) -> tuple[ApplyStats, dict[SourceTable, str]]:
        """Like `apply`, with each table's changes in a savepoint: a table whose changes fail is left out and
        its error returned, the others commit with `position`. The slow path after `apply` failed on a
        batch (any parts applied ahead are gone with that failure: pass their events again in `events`)."""
        started = time.perf_counter()
        self._discard()
        conn = self._connection()
        failed: dict[SourceTable, str] = {}
        with self._guarded():
            with conn.cursor() as cur:
                stored = read_offset_for_update(cur, self.pipeline_id, self.source)
                live = events if stored is None else [e for e in events if e.position > stored]
                self._open = _OpenTransaction(ApplyStats(position=position, applied=True), direct=False)
                stats = self._open.stats
                stats.skipped = row_count(events) - row_count(live)
                groups: dict[SourceTable, list[ChangeEvent]] = {}
                for ev in live:
                    groups.setdefault((ev.schema, ev.table), []).append(ev)
                for src, table_events in groups.items():
                    error = self._write_alone(cur, table_events, stats)
                    if error is not None:
                        failed[src] = error
                write_offset(cur, self.pipeline_id, position, self.source)
            conn.commit()
            self._open = None
        stats.seconds = time.perf_counter() - started
        return stats, failed

    def _write_alone(self, cur: Any, events: list[ChangeEvent], stats: ApplyStats) -> str | None:
        """One table's changes in a savepoint; on a failure they are rolled back and the reason returned."""
        assert self._open is not None
        staged, counts = set(self._open.staged), copy.deepcopy(stats)
        cur.execute("SAVEPOINT cdc_studio_table")
        try:
            self._write(cur, events, stats, clear_stage=True)
            cur.execute("RELEASE SAVEPOINT cdc_studio_table")
            return None
        except (psycopg2.Error, StudioError) as exc:
            message = str(translate_error(exc, self.spec)) if isinstance(exc, psycopg2.Error) else str(exc)
            cur.execute("ROLLBACK TO SAVEPOINT cdc_studio_table")
            self._staged -= self._open.staged - staged  # TEMP tables made inside the savepoint are gone
            self._open.staged = staged
            for name in ("inserts", "updates", "deletes", "truncates", "events", "rows_upserted", "rows_deleted"):
                setattr(stats, name, getattr(counts, name))
            stats.per_table, stats.by_table = counts.per_table, counts.by_table
            return message

    def _retrying(self, conn: PgConnection, work: Callable[[Any], T]) -> T:
        """`work(cur)` in the open target transaction; after a direct COPY met an existing key, the
        transaction is rolled back, its parts written again through staging, and `work` run again so."""
        try:
            with conn.cursor() as cur:
                return work(cur)
        except _DirectConflict:
            pass
        written = self._open.written if self._open is not None else []
        self._rollback(conn)
        self._open = _OpenTransaction(ApplyStats(position=None), direct=False)
        with conn.cursor() as cur:
            if written:
                self._stored_for_update(cur, self.source)  # lock the offset again, as the first part did
                self._write(cur, written, self._open.stats, clear_stage=True)
                self._open.written = written
            return work(cur)

    def _open_stats(self) -> ApplyStats:
        """The stats of the target transaction in progress (parts included)."""
        if self._open is None:
            self._open = _OpenTransaction(ApplyStats(position=None))
        return self._open.stats

    def _stored_for_update(self, cur: Any, name: str) -> int | None:
        """A stream's stored offset, read (and locked) once per target transaction."""
        stored = self._open.stored if self._open is not None else {}
        if name not in stored:
            stored[name] = read_offset_for_update(cur, self.pipeline_id, name)
        return stored[name]

    def _rollback(self, conn: PgConnection) -> None:
        conn.rollback()
        if self._open is not None and self._open.staged:
            self._staged -= self._open.staged  # TEMP tables created in the rolled back transaction are gone
        self._open = None

    def _write(self, cur: Any, events: Sequence[ChangeEvent], stats: ApplyStats, clear_stage: bool = False) -> None:
        """Stage and run the net changes of `events` in the open transaction (emptying the stages after a part)."""
        if self._open is not None and self._open.direct:
            events = self._copy_new_rows(cur, events, stats)
        batches = collect(expand(events), self.target_table)
        work = [self._stage(cur, changes, stats) for changes in batches.values()]
        statements = [s for statements in work for s in statements]
        if clear_stage:  # the next part's statements must not see these staged rows again
            statements += [self._statements(changes.table).clear_stage() for changes in batches.values()]
        if statements:
            cur.execute(";".join(statements))

    def _copy_new_rows(self, cur: Any, events: Sequence[ChangeEvent], stats: ApplyStats) -> Sequence[ChangeEvent]:
        """COPY every table whose events are all RawInserts or InsertRuns of one column layout straight into
        the target; return the other tables' events (each table's in order) for the set-based path."""
        groups: dict[SourceTable, list[ChangeEvent]] = {}
        layout: dict[SourceTable, tuple[str, ...] | None] = {}  # None: not all RawInserts of one layout
        rel: Any = None
        run: list[ChangeEvent] = []
        for ev in events:
            cls = type(ev)
            if (cls is InsertRun or cls is RawInsert) and ev.rel is rel:  # type: ignore[attr-defined]  # same relation
                run.append(ev)
                continue
            src = (ev.schema, ev.table)
            run = groups.get(src)  # type: ignore[assignment]
            if run is None:
                run = groups[src] = []
            run.append(ev)
            if cls is InsertRun or cls is RawInsert:
                rel = ev.rel  # type: ignore[attr-defined]
                names = layout.get(src, rel.names)
                layout[src] = rel.names if names is not None and names == rel.names else None
            else:
                rel = None
                layout[src] = None
        rest: list[SourceTable] = []
        for src, names in layout.items():
            if names is None or not self._copy_direct(cur, src, names, groups[src], stats):
                rest.append(src)
        if len(rest) == len(groups):
            return events
        return [ev for src in rest for ev in groups[src]]

    def _copy_direct(
        self, cur: Any, src: SourceTable, names: tuple[str, ...], rows: list[ChangeEvent], stats: ApplyStats
    ) -> bool:
        """COPY new rows straight into the target table (False: they need the set-based path)."""
        table = self.target_table(src)
        off = self._direct_off.get(table.oid)
        if off:
            self._direct_off[table.oid] = off - 1
            return False
        if not table.colset.issuperset(names):  # a column the target lacks or generates: staging says so
            return False
        messages: list[bytes] = []
        for ev in rows:
            if type(ev) is InsertRun:
                messages.extend(ev.messages)
            else:
                messages.append(ev.message)  # type: ignore[attr-defined]
        data = copy_text(messages, len(names))
        if data is None:
            return False
        try:
            cur.copy_expert(self._statements(table).copy_into_target(names), io.BytesIO(data), size=_COPY_CHUNK)
        except psycopg2.errors.UniqueViolation:
            self._direct_off[table.oid] = DIRECT_BACKOFF
            raise _DirectConflict from None
        n = len(messages)
        stats.inserts += n
        stats.events += n
        stats.rows_upserted += n
        label = f"{src[0]}.{src[1]}"
        per = stats.per_table.setdefault(label, {"insert": 0, "update": 0, "delete": 0, "truncate": 0})
        per["insert"] += n
        stats.by_table[(*src, "insert")] += n
        return True

    def stored_positions(self, prefix: str) -> dict[str, int]:
        """Every stored stream position of this pipeline whose stream name starts with `prefix`."""
        conn = self._connection()
        with self._guarded():
            with conn.cursor() as cur:
                stored = read_offsets(cur, self.pipeline_id, prefix)
            conn.commit()
        return stored

    def _stage(self, cur: Any, changes: TableChanges, stats: ApplyStats) -> list[str]:
        """COPY one table's net changes into its staging table; return the statements that apply them."""
        table = changes.table
        st = self._statements(table)
        for safe in (False, True):
            plan = changes.plan(lambda t, key, cols: self._lookup(cur, st, key, cols), safe=safe)
            try:
                copies, statements = self._work(st, plan)
                break
            except MarkerInValue:  # a value holds a marker character: escape value by value instead
                continue
        self._count(changes, plan, stats)
        if copies and table.oid not in self._staged:
            cur.execute(st.create_stage())
            self._staged.add(table.oid)
            if self._open is not None:
                self._open.staged.add(table.oid)
        for statement, data in copies:
            cur.copy_expert(statement, io.BytesIO(data), size=_COPY_CHUNK)
        return statements

    @staticmethod
    def _work(st: Statements, plan: Plan) -> tuple[list[tuple[str, bytes]], list[str]]:
        """(COPY statement, payload) pairs and the statements to run after them, in order."""
        copies: list[tuple[str, bytes]] = []
        out: list[str] = [st.truncate()] if plan.truncate else []
        if plan.deletes:
            copies.append((st.copy(st.table.primary_key), payload(plan.deletes, str(DELETE_GROUP)).encode()))
            out.append(st.delete())
        for columns, rows in plan.upserts.items():
            copies.append((st.copy(columns), payload(rows, str(st.group_id("upsert", columns))).encode()))
            out.append(st.upsert(columns))
        for columns, rows in plan.updates.items():
            statement = st.update(columns)
            if statement is not None:
                copies.append((st.copy(columns), payload(rows, str(st.group_id("update", columns))).encode()))
                out.append(statement)
        return copies, out

    @staticmethod
    def _lookup(cur: Any, st: Statements, key: Any, columns: tuple[str, ...]) -> dict[str, str | None] | None:
        cur.execute(st.lookup(columns), st.table.key_values(key))
        row = cur.fetchone()
        return None if row is None else dict(zip(columns, row, strict=True))

    @staticmethod
    def _count(changes: TableChanges, plan: Plan, stats: ApplyStats) -> None:
        c = changes.counts
        stats.inserts += c["insert"]
        stats.updates += c["update"]
        stats.deletes += c["delete"]
        stats.truncates += c["truncate"]
        stats.events += sum(c.values())
        stats.rows_deleted += len(plan.deletes)
        stats.rows_upserted += plan.rows - len(plan.deletes)
        label = f"{changes.source[0]}.{changes.source[1]}"
        per = stats.per_table.setdefault(label, {"insert": 0, "update": 0, "delete": 0, "truncate": 0})
        for op, n in c.items():
            per[op] += n
            if n:
                stats.by_table[(*changes.source, op)] += n
