"""End-to-end CDC against PostgreSQL's own logical replication, measured in the same run.

Starts a throwaway cluster (wal_level=logical) with a source and a target database (two
databases of ONE cluster: both sides share the machine's cores) and, per round, times:

  A  A-live: one N-row INSERT transaction while both consumers are already streaming, from its
     COMMIT until the target has it
       native  CREATE SUBSCRIPTION (copy_data = false, streaming before the workload), done when
               the subscription's replication origin reaches the transaction's commit LSN
       ours    the real engine: a CdcWorker with a CDC_ONLY CdcPlan on a thread, as core/runner.py
               runs it (it creates its publication and slot, then streams); done when the target's
               cdc_studio.offsets position reaches the commit LSN
  C  A-catchup: the same N-row transaction committed while both consumers are stopped, then timed
     as B is (so the walsender's / our decoding of the whole transaction is inside the time)
  B  N single-row transactions generated while the consumer is stopped (subscription disabled,
     our worker not running; its slot and publication exist; generation does not count), then
     timed from ENABLE / worker start until the last transaction is applied
  L  commit-to-applied latency: a server-side procedure commits `--rate` single-row transactions
     per second for `--latency-seconds`; each row carries clock_timestamp() at insert and a
     BEFORE INSERT OR UPDATE trigger on the target stamps applied_at = clock_timestamp() (same
     server, same clock; ENABLE ALWAYS so it also fires under the native apply worker). The
     target table has applied_at as an extra column the source lacks, so no applier writes it.

Native and ours use separate source tables, publications, slots and target tables and run one
after the other (the order alternates between rounds); every slot, publication and subscription
is dropped after each measurement. Ours records its batches in a throwaway SQLite app database,
like the app does. Both target tables are verified against the source (count + md5).

    .venv/bin/python benchmarks/cdc.py [--rows 200000] [--rounds 3] [--latency-seconds 10] [--rate 1000]
                                       [--workloads ACBL] [--profile] [--without-monitoring]

--monitoring-overhead also measures ours a second time per workload with monitoring OFF (the recorder a
no-op, no app jobs) while the "ours" run has it ON as the app does, plus the app's monitoring jobs (metrics
sampler, rollups, health checks with their heartbeats and alert evaluation, notification retries) running
on a thread at the app's intervals (--jobs-speedup N: N times as often, to magnify their cost); it prints
the on/off ratio per workload (goal >= 0.95). The bench pipelines are marked RUNNING in the app database so
the health checks do their real work against the cluster.

--profile cProfiles our worker thread (and so slows it); --without-monitoring is a diagnostic that
turns core.monitoring.recorder.record_applied into a no-op in this process, to show what recording each
batch in the app database costs (the figures are then NOT the app as shipped).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import pstats
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.cdc import pg_source  # noqa: E402
from core.cdc.engine import CdcWorker  # noqa: E402
from core.connectors.base import ConnectionSpec  # noqa: E402
from core.fullload import TablePlan  # noqa: E402
from core.plans import CdcPlan  # noqa: E402
from core.security import encrypt_secret  # noqa: E402
from tests.pgcluster import PgCluster  # noqa: E402

SRC, DST = "cdc_src", "cdc_dst"
COLUMNS = "id bigint PRIMARY KEY, a int, b text, c numeric(12,2), d timestamptz"
LAT_COLUMNS = COLUMNS + ", committed_at timestamptz NOT NULL DEFAULT clock_timestamp()"
VALUES = (
    "{g}, {g} * 7, 'some text value ' || {g}, ({g} % 100000)::numeric / 100, "
    "timestamptz '2024-01-01 00:00+00' + {g} * interval '1 s'"
)
# Throughput tables (A and B) and latency tables, one of each per consumer.
NAT_T, OUR_T, NAT_L, OUR_L = "nat_t", "our_t", "nat_lat", "our_lat"
NAT_SUB, NAT_SLOT = "bench_native", "bench_native"
# As apply.py (fsync off, no checkpoint mid-run); the launcher may start a subscription's apply
# worker right after ENABLE (its default 5 s throttle after the previous start would count in B).
# Autovacuum off: after one consumer's 200k inserts it vacuums and analyzes those tables while the
# other consumer is being measured (seen: whichever ran second lost 20-30%).
CLUSTER_CONF = {
    "max_wal_size": "'16GB'",
    "checkpoint_timeout": "'1h'",
    "shared_buffers": "'256MB'",
    "wal_retrieve_retry_interval": "'50ms'",
    "autovacuum": "off",
}
# The cluster runs synchronous_commit=off; a source session that commits the workload uses `on`
# (cheap with fsync off) so its commits reach the walsenders at once, not at the WAL writer's
# next round (wal_writer_delay, 200 ms), which would add up to 200 ms to every measurement.
SOURCE_SESSION = "SET synchronous_commit = on"
POLL_S = 0.005

# Single-row transactions generated on the server (no client round trip per row): rows lo..hi,
# one COMMIT each; per_second > 0 paces the commits on an absolute schedule.
GEN_PROC = """
CREATE PROCEDURE gen_{table}(lo bigint, hi bigint, per_second int DEFAULT 0) LANGUAGE plpgsql AS $$
DECLARE
    started timestamptz := clock_timestamp();
    step interval := CASE WHEN per_second > 0 THEN interval '1 second' / per_second END;
    due timestamptz;
