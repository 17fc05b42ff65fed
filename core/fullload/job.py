"""One table's run: its progress record, what to cancel, and the counters progress is estimated from."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from core.fullload.model import CANCELLED, COMPLETED, FAILED, RUNNING, Cancelled, TablePlan, TableProgress, TableSpec

FINAL = (COMPLETED, FAILED, CANCELLED)
ESTIMATE_MARGIN = 0.98  # progress stops short of an estimated total: the estimate may be a little high

log = logging.getLogger(__name__)


class Job:
    """Progress and cancellation of one table; counters are written by its threads, read by the runner."""

    def __init__(self, plan: TablePlan, cancel: threading.Event, reporter: Reporter) -> None:
        self.plan = plan
        self.spec: TableSpec | None = None
        self.progress = TableProgress(source=plan.source, target=plan.target, status="PENDING")
        self.cancel = cancel
        self.reporter = reporter
        self.bytes_moved: Callable[[], int] = lambda: 0
        self.bytes_per_row = 0.0
        self.table_bytes = 0
        self.rows_moved = 0
        self.expected_exact = False
        self._aborts: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    @contextmanager
    def guard(self, fn: Callable[[], None]) -> Iterator[None]:
        """While inside, `abort()` calls `fn` (conn.cancel); it runs at once if the load is already stopping.

        Leaving unregisters under the lock, so a connection is never cancelled while it is being closed.
        """
        with self._lock:
            self._aborts.append(fn)
        if self.cancel.is_set():
            _quietly(fn)
        try:
            yield
        finally:
            with self._lock:
                self._aborts.remove(fn)

    def abort(self) -> None:
        """Interrupt whatever this table is running (called from the controlling thread)."""
        with self._lock:
            for fn in self._aborts:
                _quietly(fn)

    def check(self) -> None:
        """Raise Cancelled when the load is stopping."""
        if self.cancel.is_set():
            raise Cancelled()

    def expect(self, rows: int, exact: bool) -> None:
        """Set rows_expected: an exact count, or a catalog estimate."""
        self.expected_exact = exact
        self.update(rows_expected=rows)

    def estimate(self) -> int:
        """Rows copied so far as far as known: rows handed over, or bytes moved over bytes per row.

        Never above rows_expected, and with a margin below an estimated rows_expected, so the
        exact count reported at the end is not smaller than what progress already showed.
        """
        rows = self.rows_moved
        if not rows and self.bytes_per_row > 0:
            rows = int(self.bytes_moved() / self.bytes_per_row)
        expected = self.progress.rows_expected
        return min(rows, expected if self.expected_exact else int(expected * ESTIMATE_MARGIN))

    def update(self, **changes: object) -> None:
        """Change the progress record and tell the listener."""
        self.reporter.emit(self, changes)


def _quietly(fn: Callable[[], None]) -> None:
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - a failed cancel request must not stop the others
        log.debug("cancel request failed: %s", exc)


class Reporter:
    """Serializes progress callbacks so every listener sees each table's numbers only grow."""

    def __init__(self, on_progress: Callable[[TableProgress], None]) -> None:
        self._on_progress = on_progress
        self._lock = threading.Lock()

    def emit(self, job: Job, changes: dict[str, object], final: bool = False) -> None:
        """Apply `changes` to the table's progress and hand the listener a copy.

        `final` changes are dropped when the table already ended (COMPLETED, FAILED or CANCELLED).
        """
        with self._lock:
            if final and job.progress.status in FINAL:
                return
            self._apply(job, changes)

    def tick(self, job: Job) -> None:
        """A progress update of a running table from its counters (never backwards)."""
        with self._lock:
            if job.progress.status == RUNNING:
                rows = max(job.progress.rows_copied, job.estimate())
                self._apply(job, {"rows_copied": rows})

    def _apply(self, job: Job, changes: dict[str, object]) -> None:
        p = job.progress
        for key, value in changes.items():
            setattr(p, key, value)
        if p.started_at is not None:
            elapsed = ((p.finished_at or datetime.now(UTC)) - p.started_at).total_seconds()
            p.rows_per_second = round(p.rows_copied / elapsed, 1) if elapsed > 0 else 0.0
        try:
            self._on_progress(dataclasses.replace(p))
        except Exception:  # noqa: BLE001 - a listener's bug must not stop the load
            log.exception("progress listener failed")
