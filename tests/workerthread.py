"""A CDC worker run in a thread as core/runner.py runs it, for tests that drive an engine directly."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from core.cdc.engine import CdcWorker
from core.cdc.events import expand
from core.cdc.sink import AppliedBatch, ChangeSink
from core.plans import CdcPlan


class Recorded(list):
    """A ChangeSink that keeps every applied change, one ChangeEvent each (runs expanded), in order."""

    def applied(self, batch: AppliedBatch) -> None:
        self.extend(expand(batch.events))


@dataclass
class Run:
    worker: Any  # a CdcWorker or a KafkaCdcWorker
    failures: list[BaseException]


@contextmanager
def running(
    plan: CdcPlan, worker_class: type = CdcWorker, timeout_s: float = 30, sink: ChangeSink | None = None
) -> Iterator[Run]:
    """The worker in a thread; yields once it streams, stops it on the way out; its failures fail the test.

    `sink` receives what it applied (default: the monitoring recorder, as in the app).
    """
    stop, streaming = threading.Event(), threading.Event()
    worker = worker_class(plan, stop, on_streaming=streaming.set, sink=sink)
    failures: list[BaseException] = []

    def run() -> None:
        try:
            worker.run()
        except BaseException as exc:  # surfaced by the tests
            failures.append(exc)
            streaming.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        assert streaming.wait(timeout_s), "the worker never started streaming"
        assert not failures, failures
        yield Run(worker, failures)
    finally:
        stop.set()
        thread.join(timeout_s)
    assert not thread.is_alive()
    assert not failures, failures


def wait_for(run: Run, condition: Callable[[], bool], timeout_s: float = 20, every_s: float = 0.05) -> None:
    """Poll `condition` until true; a worker failure or the timeout fails the test."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert not run.failures, run.failures
        assert time.monotonic() < deadline, "timed out"
        time.sleep(every_s)