BEGIN
    FOR g IN lo..hi LOOP
        INSERT INTO public.{table} (id, a, b, c, d) VALUES ({values});
        COMMIT;
        IF per_second > 0 THEN
            due := started + (g - lo + 1) * step;
            IF due > clock_timestamp() THEN
                PERFORM pg_sleep(extract(epoch FROM due - clock_timestamp()));
            END IF;
        END IF;
    END LOOP;
END $$
"""
STAMP_FN = (
    "CREATE FUNCTION stamp_applied() RETURNS trigger LANGUAGE plpgsql AS "
    "$$BEGIN NEW.applied_at := clock_timestamp(); RETURN NEW; END$$"
)
STAMP_TRIGGER = (
    "CREATE TRIGGER stamp_applied BEFORE INSERT OR UPDATE ON public.{table} FOR EACH ROW "
    "EXECUTE FUNCTION stamp_applied(); ALTER TABLE public.{table} ENABLE ALWAYS TRIGGER stamp_applied"
)


# ------------------------------------------------------------------------------------ helpers


class Bench:
    """The cluster, one autocommit session per database, the app database and what to clean up."""

    def __init__(self, pg: PgCluster, app_dir: Path, profile: bool) -> None:
        self.pg = pg
        self.app_dir = app_dir
        self.profile = profile
        self.profiles: dict[str, list[cProfile.Profile]] = {}
        self.workers: list[OurWorker] = []
        self.src = pg.connect(SRC)
        self.q(self.src, SOURCE_SESSION)
        self.dst = pg.connect(DST)
        self.pipeline_ids: dict[str, int] = {}
        self.jobs: MonitoringJobs | None = None  # --monitoring-overhead

    def spec(self, db: str) -> ConnectionSpec:
        pg = self.pg
        return ConnectionSpec(
            kind="postgresql", host=pg.host, port=pg.port, database=db, username=pg.user, password=pg.password
        )

    def q(self, conn, statement: str, params: tuple | None = None) -> list[tuple]:  # noqa: ANN001
        with conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall() if cur.description else []

    def one(self, conn, statement: str, params: tuple | None = None):  # noqa: ANN001, ANN201
        rows = self.q(conn, statement, params)
        return rows[0][0] if rows else None


def lsn_int(text: str) -> int:
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


def setup(b: Bench) -> None:
    """Tables on both sides, generator procedures, the applied_at trigger, app-database rows."""
    for table in (NAT_T, OUR_T):
        b.q(b.src, f"CREATE TABLE public.{table} ({COLUMNS})")
        b.q(b.dst, f"CREATE TABLE public.{table} ({COLUMNS})")
    b.q(b.dst, STAMP_FN)
    for table in (NAT_L, OUR_L):
        b.q(b.src, f"CREATE TABLE public.{table} ({LAT_COLUMNS})")
        b.q(b.dst, f"CREATE TABLE public.{table} ({LAT_COLUMNS}, applied_at timestamptz)")
        b.q(b.dst, STAMP_TRIGGER.format(table=table))
    for table in (NAT_T, OUR_T, NAT_L, OUR_L):
        b.q(b.src, GEN_PROC.format(table=table, values=VALUES.format(g="g")))
    # Native: one publication per table (the subscription is made per measurement).
    for table in (NAT_T, NAT_L):
        b.q(b.src, f"CREATE PUBLICATION pub_{table} FOR TABLE public.{table}")

    # The app database the engine records batches in (monitoring needs a pipeline row per id).
    from data import db
    from data.models import Connection, Pipeline

    db.init(f"sqlite:///{b.app_dir / 'app.db'}")
    with db.session_scope() as session:
        conns = {}
        for name, database in (("bench source", SRC), ("bench target", DST)):
            c = Connection(
                name=name,
                kind="postgresql",
                host=b.pg.host,
                port=b.pg.port,
                database=database,
                username=b.pg.user,
                password_encrypted=encrypt_secret(b.pg.password),
            )
            session.add(c)
            session.flush()
            conns[database] = c.id
        for table in (OUR_T, OUR_L):
            p = Pipeline(
                name=f"bench {table}",
                source_connection_id=conns[SRC],
                target_connection_id=conns[DST],
                source_database=SRC,
                source_schema="public",
                target_database=DST,
                target_schema="public",
                tables=[table],
                mode="CDC_ONLY",
                auto_create=False,
                target_table_policy="append",
            )
            session.add(p)
            session.flush()
            b.pipeline_ids[table] = p.id


def reset(b: Bench, table: str) -> None:
    """Empty a source/target table pair (no slot is reading it now) and checkpoint, before a measurement."""
    b.q(b.src, f"TRUNCATE public.{table}")
    b.q(b.dst, f"TRUNCATE public.{table}")
    b.q(b.src, "CHECKPOINT")


def verify(b: Bench, table: str, rows: int) -> None:
    digest = (
        f"SELECT count(*), md5(string_agg(t::text, '|' ORDER BY id)) FROM (SELECT id, a, b, c, d FROM public.{table}) t"
    )
    src, dst = b.q(b.src, digest)[0], b.q(b.dst, digest)[0]
    if src != dst or src[0] != rows:
        raise SystemExit(f"{table}: target differs from source (source {src}, target {dst}, expected {rows} rows)")


def wait_until(what: str, check: Callable[[], bool], timeout: float, alive: Callable[[], None] | None = None) -> float:
    """Poll `check` every POLL_S until true; the perf_counter time it was first seen true."""
    deadline = time.perf_counter() + timeout
    while True:
        if check():
            return time.perf_counter()
        if alive is not None:
            alive()
        if time.perf_counter() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(POLL_S)


def commit_insert(b: Bench, table: str, lo: int, hi: int) -> tuple[int, float]:
    """One transaction inserting rows lo..hi; (an LSN just below its commit record, time COMMIT returned)."""
    conn = b.pg.connect(SRC, autocommit=False)
    try:
        with conn.cursor() as cur:
            cur.execute(SOURCE_SESSION)
            cur.execute(
                f"INSERT INTO public.{table} (id, a, b, c, d) SELECT {VALUES.format(g='g')} "
                f"FROM generate_series({int(lo)}, {int(hi)}) g"
            )
            cur.execute("SELECT pg_current_wal_insert_lsn()::text")
            before_commit = lsn_int(cur.fetchone()[0])
            conn.commit()
            committed = time.perf_counter()
    finally:
        conn.close()
    return before_commit, committed


# ------------------------------------------------------------------------------------ consumers


class Native:
    """A subscription on the target to a publication on the source, over a slot made beforehand."""

    def __init__(self, b: Bench, table: str) -> None:
        self.b = b
        self.table = table

    def create(self, enabled: bool = True) -> None:
        b = self.b
        # Same cluster: the slot cannot be created by CREATE SUBSCRIPTION itself (it would wait for
        # its own transaction), so it is made first, as PostgreSQL's documentation says.
        b.q(b.src, "SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (NAT_SLOT,))
        b.q(
            b.dst,
            f"CREATE SUBSCRIPTION {NAT_SUB} CONNECTION '{b.pg.dsn(SRC)}' PUBLICATION pub_{self.table} "
            f"WITH (create_slot = false, slot_name = '{NAT_SLOT}', copy_data = false, "
            f"enabled = {str(enabled).lower()})",
        )

    def streaming(self) -> bool:
        return (
            self.b.one(
                self.b.src,
                "SELECT count(*) FROM pg_stat_replication WHERE application_name = %s AND state = 'streaming'",
                (NAT_SUB,),
            )
            == 1
        )

    def stream(self) -> None:
        """Create the subscription enabled and wait until its walsender streams."""
        self.create()
        wait_until("the subscription to stream", self.streaming, 60)

    def prepare_stopped(self) -> None:
        """Slot and publication exist, the subscription is created disabled: no one reads the slot."""
        self.create(enabled=False)

    def resume(self) -> None:
        """Start consuming what was written while stopped."""
        self.enable()

    def enable(self) -> None:
        self.b.q(self.b.dst, f"ALTER SUBSCRIPTION {NAT_SUB} ENABLE")

    def disable(self) -> None:
        self.b.q(self.b.dst, f"ALTER SUBSCRIPTION {NAT_SUB} DISABLE")
        wait_until(
            "the subscription's worker to stop",
            lambda: (
                not self.b.one(self.b.src, "SELECT active FROM pg_replication_slots WHERE slot_name = %s", (NAT_SLOT,))
            ),
            30,
        )

    def applied(self) -> int:
        """The source LSN the subscription's replication origin has applied up to (commit end)."""
        value = self.b.one(
            self.b.dst,
            "SELECT pg_wal_lsn_diff(s.remote_lsn, '0/0')::bigint "
            "FROM pg_replication_origin_status s JOIN pg_subscription p "
            "ON s.external_id = 'pg_' || p.oid WHERE p.subname = %s",
            (NAT_SUB,),
        )
        return int(value or 0)

    def alive(self) -> None:
        pass

    def drop(self) -> None:
        drop_native(self.b)


