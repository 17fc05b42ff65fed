"""Validating one table PostgreSQL -> PostgreSQL or SQL Server -> PostgreSQL while changes may keep flowing.

Counts first; then checksums of key segments (~100k rows) on both sides, a mismatching segment split 32 ways
and again, down to segments small enough (<= ROW_FETCH rows) to fetch and compare row by row. Each read asks
the target, then at once the source (each in a REPEATABLE READ snapshot, both running together): the target
holds what the pipeline applied, the source may hold a few changes more, the ones still in flight. A difference is a
candidate: `recheck` reads its key again on both sides later, and only a difference that reads the same
every time (same kind, columns and values on both sides) is a mismatch. A row in flight does not: by the
recheck it arrived, or it changed again. A table's rows are never held whole: a segment at a time.

One validation query per database at a time (a lock per server and database, across checks), each under a
statement timeout.

Each side's SQL comes from its reader's `table_shape`: PostgreSQL's TableShape (core.datacheck.sql) or SQL
Server's MssqlShape (core.datacheck.mssql, read by core.datacheck.mssql_reader). Between PostgreSQL databases
it is the fast hashtextextended path; with SQL Server on one side, both render the portable normal form
(core.datacheck.portable) and checksums are SHA-256 sums both compute alike. A side that cannot compute them
(SQL Server before 2019, PostgreSQL before 11) makes the check compare every segment row by row instead.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from psycopg2 import sql
from pydantic_core import to_jsonable_python

from core.connectors.base import ConnectionSpec
from core.connectors.postgres import connect, translate_error
from core.datacheck.compare import FLOAT4_TOLERANCE, FLOAT8_TOLERANCE, Difference, compare
from core.datacheck.portable import Norm, pair_columns
from core.datacheck.sql import COLUMNS_SQL, PRIMARY_KEY_SQL, Column, TableShape
from core.errors import StudioError

# Both PostgreSQL sides print values alike whatever their servers' defaults: a column of the same type on both
# then compares (and hashes) as its plain text output, without a normalizing expression.
OUTPUT_SETTINGS = (
    "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; "
    "SET extra_float_digits = 1; SET bytea_output = 'hex'"
)
ONE_PASS_MAX_ROWS = 20_000_000
_INTEGERS = (
    "smallint",
    "integer",
    "bigint",
)  # up to this many rows, the first checksums of all segments come from one scan
SEGMENT_ROWS = 100_000
SPLIT = 32
ROW_FETCH = 16_000
MAX_MISMATCHES = 1000
STATEMENT_TIMEOUT_S = 300
BY_KEY_CHUNK = 1000

_db_locks: dict[tuple[str, int, str], threading.Lock] = {}
_db_locks_guard = threading.Lock()


def db_lock(spec: ConnectionSpec) -> threading.Lock:
    """The lock of one server and database: one validation query there at a time."""
    key = (spec.host, spec.port, spec.database)
    with _db_locks_guard:
        return _db_locks.setdefault(key, threading.Lock())


class NoPrimaryKey(StudioError):
    """The source table has no primary key: its rows cannot be matched."""


class Suspended(StudioError):
    """More than MAX_MISMATCHES rows differ: the table is set aside."""


class Shape(Protocol):
    """The queries of one side of a table (TableShape for PostgreSQL, MssqlShape for SQL Server)."""

    @property
    def key(self) -> Sequence[Column]: ...

    @property
    def can_hash(self) -> bool: ...

    @property
    def max_keys(self) -> int: ...

    def count(self) -> Any: ...

    def checksum(self, low: tuple | None, high: tuple | None) -> tuple[Any, list]: ...

    def boundaries(self, low: tuple | None, high: tuple | None, step: int) -> tuple[Any, list]: ...

    def rows(self, low: tuple | None, high: tuple | None) -> tuple[Any, list]: ...

    def rows_by_key(self, keys: list[tuple]) -> tuple[Any, list]: ...


class SideReader(Protocol):
    """One side's session, as the TableValidator uses it (Reader for PostgreSQL, MssqlReader for SQL Server)."""

    kind: str

    def query(self, statement: Any, params: list | tuple = ()) -> list[tuple]: ...

    def snapshot(self) -> AbstractContextManager[None]: ...

    def done(self) -> None: ...

    def shape(self, schema: str, table: str) -> tuple[list[Column], list[str]]: ...

    def table_shape(
        self, table: tuple[str, str], key: Sequence[Column], columns: Sequence[Column], norms: tuple[Norm, ...] | None
    ) -> Shape: ...

    def close(self) -> None: ...


