"""The transaction batcher: a ChangeSource's transactions grouped into batches for the apply loop.

A transaction's events are kept until it commits; several small ones go into one batch, handed
over when it holds BATCH_EVENTS changes, when its oldest transaction is BATCH_SECONDS old, or when
the source went quiet. Parts: the events of one large transaction (whole, or streamed while in
progress) may be applied ahead in the apply thread's open target transaction, which then commits
with that transaction. When another transaction commits first (streamed ones interleave with
others), or a schema change needs the target, the parts are rolled back and the events applied
again later; a streamed transaction whose parts were rolled back is then applied whole at its
commit. Sizes count changes: an InsertRun counts its rows.

The apply loop is anything with ApplyThread's `submit`, `applied` and `wait_idle`; the batcher
confirms to the source what the apply loop reports as committed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from core.cdc.events import ChangeEvent, InsertRun, RawInsert, row_count
from core.cdc.pgoutput import RelationChanged, StreamAbort, StreamStart, StreamStop, TxnEnd, settle
from core.cdc.source import ChangeSource
from core.cdc.tableload import TableLoad, TableLoads

BATCH_EVENTS = 20_000  # apply at least this often (events), whatever the time
BATCH_SECONDS = 0.05  # ... or when the oldest unapplied transaction is this old
PART_EVENTS = 10_000  # a transaction larger than a batch is applied in parts of this many events as it arrives
POLL_S = 0.2

_CHANGES = (ChangeEvent, RawInsert, InsertRun)  # what a source yields for row changes


class ApplyLoop(Protocol):
    """What the batcher hands batches to (core.cdc.apply_loop.ApplyThread)."""

    def submit(self, batch: list | None, last: TxnEnd | Replayed | None, wait: Callable[[], bool]) -> bool: ...

    def applied(self, timeout_s: float = 0.0) -> list[TxnEnd]: ...

    def wait_idle(self, confirm: Callable[[list[TxnEnd]], None], wait: Callable[[], bool]) -> bool: ...


class Open:
    """A transaction being read: its changes (an InsertRun counts as its rows) and how many of them
    (`sent` items, `sent_rows` changes) were applied ahead as parts."""

    __slots__ = ("events", "rows", "sent", "sent_rows")

    def __init__(self) -> None:
        self.events: list[ChangeEvent] = []
        self.rows = 0
        self.sent = 0
        self.sent_rows = 0


class Replayed:
    """An apply job of held changes of a table loaded while streaming (`last`: the load's final one)."""

    __slots__ = ("last", "load")

    def __init__(self, load: TableLoad, last: bool) -> None:
        self.load = load
        self.last = last


class TxnBatcher:
    """Reads a source's items into batches of whole transactions and hands them to the apply loop.

    `skip` (tables set aside) and `since` (reloaded tables: their changes of commits before the
    reload point are in the copy) are shared with the pipeline's TableSet and may change while it
    runs. `on_relation` is called with a changed relation once everything before it is applied
    and the parts are undone (the target is free for DDL); `first_seen` turns a relation's first
    description in this stream into such a change when it no longer fits the target (the source was
    altered after the stream began but before the table's first change in it), else None;
    `tick(now)` after every poll. `loads`: tables loading while the stream goes on (core.cdc.tableload): their
    changes are held from the moment a load starts, and handed to the apply loop as `Replayed` jobs when its copy
    is done; `on_hold(load)` runs as a load starts holding, `on_loaded(load)` when its copy failed.
    """

    def __init__(
        self,
        source: ChangeSource,
        applying: ApplyLoop,
        stop: threading.Event,
        *,
        skip: set[tuple[str, str]] | None = None,
        since: dict[tuple[str, str], int] | None = None,
        on_relation: Callable[[RelationChanged], None] = lambda _change: None,
        first_seen: Callable[[RelationChanged], RelationChanged | None] = lambda _change: None,
        tick: Callable[[float], None] = lambda _now: None,
        loads: TableLoads | None = None,
        on_hold: Callable[[TableLoad], None] = lambda _load: None,
        on_load_failed: Callable[[TableLoad], None] = lambda _load: None,
    ) -> None:
        self.source = source
        self.applying = applying
        self.stop = stop
        self.skip = skip if skip is not None else set()
        self.since = since if since is not None else {}
        self.on_relation = on_relation
        self.first_seen = first_seen
        self.tick = tick
        self.loads = loads
        self.held = loads.held if loads is not None else {}
        self.on_hold = on_hold
        self.on_load_failed = on_load_failed
        self.txn = Open()  # the (not streamed) transaction being read
        self.streams: dict[int, Open] = {}  # streamed transactions in progress, by xid
        self.unparted: set[int] = set()  # streamed transactions whose parts were rolled back
        self.into = self.txn  # where the next change goes
        self.parts: Open | None = None  # the transaction whose first `sent` items are applied as parts
        self.batch: list[ChangeEvent] = []
        self.batch_rows = 0
        self.last: TxnEnd | None = None  # the end of the newest transaction in `batch`
        self.submitted = source.confirmed_lsn  # end LSN of the last transaction handed to the apply loop
        self.batch_since = 0.0

    # ------------------------------------------------------------------ the loop

    def run(self) -> None:
        """Poll, batch and hand over until `stop` is set (or the apply loop fails: raised here)."""
        while not self.stop.is_set():
            self.confirm(self.applying.applied())
            items = self.source.poll(timeout_s=POLL_S)
            if not self.feed(items) or not self.send_part() or not self.flush(bool(items)):
                return
            if self.loads is not None and self.loads.busy() and not self.serve_loads():
                return
            self.tick(time.monotonic())

    def feed(self, items: list[Any]) -> bool:
        """Take one poll's items (False: stopped while waiting for the apply loop)."""
        skip, into = self.skip, self.into
        for item in items:
            cls = type(item)
            if skip and cls in _CHANGES and (item.schema, item.table) in skip:
                continue
            if cls is InsertRun:
                into.events.append(item)
                into.rows += len(item.messages)
            elif cls is ChangeEvent or cls is RawInsert:
                into.events.append(item)
                into.rows += 1
            else:
                self.into = into
                if not self._control(item):
                    return False
                into = self.into
        self.into = into
        return True

    def send_part(self) -> bool:
        """Apply ahead the unsent events of a large transaction once PART_EVENTS of them are read."""
        grow = self.part_candidate()
        if grow is None or grow.rows - grow.sent_rows < PART_EVENTS:
            return True
        if not self.hand_over():
            return False
        if not self.applying.submit(grow.events[grow.sent :], None, self.wait):
            return False
        self.parts, grow.sent, grow.sent_rows = grow, len(grow.events), grow.rows
        return True

    def flush(self, busy: bool) -> bool:
        """Hand the batch over when it is due: full, old enough, or the source went quiet (`busy` False).

        While catching up (a poll stopped at its message limit) batches grow to BATCH_EVENTS.
        """
        last = self.last
        if last is None:
            return True
        young = not getattr(self.source, "caught_up", True) or time.monotonic() - self.batch_since < BATCH_SECONDS
        due = self.batch_rows >= BATCH_EVENTS or (self.batch and not young) or not busy
        if due and (self.batch or last.end_lsn > self.submitted):
            return self.hand_over()
        return True

    # ------------------------------------------------------------------ control items

    def _control(self, item: Any) -> bool:
        cls = type(item)
        if cls is TxnEnd:
            return self._txn_end(item)
        if cls is StreamStart:
            self.into = self.streams.get(item.xid) or self.streams.setdefault(item.xid, Open())
        elif cls is StreamStop:
            self.into = self.txn
        elif cls is StreamAbort:
            return self._stream_abort(item)
        elif cls is RelationChanged:
            change = item if item.previous is not None else self.first_seen(item)
            if change is None:  # first described and fits the target as it is
                return True
            # Everything before the change applied, the parts' open target transaction (it would block
            # the DDL) undone, then the target fitted.
            if not self.hand_over() or not self.undo_parts() or not self.applying.wait_idle(self.confirm, self.wait):
                return False
            self.on_relation(change)
        return True

    def _txn_end(self, item: TxnEnd) -> bool:
        if item.streamed:
            ended = self.streams.pop(item.xid, None) or Open()  # type: ignore[arg-type]
            self.unparted.discard(item.xid)
            settle(ended.events, item)
        else:
            ended, self.txn = self.txn, Open()
            self.into = self.txn
        parts = self.parts
        if parts is not None and parts is not ended and not self.undo_parts():
            return False
        if self.since:
            ended.events = self.after_since(ended.events, item.commit_lsn)
        if self.held:
            ended.events = self.hold_back(ended.events, item.commit_lsn)
        if not self.batch:
            self.batch_since = time.monotonic()
        if self.parts is ended:  # the parts commit with the rest of their transaction
            self.batch.extend(ended.events[ended.sent :])
            self.batch_rows += ended.rows - ended.sent_rows
            self.parts = None
        else:
            self.batch.extend(ended.events)
            self.batch_rows += ended.rows
        self.last = item
        return True

    def _stream_abort(self, item: StreamAbort) -> bool:
        aborted = self.streams.get(item.xid)
        if aborted is None:
            return True
        if self.parts is aborted and not self.undo_parts():
            return False
        if item.subxid == item.xid:
            del self.streams[item.xid]
            self.unparted.discard(item.xid)
        else:
            aborted.events = [e for e in aborted.events if e.xid != item.subxid]
            aborted.rows = row_count(aborted.events)
        return True

    # ------------------------------------------------------------------ hand-over

    def confirm(self, done: list[TxnEnd]) -> None:
        """Tell the source the transactions the apply loop committed."""
        for end in done:
            self.source.confirm(end.end_lsn)

    def wait(self) -> bool:
        """While the apply loop is busy: keep the session alive, confirm, honour stop."""
        self.source.keepalive()
        self.confirm(self.applying.applied())
        return not self.stop.is_set()

    def hand_over(self) -> bool:
        """Submit the complete transactions read so far (rows and position committed together)."""
        last = self.last
        if last is not None:
            if not self.applying.submit(self.batch, last, self.wait):
                return False
            self.submitted, self.batch, self.batch_rows, self.last = last.end_lsn, [], 0, None
        return True

    def undo_parts(self) -> bool:
        """Roll back the applied parts (their events stay here, to be applied again)."""
        parts = self.parts
        if parts is None:
            return True
        self.unparted.update(xid for xid, open_ in self.streams.items() if open_ is parts)
        if not self.applying.submit(None, None, self.wait):
            return False
        parts.sent = parts.sent_rows = 0
        self.parts = None
        return True

    def after_since(self, events: list, commit_lsn: int) -> list:
        """A transaction's changes without those of reloaded tables that their copy already holds."""
        since = self.since
        kept = [e for e in events if commit_lsn >= since.get((e.schema, e.table), 0)]
        if self.stop.is_set() or all(commit_lsn >= lsn for lsn in since.values()):
            since.clear()  # the source is past every reload point: nothing more to filter
        return kept

    def quiesce(self) -> bool:
        """Everything read so far applied and confirmed, nothing applied ahead: the target is free for DDL
        (False: stopped while waiting)."""
        return self.hand_over() and self.undo_parts() and self.applying.wait_idle(self.confirm, self.wait)

    def hold_back(self, events: list, commit_lsn: int) -> list:
        """A transaction's changes without those of tables loading now (their Holdback keeps them)."""
        held = self.held
        kept = []
        by_table: dict[tuple[str, str], list] = {}
        for e in events:
            key = (e.schema, e.table)
            if key in held:
                by_table.setdefault(key, []).append(e)
            else:
                kept.append(e)
        for key, table_events in by_table.items():
            held[key].holdback.add(commit_lsn, table_events)
        return kept

    def serve_loads(self) -> bool:
        """Start the loads asked for (holding first, then the copy); hand over the held changes of the copies
        that are done, after everything read before them (False: stopped while waiting for the apply loop)."""
        loads = self.loads
        assert loads is not None
        for plan, new in loads.asked():
            # Parts of a transaction applied ahead would put its changes of the table before the copy.
            if not self.undo_parts():
                return False
            load = loads.hold(plan, new)
            if load is not None:
                self.on_hold(load)
                loads.launch(load)
        for load in loads.finished():
            if load.error is not None or load.consistent_point is None:
                loads.release(load)
                self.on_load_failed(load)
                continue
            if not self.hand_over():
                return False
            chunk: list = []
            for events in load.holdback.since(load.consistent_point):
                chunk.extend(events)
                if len(chunk) >= PART_EVENTS:
                    if not self.applying.submit(chunk, Replayed(load, last=False), self.wait):
                        return False
                    chunk = []
            if not self.applying.submit(chunk, Replayed(load, last=True), self.wait):
                return False
            loads.release(load)
        return True

    def part_candidate(self) -> Open | None:
        """The transaction whose events may be applied ahead in parts now, if any: a large one being read
        whole, or the only streamed one in progress (several interleave: one would undo the others' parts)."""
        if self.since or self.held:  # a reloaded table's changes are filtered or held at their commit: no parts
            return None
        txn, parts = self.txn, self.parts
        if txn.rows >= BATCH_EVENTS and (parts is None or parts is txn):
            return txn
        if len(self.streams) == 1:
            xid, open_ = next(iter(self.streams.items()))
            if xid not in self.unparted and (parts is None or parts is open_):
                return open_
        return None