def drop_native(b: Bench) -> None:
    if b.one(b.dst, "SELECT count(*) FROM pg_subscription WHERE subname = %s", (NAT_SUB,)):
        b.q(b.dst, f"ALTER SUBSCRIPTION {NAT_SUB} DISABLE")
        b.q(b.dst, f"ALTER SUBSCRIPTION {NAT_SUB} SET (slot_name = NONE)")
        b.q(b.dst, f"DROP SUBSCRIPTION {NAT_SUB}")
    drop_slot(b, NAT_SLOT)


def drop_slot(b: Bench, slot: str) -> None:
    """Drop a slot once no one reads it (a walsender may take a moment to exit)."""
    deadline = time.monotonic() + 30
    while True:
        row = b.q(b.src, "SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", (slot,))
        if not row:
            return
        if row[0][0] is None:
            with contextlib.suppress(Exception):
                b.q(b.src, "SELECT pg_drop_replication_slot(%s)", (slot,))
                return
        elif time.monotonic() > deadline:
            b.q(b.src, "SELECT pg_terminate_backend(%s)", (row[0][0],))
        time.sleep(0.05)


@dataclass
class OurWorker:
    """The engine as core/runner.py runs it: CdcWorker(plan, stop).run() on its own thread."""

    b: Bench
    table: str
    label: str
    stop: threading.Event = field(default_factory=threading.Event)
    started: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    thread: threading.Thread | None = None

    @property
    def pipeline_id(self) -> int:
        return self.b.pipeline_ids[self.table]

    def plan(self) -> CdcPlan:
        return CdcPlan(
            pipeline_id=self.pipeline_id,
            source=self.b.spec(SRC),
            target=self.b.spec(DST),
            tables=[TablePlan("public", self.table, "public", self.table)],
            mode="CDC_ONLY",
            auto_create=False,
            target_table_policy="append",
        )

    def start(self) -> None:
        self.stop, self.started, self.error = threading.Event(), threading.Event(), None
        worker = CdcWorker(self.plan(), self.stop, on_streaming=self.started.set)
        self.thread = threading.Thread(target=self._run, args=(worker,), name=f"cdc-{self.pipeline_id}", daemon=True)
        self.b.workers.append(self)
        self.thread.start()

    def _run(self, worker: CdcWorker) -> None:
        profiler = cProfile.Profile() if self.b.profile else None
        try:
            if profiler:
                profiler.enable()
            worker.run()
        except BaseException as exc:  # noqa: BLE001 - reported by alive()
            self.error = exc
        finally:
            if profiler:
                profiler.disable()
                self.b.profiles.setdefault(self.label, []).append(profiler)

    def alive(self) -> None:
        if self.error is not None:
            raise SystemExit(f"our CDC worker failed: {self.error!r}")
        if self.thread is not None and not self.thread.is_alive() and not self.stop.is_set():
            raise SystemExit("our CDC worker ended on its own")

    def wait_streaming(self) -> None:
        wait_until("our worker to stream", self.started.is_set, 60, self.alive)

    def stream(self) -> None:
        """Start the worker and wait until it streams (it creates its publication and slot first)."""
        self.start()
        self.wait_streaming()

    def prepare_stopped(self) -> None:
        """Start once (creates the publication and the slot, as when a pipeline is started), then stop."""
        self.stream()
        self.halt()

    def resume(self) -> None:
        """Start again: the worker reads its slot from where it stopped."""
        self.start()

    def halt(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(60)
            if self.thread.is_alive():
                raise SystemExit("our CDC worker did not stop within 60 s")
        if self in self.b.workers:
            self.b.workers.remove(self)
        if self.error is not None:
            raise SystemExit(f"our CDC worker failed: {self.error!r}")

    def applied(self) -> int:
        """The position (commit LSN) the target's offsets table holds for this pipeline."""
        value = (
            self.b.one(
                self.b.dst, "SELECT position FROM cdc_studio.offsets WHERE pipeline_id = %s", (self.pipeline_id,)
            )
            if self._offsets_exist()
            else None
        )
        return int(value or 0)

    def _offsets_exist(self) -> bool:
        return bool(self.b.one(self.b.dst, "SELECT to_regclass('cdc_studio.offsets') IS NOT NULL"))

    def drop(self) -> None:
        """Stop the worker, drop its slot and publication (as deleting the pipeline does), forget its offset."""
        self.halt()
        pg_source.drop_slot_and_publication(
            self.b.spec(SRC), pg_source.slot_name(self.pipeline_id), pg_source.publication_name(self.pipeline_id)
        )
        if self._offsets_exist():
            self.b.q(self.b.dst, "DELETE FROM cdc_studio.offsets WHERE pipeline_id = %s", (self.pipeline_id,))


class MonitoringJobs:
    """The app's monitoring jobs on one thread at the app's intervals divided by `speedup`, and the switch of
    the recorder (the engines' sink) between on (as shipped) and off (a no-op)."""

    APP_EVERY_S = {"sample": 10.0, "rollup": 60.0, "run_checks": 30.0, "retry_due": 15.0}  # core.app_state

    def __init__(self, speedup: float) -> None:
        from core.monitoring import channels, health, metrics, recorder

        self.every_s = {name: s / speedup for name, s in self.APP_EVERY_S.items()}
        self.recorder = recorder
        self.record_applied = recorder.record_applied
        self.jobs = {
            "sample": metrics.sample,
            "rollup": metrics.rollup,
            "run_checks": health.run_checks,
            "retry_due": channels.retry_due,
        }
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.runs: dict[str, int] = dict.fromkeys(self.jobs, 0)

    def on(self) -> None:
        self.recorder.record_applied = self.record_applied
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="monitoring-jobs", daemon=True)
        self.thread.start()

    def off(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(30)
        self.recorder.record_applied = lambda *_a, **_k: None

    def _loop(self) -> None:
        due = dict.fromkeys(self.jobs, time.monotonic())
        while not self.stop.wait(0.05):
            now = time.monotonic()
            for name, job in self.jobs.items():
                if now >= due[name]:
                    job()
                    self.runs[name] += 1
                    due[name] = now + self.every_s[name]


def mark_running(b: Bench, running: bool) -> None:
    """The bench pipelines RUNNING (health checks then check them for real) or STOPPED in the app database."""
    from data import db
    from data.models import Pipeline

    with db.session_scope() as session:
        for pid in b.pipeline_ids.values():
            p = session.get(Pipeline, pid)
            if p is not None:
                p.state, p.cdc_status = ("RUNNING", "RUNNING") if running else ("STOPPED", "STOPPED")
                p.slot_name = pg_source.slot_name(pid)
                session.add(p)


# ------------------------------------------------------------------------------------ workloads


Consumer = Native | OurWorker


def wait_applied(consumer: Consumer, lsn: int, rows: int) -> float:
    """The perf_counter time the consumer was first seen to have applied up to `lsn` (the last of `rows` rows)."""
    return wait_until(f"{rows} rows applied", lambda: consumer.applied() >= lsn, max(120.0, rows / 500), consumer.alive)


def one_transaction_live(b: Bench, consumer: Consumer, table: str, rows: int) -> float:
    """Workload A-live: seconds from the COMMIT of one `rows`-row transaction until the target applied it."""
    reset(b, table)
    try:
        consumer.stream()
        lsn, committed = commit_insert(b, table, 1, rows)
        done = wait_applied(consumer, lsn, rows)
    finally:
        consumer.drop()
    verify(b, table, rows)
    return done - committed


def catch_up(b: Bench, consumer: Consumer, table: str, rows: int, generate: Callable[[], int]) -> tuple[float, float]:
    """(catch-up seconds, generation seconds): `generate` writes `rows` rows while the consumer is stopped (its
    slot and publication exist, no one reads them) and returns an LSN at or below the last commit; timed from
    ENABLE / worker start until the target has applied that commit."""
    reset(b, table)
    try:
        consumer.prepare_stopped()
        began = time.perf_counter()
        lsn = generate()
        generated = time.perf_counter() - began
        started = time.perf_counter()
        consumer.resume()
        done = wait_applied(consumer, lsn, rows)
    finally:
        consumer.drop()
    verify(b, table, rows)
    return done - started, generated


def one_transaction_catch_up(b: Bench, consumer: Consumer, table: str, rows: int) -> tuple[float, float]:
    """Workload A-catchup: one `rows`-row transaction committed while stopped (its decoding counts)."""
    return catch_up(b, consumer, table, rows, lambda: commit_insert(b, table, 1, rows)[0])


def single_row_transactions(b: Bench, consumer: Consumer, table: str, rows: int) -> tuple[float, float]:
    """Workload B: `rows` single-row transactions committed while stopped."""

    def generate() -> int:
        b.q(b.src, f"CALL gen_{table}(1, {rows - 1})")
        return commit_insert(b, table, rows, rows)[0]  # the last one tells its commit LSN

    return catch_up(b, consumer, table, rows, generate)


@dataclass
class Latency:
    rows: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    rate: float  # achieved commits per second


def latency(b: Bench, consumer: Consumer, table: str, seconds: float, rate: int) -> Latency:
    """Commit-to-applied latency of paced single-row commits (server clock on both ends)."""
    reset(b, table)
    n = max(1, int(seconds * rate))
    try:
        consumer.stream()
        b.q(b.src, f"CALL gen_{table}(1, {n}, {rate})")
        wait_until(
            f"{n} paced rows applied",
            lambda: b.one(b.dst, f"SELECT count(*) FROM public.{table}") >= n,
            120,
            consumer.alive,
        )
    finally:
        consumer.drop()
    stamped = b.one(b.dst, f"SELECT count(applied_at) FROM public.{table}")
    if stamped != n:
        raise SystemExit(f"{table}: {stamped} of {n} rows have applied_at (trigger did not fire for all)")
    p50, p99, worst = b.q(
        b.dst,
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), "
        "percentile_cont(0.99) WITHIN GROUP (ORDER BY ms), max(ms) FROM "
        "(SELECT extract(epoch FROM applied_at - committed_at) * 1000 AS ms "
        f"FROM public.{table}) t",
    )[0]
    span = b.one(b.src, f"SELECT extract(epoch FROM max(committed_at) - min(committed_at)) FROM public.{table}")
    return Latency(n, float(p50), float(p99), float(worst), (n - 1) / float(span) if span else 0.0)