class Reader:
    """One PostgreSQL side's session for a data check (read only, statement timeout)."""

    kind = "postgresql"

    def __init__(self, spec: ConnectionSpec, *, is_source: bool) -> None:
        self.spec = spec
        self.is_source = is_source
        self.conn = connect(
            spec,
            application_name="cdc_studio_data_check",
            session_sql=f"SET statement_timeout = '{STATEMENT_TIMEOUT_S}s'; {OUTPUT_SETTINGS}",
            autocommit=False,
        )
        self.server_version = int(self.conn.server_version)
        self.lock = db_lock(spec)

    def close(self) -> None:
        self.conn.close()

    def done(self) -> None:
        """End the transaction the last queries opened (outside `snapshot`)."""
        self.conn.rollback()

    def table_shape(
        self, table: tuple[str, str], key: Sequence[Column], columns: Sequence[Column], norms: tuple[Norm, ...] | None
    ) -> TableShape:
        """The queries of this side; `norms` (the other side is SQL Server): the portable normal form."""
        return TableShape(table[0], table[1], tuple(key), tuple(columns), self.server_version, norms)

    def query(self, statement: Any, params: list | tuple = ()) -> list[tuple]:
        with self.lock, self.conn.cursor() as cur:
            try:
                cur.execute(statement, list(params))
                return cur.fetchall()
            except Exception as exc:
                self.conn.rollback()
                raise translate_error(exc, self.spec) from None

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """A REPEATABLE READ, read-only transaction (the queries in it see one snapshot)."""
        self.conn.rollback()
        self.conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        try:
            yield
        finally:
            self.conn.rollback()
            self.conn.set_session(isolation_level="READ COMMITTED", readonly=True)

    def shape(self, schema: str, table: str) -> tuple[list[Column], list[str]]:
        """The table's columns and primary key columns (NotFound-like StudioError when the table is gone)."""
        name = f'"{schema}"."{table}"'
        try:
            columns = [Column(n, t, c) for n, t, c in self.query(COLUMNS_SQL, (name,))]
            key = [r[0] for r in self.query(PRIMARY_KEY_SQL, (name,))]
        except StudioError as exc:
            side = "source" if self.is_source else "target"
            raise StudioError(f"the {side} table {schema}.{table} cannot be read: {exc}") from None
        finally:
            self.conn.rollback()
        return columns, key


@dataclass
class TableResult:
    source_rows: int = 0
    target_rows: int = 0
    segments: int = 0
    candidates: dict[tuple, Difference] = field(default_factory=dict)
    raw_keys: dict[tuple, tuple] = field(default_factory=dict)  # comparable key -> key values as read


