"""What engines report after each applied batch, and to whom: one injected ChangeSink.

Every engine (embedded PostgreSQL and SQL Server, Kafka Connect) hands each batch it committed on
the target to its sink, from its apply thread, right after the commit. The monitoring recorder
(core.monitoring) is the default sink; tests pass their own, metrics and alerts attach here.
A sink must return quickly and never raise: it runs on the engine's hot path.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from core.cdc.events import expand


@dataclass(slots=True)
class AppliedBatch:
    """One batch committed on the target.

    `events` are ChangeEvents and ChangeRuns (core.cdc.events: a run counts as its rows; use
    `expand`/`expand_tail` for rows), in commit order. `counts` ((schema, table, op) -> n) is
    what the applier counted, when it did (else the sink counts `events`). `position` is the
    source position committed with the rows (the commit LSN; None for Kafka, whose positions
    are per partition), `seconds` the time the target took.
    """

    pipeline_id: int
    events: list
    applied_at: datetime
    counts: Counter | None = None
    position: int | None = None
    seconds: float = 0.0
    commit_time: datetime | None = field(default=None)  # of the newest source transaction in it


class ChangeSink(Protocol):
    """Receives every applied batch of the engines it is given to."""

    def applied(self, batch: AppliedBatch) -> None:
        """Take one committed batch (quickly: this runs on the engine's apply thread)."""
        ...


class ListSink:
    """A sink that keeps every batch (for tests and tools that look at what an engine applied)."""

    def __init__(self) -> None:
        self.batches: list[AppliedBatch] = []

    def applied(self, batch: AppliedBatch) -> None:
        """Keep the batch."""
        self.batches.append(batch)

    @property
    def events(self) -> list:
        """Every applied change so far, one ChangeEvent each (runs expanded), in order."""
        return [e for b in self.batches for e in expand(b.events)]