# ------------------------------------------------------------------------------------ report


# The throughput workloads by --workloads letter, in the order they run: (label, measurement). A measurement
# returns seconds, or for a catch-up (seconds, generation seconds); all three use the NAT_T / OUR_T tables.
RATE_WORKLOADS: dict[str, tuple[str, Callable]] = {
    "A": ("A-live one {n:,}-row transaction", one_transaction_live),
    "C": ("A-catchup one {n:,}-row transaction", one_transaction_catch_up),
    "B": ("B {n:,} single-row transactions", single_row_transactions),
}
LABEL_WIDTH = 38


def rate_line(label: str, rows: int, native_s: float, ours_s: float) -> str:
    return (
        f"  {label:<{LABEL_WIDTH}} native {rows / native_s:>9,.0f} rows/s ({native_s:6.2f} s)   "
        f"ours {rows / ours_s:>9,.0f} rows/s ({ours_s:6.2f} s)   ratio {native_s / ours_s:.2f}"
    )


def lat_line(label: str, lat: Latency) -> str:
    return (
        f"  {label:<{LABEL_WIDTH}} p50 {lat.p50_ms:7.1f} ms   p99 {lat.p99_ms:7.1f} ms   "
        f"max {lat.max_ms:7.1f} ms   ({lat.rows:,} commits at {lat.rate:,.0f}/s)"
    )