class TableValidator:
    """One table's validation between a source and a target session."""

    def __init__(
        self,
        source: SideReader,
        target: SideReader,
        source_table: tuple[str, str],
        target_table: tuple[str, str],
        on_segment: Callable[[TableResult], None] = lambda _r: None,
    ) -> None:
        self.source, self.target = source, target
        self.on_segment = on_segment
        src_cols, key = source.shape(*source_table)
        if not key:
            raise NoPrimaryKey(f"{source_table[0]}.{source_table[1]} has no primary key")
        tgt_cols, _ = target.shape(*target_table)
        if not tgt_cols:
            raise StudioError(f"the target table {target_table[0]}.{target_table[1]} does not exist")
        on_target = {c.name: c for c in tgt_cols}
        missing_key = [k for k in key if k not in on_target]
        if missing_key:
            raise StudioError(f"the target table lacks the key column(s) {', '.join(missing_key)}")
        shared = [c for c in src_cols if c.name in on_target]
        by_name = {c.name: c for c in src_cols}
        self.names = [c.name for c in shared]
        self.key_index = [self.names.index(k) for k in key]
        self.tolerances: list[float | None] = [
            (FLOAT4_TOLERANCE if "real" in (c.base, on_target[c.name].base) else FLOAT8_TOLERANCE)
            if (c.is_float or on_target[c.name].is_float)
            else None
            for c in shared
        ]
        tgt_shared = [on_target[c.name] for c in shared]
        norms = pair_columns([c.type for c in shared], [c.type for c in tgt_shared], source.kind, target.kind)
        self.src = source.table_shape(source_table, [by_name[k] for k in key], shared, norms)
        self.tgt = target.table_shape(target_table, [on_target[k] for k in key], tgt_shared, norms)
        if isinstance(self.src, TableShape) and isinstance(self.tgt, TableShape) and norms is None:
            # PG <-> PG: a column of exactly the same type on both sides needs no normalizing; when every column
            # of both tables is such (same order), a row hashes as the table row's own text output.
            # (money prints by each server's lc_monetary: normalized always)
            plain = tuple(s.type == t.type and s.base != "money" for s, t in zip(shared, tgt_shared, strict=True))
            whole = all(plain) and [c.name for c in src_cols] == self.names == [c.name for c in tgt_cols]
            self.src = replace(self.src, plain=plain, whole_row=whole)
            self.tgt = replace(self.tgt, plain=plain, whole_row=whole)
        self.hashing = self.src.can_hash and self.tgt.can_hash  # else every segment is compared row by row
        self.result = TableResult()
        self._one_pass: bool | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="data-check-target")

    # -- counts -------------------------------------------------------------------------------------

    def both(self, target_query: Any, source_query: Any, params_t: list, params_s: list) -> tuple[list, list]:
        """The target's answer and the source's, each in its own snapshot, run at once (the target's sent
        first): both sides are read in the time of the slower one."""

        def on_target() -> list:
            with self.target.snapshot():
                return self.target.query(target_query, params_t)

        pending = self._pool.submit(on_target)
        try:
            with self.source.snapshot():
                source = self.source.query(source_query, params_s)
        finally:
            target = pending.result()
        return target, source

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def counts(self) -> tuple[int, int]:
        target, source = self.both(self.tgt.count(), self.src.count(), [], [])
        self.result.source_rows, self.result.target_rows = int(source[0][0]), int(target[0][0])
        return self.result.source_rows, self.result.target_rows

    # -- checksums down to rows ---------------------------------------------------------------------

    def find_differences(self) -> TableResult:
        """Candidates of the whole table (raises Suspended past MAX_MISMATCHES)."""
        tops = self._fine_tops() if self.one_pass() else None
        if tops is None:
            tops = self._boundaries(self.source, self.src, None, None, SEGMENT_ROWS)
        self._segments(None, None, tops)
        return self.result

    def _fine_tops(self) -> list[tuple] | None:
        """The one scan's segment ends. An integer key: SEGMENT_ROWS / SPLIT rows per segment by its key range
        (min and max from the index), so that the scan gives every ~SEGMENT_ROWS segment's checksum and its
        SPLIT-way split at once, and a difference is down to rows without reading its segment again. Other
        keys: the ends of ~SEGMENT_ROWS segments from the planner's histogram (None without one)."""
        assert isinstance(self.src, TableShape)
        (key,) = self.src.key
        if key.base not in _INTEGERS:
            return self._estimated_tops()
        ident = sql.Identifier(key.name)
        query = sql.SQL("SELECT min({k}), max({k}) FROM {t}").format(k=ident, t=self.src.name)
        ((lo, hi),) = self.source.query(query)
        self.source.done()
        if lo is None:
            return []
        pieces = max(1, math.ceil(self._rows_expected() / max(1, SEGMENT_ROWS // SPLIT)))
        step = (hi - lo) / pieces
        return [(t,) for t in sorted({lo + round(step * i) for i in range(1, pieces)}) if lo <= t < hi]

    def _estimated_tops(self) -> list[tuple] | None:
        """Segment ends of ~SEGMENT_ROWS from the planner's histogram of the source's key (free, where a key
        scan with row_number costs a third of the check); None without one, or for a text key (the histogram
        is in the column's collation, the segments in byte order). A histogram gone stale only makes segments
        uneven: a segment that differs is split at exact boundaries."""
        assert isinstance(self.src, TableShape)
        (key,) = self.src.key
        if key.is_text:
            return None
        found = self.source.query(
            sql.SQL(
                "SELECT unnest(histogram_bounds::text::{}[]) FROM pg_stats "
                "WHERE schemaname = %s AND tablename = %s AND attname = %s"
            ).format(sql.SQL(key.type)),
            [self.src.schema, self.src.table, key.name],
        )
        self.source.done()
        bounds = [row[0] for row in found]
        rows = self._rows_expected()
        if len(bounds) < 2 or rows <= 0:
            return None
        per_bin = rows / (len(bounds) - 1)
        every = max(1, round(SEGMENT_ROWS / per_bin))
        inner = bounds[every:-1:every]  # the lowest and highest bounds are the sample's ends, not segment ends
        return [(v,) for v in sorted(set(inner))]

    def _segments(self, low: tuple | None, high: tuple | None, inner: list) -> None:
        """The segments between `low`, the `inner` boundaries and `high`: checked one range query each, or
        (one_pass) all from one bucketed scan of the range, going on only into those that differ."""
        edges: list[tuple | None] = [low, *inner, high]
        if not self.one_pass():
            for sub_low, sub_high in zip(edges, edges[1:], strict=False):
                self._segment(sub_low, sub_high)
            return
        for i, counts in self._differing_buckets(inner, low, high):
            self._segment(edges[i], edges[i + 1], counts)

    def one_pass(self) -> bool:
        """Whether find_differences takes every segment's first checksum, and the table's counts, from one scan
        of each side (bucket_checksums): PostgreSQL on both sides, a one-column key, and a table small enough
        (by the counts, or the planner's estimate before them) for one query within the statement timeout."""
        if self._one_pass is None:
            src, tgt = self.src, self.tgt
            self._one_pass = (
                isinstance(src, TableShape)
                and isinstance(tgt, TableShape)
                and self.hashing
                and src.can_bucket
                and tgt.can_bucket
                and 0 <= self._rows_expected() <= ONE_PASS_MAX_ROWS
            )
        return self._one_pass

    def _rows_expected(self) -> int:
        """The source's rows: counted, or the planner's estimate (-1: unknown, the table was never analyzed)."""
        if self.result.source_rows or self.result.target_rows:
            return max(self.result.source_rows, self.result.target_rows)
        assert isinstance(self.src, TableShape)
        found = self.source.query("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [
            f'"{self.src.schema}"."{self.src.table}"'
        ])  # fmt: skip
        self.source.done()
        return int(found[0][0]) if found else -1

    def _differing_buckets(
        self, tops: list, low: tuple | None = None, high: tuple | None = None
    ) -> list[tuple[int, tuple[int, int]]]:
        """The segments of `low < key <= high` split at `tops` whose counts or checksums differ, with their row
        counts (source, target), from one bucketed scan of each side at once."""
        assert isinstance(self.src, TableShape) and isinstance(self.tgt, TableShape)
        query_t, params_t = self.tgt.bucket_checksums(tops, low, high)
        query_s, params_s = self.src.bucket_checksums(tops, low, high)
        target, source = self.both(query_t, query_s, params_t, params_s)
        on_t = {int(b): (int(n), int(h)) for b, n, h in target}
        on_s = {int(b): (int(n), int(h)) for b, n, h in source}
        if low is None and high is None:  # the whole table's counts, read in the same snapshots as its checksums
            self.result.source_rows = sum(n for n, _h in on_s.values())
            self.result.target_rows = sum(n for n, _h in on_t.values())
        differing = []
        for i in range(len(tops) + 1):
            s_side, t_side = on_s.get(i, (0, 0)), on_t.get(i, (0, 0))
            if s_side != t_side:
                differing.append((i, (s_side[0], t_side[0])))
            else:
                self.result.segments += 1
        self.on_segment(self.result)
        return differing

    def _boundaries(self, reader: SideReader, shape: Shape, low: tuple | None, high: tuple | None, step: int) -> list:
        query, params = shape.boundaries(low, high, step)
        found = [tuple(r) for r in reader.query(query, params)]
        reader.done()
        return found

    def _segment(self, low: tuple | None, high: tuple | None, differing: tuple[int, int] | None = None) -> None:
        """One segment: checksummed (unless a bucketed scan found it `differing`, with these row counts), then
        compared row by row when small, else split SPLIT ways."""
        self.result.segments += 1
        if differing is None:
            query_t, params_t = self.tgt.checksum(low, high)
            query_s, params_s = self.src.checksum(low, high)
            target, source = self.both(query_t, query_s, params_t, params_s)
            t_sums, s_sums = [int(v) for v in target[0]], [int(v) for v in source[0]]
            s_count, t_count = s_sums[0], t_sums[0]
            if (self.hashing and s_sums == t_sums) or s_count == t_count == 0:
                self.on_segment(self.result)
                return
        else:
            s_count, t_count = differing
        if max(s_count, t_count) <= ROW_FETCH:
            self._compare_rows(low, high)
            self.on_segment(self.result)
            return
        # split on the side with more rows, so that extra rows on the target are split too
        reader: SideReader
        shape: Shape
        reader, shape, rows = (
            (self.source, self.src, s_count) if s_count >= t_count else (self.target, self.tgt, t_count)
        )
        inner = self._even_split(low, high) if self.one_pass() else None
        if inner is None:
            inner = self._boundaries(reader, shape, low, high, max(1, math.ceil(rows / SPLIT)))
        inner = [b for b in inner if b != high]
        self._segments(low, high, inner)

    def _even_split(self, low: tuple | None, high: tuple | None) -> list[tuple] | None:
        """An integer key's range (low, high] cut into SPLIT equal key ranges without reading the keys (None:
        not an integer key, or an open end). Uneven rows per range only cost a further split."""
        (key,) = self.src.key
        if key.base not in _INTEGERS or low is None or high is None:
            return None
        lo, hi = int(low[0]), int(high[0])
        if hi - lo < 2 * SPLIT:
            return None
        step = (hi - lo) / SPLIT
        return [(lo + round(step * i),) for i in range(1, SPLIT)]

    def _keyed(self, rows: list) -> dict[tuple, tuple]:
        width = len(self.src.key)
        out: dict[tuple, tuple] = {}
        for row in rows:
            values = tuple(row[width:])
            key = tuple(values[i] for i in self.key_index)
            out[key] = values
            self.result.raw_keys.setdefault(key, tuple(row[:width]))
        return out

    def _compare_rows(self, low: tuple | None, high: tuple | None) -> None:
        query_t, params_t = self.tgt.rows(low, high)
        query_s, params_s = self.src.rows(low, high)
        target, source = self.both(query_t, query_s, params_t, params_s)
        for diff in compare(self.names, self.tolerances, self._keyed(source), self._keyed(target)):
            self.result.candidates[diff.key] = diff
        if len(self.result.candidates) > MAX_MISMATCHES:
            raise Suspended(f"more than {MAX_MISMATCHES} rows differ")

    # -- rechecks -----------------------------------------------------------------------------------

    def recheck(self, candidates: dict[tuple, Difference]) -> dict[tuple, Difference]:
        """The candidates that read the same difference again (same kind, columns and values on both sides)."""
        keys = list(candidates)
        still: dict[tuple, Difference] = {}
        step = min(BY_KEY_CHUNK, self.src.max_keys, self.tgt.max_keys)
        for start in range(0, len(keys), step):
            chunk = keys[start : start + step]
            raw = [self.result.raw_keys[k] for k in chunk]
            query_t, params_t = self.tgt.rows_by_key(raw)
            query_s, params_s = self.src.rows_by_key(raw)
            target, source = self.both(query_t, query_s, params_t, params_s)
            for diff in compare(self.names, self.tolerances, self._keyed(source), self._keyed(target)):
                if candidates.get(diff.key) == diff:
                    still[diff.key] = diff
        return still

    def key_dict(self, key: tuple) -> dict[str, Any]:
        """A difference's key as column -> value, the values as read (JSON-ready: numerics and times as text)."""
        raw = self.result.raw_keys.get(key, key)
        return {c.name: to_jsonable_python(v, fallback=str) for c, v in zip(self.src.key, raw, strict=True)}
