"""One table loaded (again, or for the first time) while the pipeline's stream goes on for the others.

The watermark of a temporary slot: before the slot is made, the batcher starts holding the table's changes
(every transaction it ends from then on gives its changes of that table to the table's Holdback instead of
the batch). The slot's exported snapshot is then copied into the target table (emptied first), and the slot's
consistent point C splits the held changes exactly: a commit before C is in the snapshot, one at or after C
is not. Once the copy is done, the batcher hands the held changes of commits at or after C to the apply
thread, in order and after everything it submitted before, and stops holding: the table's next changes go
into batches as usual. No change is lost (each commit of the table is either in the snapshot or held) and
none is applied twice (the held ones before C are dropped).

The held changes are older than the stream's stored position, so they are applied without its filter
(PgApplier.apply_unfiltered); a crash before the table is marked COMPLETED leaves it RUNNING, and the next
start loads it again from a new snapshot (core.plans.cdc_plan), so exactly once holds across crashes.
Held changes stay in memory up to HOLD_IN_MEMORY; beyond, they are spilled to a temporary file.
"""

from __future__ import annotations

import logging
import pickle
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import IO, Any

from core.cdc import pg_source
from core.cdc.events import ChangeEvent, expand
from core.fullload import LoadOptions, TablePlan, TableProgress, run_full_load

log = logging.getLogger(__name__)

HOLD_IN_MEMORY = 50_000  # held changes kept in memory per table; more go to a temporary file
SourceTable = tuple[str, str]


def _plain(event: ChangeEvent) -> ChangeEvent:
    """A change as a plain ChangeEvent (a RawInsert decodes its message), to be pickled."""
    if type(event) is ChangeEvent:
        return event
    return ChangeEvent(
        event.op,
        event.schema,
        event.table,
        event.key,
        event.before,
        event.after,
        event.position,
        event.commit_time,
        event.xid,
        event.unchanged,
    )


class Holdback:
    """The changes of one table held while it loads, with the commit LSN of their transaction."""

    def __init__(self, in_memory: int = HOLD_IN_MEMORY) -> None:
        self.in_memory = in_memory
        self._held: list[tuple[int, list[Any]]] = []
        self._held_rows = 0
        self._file: IO[bytes] | None = None
        self.rows = 0  # all held changes, in memory and spilled

    def add(self, commit_lsn: int, events: list[Any]) -> None:
        if not events:
            return
        items = list(expand(events))
        self._held.append((commit_lsn, items))
        self._held_rows += len(items)
        self.rows += len(items)
        if self._held_rows >= self.in_memory:
            self._spill()

    def _spill(self) -> None:
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="cdc_studio_hold_")
        for commit_lsn, items in self._held:
            pickle.dump((commit_lsn, [_plain(e) for e in items]), self._file, protocol=pickle.HIGHEST_PROTOCOL)
        self._held, self._held_rows = [], 0

    def since(self, consistent_point: int) -> Iterator[list[ChangeEvent]]:
        """The held changes of commits at or after `consistent_point`, a transaction at a time, in order."""
        if self._file is not None:
            self._file.flush()
            self._file.seek(0)
            while True:
                try:
                    commit_lsn, items = pickle.load(self._file)  # noqa: S301 - our own file, written above
                except EOFError:
                    break
                if commit_lsn >= consistent_point:
                    yield items
        for commit_lsn, items in self._held:
            if commit_lsn >= consistent_point:
                yield items

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._held, self._held_rows = [], 0


@dataclass
class TableLoad:
    """One table's load while streaming: its holdback, the copy on its own thread, and how the copy ended."""

    source: SourceTable
    plan: TablePlan
    new: bool = False  # a table the pipeline did not stream before (propagate_fully)
    holdback: Holdback = field(default_factory=Holdback)
    done: threading.Event = field(default_factory=threading.Event)
    consistent_point: int | None = None
    rows: int = 0
    error: str | None = None
    thread: threading.Thread | None = None

    @property
    def label(self) -> str:
        return f"{self.source[0]}.{self.source[1]}"


class TableLoads:
    """The pipeline's tables loading while it streams. `held` is shared with the batcher (its keys are the
    tables whose changes are held); requests come from any thread, the rest runs on the worker's thread."""

    def __init__(
        self,
        plan: Any,  # core.plans.CdcPlan
        slot: str,
        stop: threading.Event,
        on_progress: Callable[[TableProgress], None],
    ) -> None:
        self.plan = plan
        self.slot = slot
        self.stop = stop
        self.on_progress = on_progress
        self.held: dict[SourceTable, TableLoad] = {}
        self._asked: list[tuple[TablePlan, bool]] = []
        self._lock = threading.Lock()
        self._count = 0

    def ask(self, plan: TablePlan, new: bool = False) -> None:
        """Load `plan`'s table while streaming (the worker's batcher starts it at its next round)."""
        with self._lock:
            self._asked.append((plan, new))

    def asked(self) -> list[tuple[TablePlan, bool]]:
        with self._lock:
            asked, self._asked = self._asked, []
        return asked

    def busy(self) -> bool:
        """Whether a table is held or a load is asked for."""
        return bool(self.held or self._asked)

    def hold(self, plan: TablePlan, new: bool) -> TableLoad | None:
        """Start holding the table's changes (before its slot exists); None when it is loading already."""
        source = (plan.source_schema, plan.source_table)
        if source in self.held:
            return None
        load = TableLoad(source, plan, new)
        self.held[source] = load
        return load

    def launch(self, load: TableLoad) -> None:
        """Copy the table under a new temporary slot's snapshot, on its own thread."""
        self._count += 1
        name = f"{self.slot}_load{self._count % 100}"
        load.thread = threading.Thread(
            target=self._copy, args=(load, name), name=f"cdc-load-{self.plan.pipeline_id}-{load.label}", daemon=True
        )
        load.thread.start()

    def finished(self) -> list[TableLoad]:
        """The loads whose copy has ended (held still: the caller releases them)."""
        return [load for load in self.held.values() if load.done.is_set()]

    def release(self, load: TableLoad) -> None:
        self.held.pop(load.source, None)
        load.holdback.close()

    def close(self) -> None:
        """The stream ends: wait briefly for the copies (they see `stop`), drop what is held."""
        for load in list(self.held.values()):
            if load.thread is not None:
                load.thread.join(timeout=30)
            self.release(load)

    def _copy(self, load: TableLoad, slot: str) -> None:
        options = LoadOptions(
            auto_create=self.plan.auto_create,
            target_table_policy="truncate",
            schema_drift=self.plan.schema_drift,
        )
        try:
            with pg_source.create_slot_with_snapshot(self.plan.source, slot, temporary=True) as handle:
                result = run_full_load(
                    self.plan.source,
                    self.plan.target,
                    [load.plan],
                    replace(options, snapshot_id=handle.snapshot_name),
                    self.on_progress,
                    self.stop,
                )
            table = result.tables[0] if result.tables else None
            if result.status == "COMPLETED":
                load.consistent_point = handle.consistent_point
                load.rows = table.rows_copied if table is not None else 0
            else:
                load.error = (table.error if table is not None else None) or f"the load ended {result.status}"
        except Exception as exc:  # noqa: BLE001 - the table's failure is reported on the table
            log.warning("pipeline %s: loading %s while streaming failed: %s", self.plan.pipeline_id, load.label, exc)
            load.error = str(exc) or type(exc).__name__
        finally:
            load.done.set()