def monitoring_off(b: Bench, measure: Callable, letter: str, n: int) -> float:
    """Seconds of one of ours with the recorder a no-op and no monitoring job running."""
    assert b.jobs is not None
    b.jobs.off()
    try:
        seconds = measure(b, OurWorker(b, OUR_T, letter), OUR_T, n)
    finally:
        b.jobs.on()
    return seconds[0] if isinstance(seconds, tuple) else seconds


def run_round(b: Bench, i: int, args: argparse.Namespace) -> dict[str, float | Latency]:
    ours_first = i % 2 == 0
    n = args.rows
    out: dict[str, float | Latency] = {}
    print(f"round {i}{' (ours first)' if ours_first else ''}:", flush=True)

    def both(fn: Callable, nat_table: str, our_table: str, label: str, *extra: object) -> tuple:
        order = [("ours", OurWorker(b, our_table, label), our_table), ("native", Native(b, nat_table), nat_table)]
        if not ours_first:
            order.reverse()
        got = {}
        for who, consumer, table in order:
            got[who] = fn(b, consumer, table, *extra)
        return got["native"], got["ours"]

    for letter, (label, measure) in RATE_WORKLOADS.items():
        if letter not in args.workloads:
            continue
        # --monitoring-overhead: the same workload once more with monitoring off, before or after (alternating)
        off_before = monitoring_off(b, measure, letter, n) if b.jobs is not None and not ours_first else None
        nat, ours = both(measure, NAT_T, OUR_T, letter, n)
        off_after = monitoring_off(b, measure, letter, n) if b.jobs is not None and ours_first else None
        note = ""
        if isinstance(nat, tuple):  # a catch-up: (seconds, generation seconds)
            (nat, nat_gen), (ours, our_gen) = nat, ours
            note = f"   (generated at {n / nat_gen:,.0f} / {n / our_gen:,.0f} rows/s, not counted)"
        out[f"{letter}_native"], out[f"{letter}_ours"] = nat, ours
        print(rate_line(label.format(n=n), n, nat, ours) + note, flush=True)
        if b.jobs is not None:
            out[f"{letter}_off"] = off = off_after if off_after is not None else off_before
            print(
                f"  {'':<{LABEL_WIDTH}} ours, monitoring off {n / off:>9,.0f} rows/s ({off:6.2f} s)   "
                f"on/off {off / ours:.2f}",
                flush=True,
            )
    if "L" in args.workloads and args.latency_seconds > 0:
        out["L_native"], out["L_ours"] = both(latency, NAT_L, OUR_L, "L", args.latency_seconds, args.rate)
        print(lat_line("L native subscription", out["L_native"]), flush=True)
        print(lat_line("L ours", out["L_ours"]), flush=True)
    return out


def summary(rounds: list[dict], args: argparse.Namespace, server: str) -> None:
    n = args.rows

    def med(key: str) -> float:
        return statistics.median(r[key] for r in rounds)

    print()
    print(
        f"median of {len(rounds)} round(s); {server}; source and target are two databases of ONE cluster "
        "on this machine (they share its cores);"
    )
    print(
        "fsync=off; autovacuum=off; synchronous_commit=off except in the sessions that commit the source workload (on)"
    )
    head = f"{'workload':<{LABEL_WIDTH}} {'native rows/s':>14} {'ours rows/s':>12} {'ratio':>6}  goal"
    print(head)
    print("-" * len(head) + "-" * 8)
    for key, (label, _) in RATE_WORKLOADS.items():
        if f"{key}_ours" not in rounds[0]:
            continue
        nat, ours = med(f"{key}_native"), med(f"{key}_ours")
        ratio = nat / ours
        per_round = ", ".join(f"{r[f'{key}_native'] / r[f'{key}_ours']:.2f}" for r in rounds)
        print(
            f"{label.format(n=n):<{LABEL_WIDTH}} {n / nat:>14,.0f} {n / ours:>12,.0f} {ratio:>6.2f}  >= 1.0 "
            f"{'met' if ratio >= 1.0 else 'NOT met'}   (ratio per round: {per_round})"
        )
    if any(f"{key}_off" in rounds[0] for key in RATE_WORKLOADS):
        print(f"monitoring and health checks on / off (ours; jobs at {args.jobs_speedup:g}x the app's frequency):")
        for key, (label, _) in RATE_WORKLOADS.items():
            if f"{key}_off" not in rounds[0]:
                continue
            ratios = [r[f"{key}_off"] / r[f"{key}_ours"] for r in rounds]
            ratio = statistics.median(ratios)
            print(
                f"  {label.format(n=n):<{LABEL_WIDTH}} on/off {ratio:.2f}  goal >= 0.95 "
                f"{'met' if ratio >= 0.95 else 'NOT met'}   (per round: {', '.join(f'{x:.2f}' for x in ratios)}; "
                f"spread {min(ratios):.2f}..{max(ratios):.2f})"
            )
    if "L_ours" in rounds[0]:
        print(f"commit-to-applied latency, {args.rate:,} single-row commits/s for {args.latency_seconds:g} s:")
        for who in ("native", "ours"):
            lats = [r[f"L_{who}"] for r in rounds]
            p50 = statistics.median(x.p50_ms for x in lats)
            p99 = statistics.median(x.p99_ms for x in lats)
            per_round = ", ".join(f"{x.p50_ms:.1f}/{x.p99_ms:.1f}" for x in lats)
            goal = f"   (p50/p99 per round: {per_round})"
            if who == "ours":
                goal = (
                    f"  goal p50 < 50 ms {'met' if p50 < 50 else 'NOT met'}, "
                    f"p99 < 250 ms {'met' if p99 < 250 else 'NOT met'}" + goal
                )
            print(f"  {who:<8} p50 {p50:7.1f} ms   p99 {p99:7.1f} ms{goal}")


def print_profiles(b: Bench) -> None:
    names = {
        "A": "A-live one transaction",
        "C": "A-catchup one transaction",
        "B": "B single-row transactions",
        "L": "L latency",
    }
    for label, profiles in b.profiles.items():
        stats = pstats.Stats(profiles[0], stream=io.StringIO())
        for p in profiles[1:]:
            stats.add(p)
        for order in ("cumulative", "tottime"):
            out = io.StringIO()
            stats.stream = out
            stats.sort_stats(order).print_stats(22)
            print(f"\n===== profile of our worker thread, {names[label]}, by {order} =====")
            print("\n".join(line for line in out.getvalue().splitlines() if line.strip()))


def cleanup(b: Bench) -> None:
    """Stop our workers; drop every subscription, slot and publication the run made."""
    for w in list(b.workers):
        w.stop.set()
    for w in list(b.workers):
        if w.thread is not None:
            w.thread.join(30)
    with contextlib.suppress(Exception):
        drop_native(b)
    for table in (OUR_T, OUR_L):
        if table in b.pipeline_ids:
            with contextlib.suppress(Exception):
                pid = b.pipeline_ids[table]
                pg_source.drop_slot_and_publication(
                    b.spec(SRC), pg_source.slot_name(pid), pg_source.publication_name(pid)
                )
    with contextlib.suppress(Exception):
        for (slot,) in b.q(b.src, "SELECT slot_name FROM pg_replication_slots"):
            drop_slot(b, slot)
        for (pub,) in b.q(b.src, "SELECT pubname FROM pg_publication"):
            b.q(b.src, f'DROP PUBLICATION "{pub}"')
    left = b.q(b.src, "SELECT (SELECT count(*) FROM pg_replication_slots), (SELECT count(*) FROM pg_publication)")[0]
    left_subs = b.one(b.dst, "SELECT count(*) FROM pg_subscription")
    print(f"cleanup: {left[0]} slots, {left[1]} publications, {left_subs} subscriptions left")
    b.src.close()
    b.dst.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000, help="rows of workloads A-live, A-catchup and B")
    parser.add_argument("--rounds", type=int, default=3, help="measure everything this many times (medians)")
    parser.add_argument("--latency-seconds", type=float, default=10, help="length of the paced run (0: skip)")
    parser.add_argument("--rate", type=int, default=1000, help="single-row commits per second in the paced run")
    parser.add_argument("--profile", action="store_true", help="cProfile our worker thread (slows it down)")
    parser.add_argument(
        "--workloads", default="ACBL", help="which to run: A (A-live), C (A-catchup), B, L (default all: ACBL)"
    )
    parser.add_argument(
        "--without-monitoring",
        action="store_true",
        help="DIAGNOSTIC, not the app: make core.monitoring.recorder.record_applied a no-op in this process "
        "to show what recording batches in the app database costs",
    )
    parser.add_argument(
        "--monitoring-overhead",
        action="store_true",
        help="also measure ours with monitoring off (and on with the app's monitoring jobs running): on/off ratio",
    )
    parser.add_argument(
        "--jobs-speedup",
        type=float,
        default=1.0,
        help="with --monitoring-overhead: run the monitoring jobs this many times more often than the app (1)",
    )
    args = parser.parse_args()
    args.workloads = args.workloads.upper()
    if set(args.workloads) - set(RATE_WORKLOADS) - {"L"}:
        parser.error(f"--workloads takes letters of ACBL, not {args.workloads!r}")
    if args.without_monitoring:
        from core.monitoring import recorder

        recorder.record_applied = lambda *_a, **_k: None
        print("DIAGNOSTIC RUN: core.monitoring.recorder.record_applied is a no-op (ours is NOT the app as shipped)")
    if args.rows < 2:
        parser.error("--rows must be at least 2")
    began = time.perf_counter()
    app_dir = Path(tempfile.mkdtemp(prefix="cdcstudio-bench-app-"))
    pg = PgCluster.start(extra_conf=CLUSTER_CONF)
    b = None
    try:
        pg.create_database(SRC)
        pg.create_database(DST)
        b = Bench(pg, app_dir, args.profile)
        server = b.one(b.src, "SELECT 'PostgreSQL ' || current_setting('server_version')")
        setup(b)
        if args.monitoring_overhead:
            mark_running(b, True)
            b.jobs = MonitoringJobs(args.jobs_speedup)
            b.jobs.on()
        rounds = [run_round(b, i, args) for i in range(1, args.rounds + 1)]
        if b.jobs is not None:
            b.jobs.off()
            mark_running(b, False)
            print(f"monitoring jobs ran: {b.jobs.runs}")
        summary(rounds, args, server)
        if args.profile:
            print("\n(timings above were taken under cProfile: ours is slower than without it)")
            print_profiles(b)
    finally:
        try:
            if b is not None:
                cleanup(b)
        finally:
            pg.stop()
            shutil.rmtree(app_dir, ignore_errors=True)
            print(f"total time {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
