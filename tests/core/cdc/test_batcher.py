"""The transaction batcher without a database: a scripted ChangeSource and a recording apply loop."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime

from core.cdc import batcher
from core.cdc.apply_loop import ApplyThread
from core.cdc.batcher import TxnBatcher
from core.cdc.events import ChangeEvent
from core.cdc.pgoutput import (
    UNCOMMITTED,
    Column,
    Relation,
    RelationChanged,
    StreamAbort,
    StreamStart,
    StreamStop,
    TxnEnd,
)

T = datetime(2024, 1, 1, tzinfo=UTC)


def relation() -> Relation:
    return Relation(1, "public", "t", "d", (Column("id", 23, -1, True),))


def ev(n: int, table: str = "t", position: int = 0, xid: int | None = None, op: str = "update") -> ChangeEvent:
    return ChangeEvent(op, "public", table, {"id": str(n)}, None, {"id": str(n)}, position, T, xid)


def end(lsn: int, xid: int | None = None, streamed: bool = False) -> TxnEnd:
    return TxnEnd(xid, lsn, lsn + 1, T, streamed)


def txn(lsn: int, *events: ChangeEvent) -> list:
    return [*events, end(lsn)]


class FakeSource:
    """Hands out one scripted poll per call, then nothing; sets `stop` once the script is used up."""

    def __init__(self, polls: list[list], stop: threading.Event, quiet_polls: int = 2) -> None:
        self.polls = list(polls)
        self.stop = stop
        self.quiet = quiet_polls  # empty polls after the script, so a quiet source flushes
        self.confirmed: list[int] = []
        self.confirmed_lsn = 0
        self.caught_up = True
        self.keepalives = 0

    def start(self, start_lsn: int = 0) -> None: ...

    def poll(self, timeout_s: float = 0.5) -> list:
        if self.polls:
            return self.polls.pop(0)
        self.quiet -= 1
        if self.quiet <= 0:
            self.stop.set()
        return []

    def confirm(self, lsn: int) -> None:
        self.confirmed.append(lsn)
        self.confirmed_lsn = max(self.confirmed_lsn, lsn)

    def keepalive(self) -> None:
        self.keepalives += 1

    def close(self) -> None: ...


class Recorder:
    """An apply loop that applies at once: jobs as ("commit", events, lsn), ("part", events), ("undo",)."""

    def __init__(self) -> None:
        self.jobs: list[tuple] = []
        self._done: list[TxnEnd] = []

    def submit(self, batch: list | None, last: TxnEnd | None, wait: Callable[[], bool]) -> bool:
        if last is not None:
            self.jobs.append(("commit", list(batch or []), last.commit_lsn))
            self._done.append(last)
        elif batch is not None:
            self.jobs.append(("part", list(batch)))
        else:
            self.jobs.append(("undo",))
        return True

    def applied(self, timeout_s: float = 0.0) -> list[TxnEnd]:
        done, self._done = self._done, []
        return done

    def wait_idle(self, confirm: Callable[[list[TxnEnd]], None], wait: Callable[[], bool]) -> bool:
        confirm(self.applied())
        return True

    def commits(self) -> list[tuple[list[int], int]]:
        return [([int(e.key["id"]) for e in j[1]], j[2]) for j in self.jobs if j[0] == "commit"]


def run(polls: list[list], **kwargs) -> tuple[Recorder, FakeSource, TxnBatcher]:
    stop = threading.Event()
    source = FakeSource(polls, stop)
    applying = Recorder()
    b = TxnBatcher(source, applying, stop, **kwargs)
    b.run()
    return applying, source, b


def test_small_transactions_of_one_poll_go_in_one_batch_and_are_confirmed_after_the_apply() -> None:
    applying, source, _ = run([txn(10, ev(1), ev(2)) + txn(20, ev(3))])
    assert applying.commits() == [([1, 2, 3], 20)]  # one target transaction, the position of the last
    assert source.confirmed == [21]  # the end LSN, once the apply loop reported the commit


def test_a_batch_waits_while_the_source_keeps_sending_then_goes_when_it_is_quiet(monkeypatch) -> None:
    monkeypatch.setattr(batcher, "BATCH_SECONDS", 3600.0)  # never "old enough": only quiet or full flushes
    applying, _, _ = run([txn(10, ev(1)), txn(20, ev(2)), txn(30, ev(3))])
    assert applying.commits() == [([1, 2, 3], 30)]


def test_a_full_batch_is_handed_over_at_once(monkeypatch) -> None:
    monkeypatch.setattr(batcher, "BATCH_SECONDS", 3600.0)
    monkeypatch.setattr(batcher, "BATCH_EVENTS", 2)
    applying, _, _ = run([txn(10, ev(1), ev(2)), txn(20, ev(3))])
    assert applying.commits() == [([1, 2], 10), ([3], 20)]


def test_changes_of_tables_set_aside_are_dropped() -> None:
    skip = {("public", "aside")}
    applying, _, b = run([txn(10, ev(1), ev(2, "aside"), ev(3))], skip=skip)
    assert applying.commits() == [([1, 3], 10)]
    assert b.skip is skip  # shared with the pipeline's TableSet: a table set aside later is dropped too


def test_a_large_transaction_is_applied_ahead_in_parts_and_commits_with_the_rest(monkeypatch) -> None:
    monkeypatch.setattr(batcher, "BATCH_EVENTS", 4)
    monkeypatch.setattr(batcher, "PART_EVENTS", 2)
    polls = [[ev(i, position=10) for i in range(1, 6)], [ev(6, position=10), end(10)]]
    applying, source, _ = run(polls)
    assert applying.jobs[0] == ("part", [ev(i, position=10) for i in range(1, 6)])
    assert applying.commits() == [([6], 10)]  # only what was not sent ahead
    assert source.confirmed == [11]


def test_a_streamed_transaction_is_settled_at_its_commit_and_a_rolled_back_subtransaction_dropped() -> None:
    polls = [
        [StreamStart(7, True), ev(1, position=UNCOMMITTED, xid=7), ev(2, position=UNCOMMITTED, xid=8), StreamStop()],
        [StreamAbort(7, 8)],  # subtransaction 8 rolled back
        [StreamStart(7, False), ev(3, position=UNCOMMITTED, xid=7), StreamStop(), end(50, xid=7, streamed=True)],
    ]
    applying, _, _ = run(polls)
    ((batch, lsn),) = [(j[1], j[2]) for j in applying.jobs if j[0] == "commit"]
    assert lsn == 50 and [int(e.key["id"]) for e in batch] == [1, 3]
    assert all(e.position == 50 and e.xid == 7 for e in batch)  # settled: commit LSN and top-level xid


def test_parts_of_a_streamed_transaction_are_undone_when_another_commits_first(monkeypatch) -> None:
    monkeypatch.setattr(batcher, "PART_EVENTS", 2)
    polls = [
        [StreamStart(7, True), ev(1, xid=7, position=UNCOMMITTED), ev(2, xid=7, position=UNCOMMITTED), StreamStop()],
        txn(40, ev(9)),  # commits while 7's parts are in the open target transaction
        [end(60, xid=7, streamed=True)],
    ]
    applying, _, b = run(polls)
    kinds = [j[0] for j in applying.jobs]
    assert kinds[:2] == ["part", "undo"]  # the parts rolled back before the other transaction's commit
    # 7 is applied whole at its commit (here in one batch with 40, which came in the same burst)
    assert applying.commits() == [([9, 1, 2], 60)]
    assert b.parts is None and not b.unparted


def test_a_changed_relation_is_evolved_after_everything_before_it_is_applied() -> None:
    rel = relation()
    changed = RelationChanged(rel, rel, added=("c",))
    seen: list = []
    applying: Recorder

    def on_relation(change: RelationChanged) -> None:
        seen.append((change.added, applying.commits()))

    stop = threading.Event()
    source = FakeSource([txn(10, ev(1)) + [changed] + txn(20, ev(2))], stop)
    applying = Recorder()
    TxnBatcher(source, applying, stop, on_relation=on_relation).run()
    assert seen == [(("c",), [([1], 10)])]  # transaction 10 was in the target before the DDL
    assert applying.commits() == [([1], 10), ([2], 20)]
    assert source.confirmed == [11, 21]


def test_a_first_description_of_a_relation_is_no_schema_change() -> None:
    rel = relation()
    seen: list = []
    run([[RelationChanged(rel, None), *txn(10, ev(1))]], on_relation=seen.append)
    assert seen == []


def test_a_reloaded_tables_changes_already_in_its_copy_are_dropped_until_the_stream_passes_its_point() -> None:
    since = {("public", "reloaded"): 30}
    applying, _, b = run(
        [txn(20, ev(1, "reloaded"), ev(2)), txn(40, ev(3, "reloaded"))],
        since=since,
    )
    assert applying.commits() == [([2, 3], 40)]
    assert since == {} and b.since is since  # past every reload point: cleared in place, nothing filtered


def test_with_the_real_apply_thread_every_commit_is_applied_in_order_then_confirmed() -> None:
    stop = threading.Event()
    done: list[tuple[list[int], int]] = []

    def work(batch: list | None, last: TxnEnd | None) -> None:
        if last is not None:
            done.append(([int(e.key["id"]) for e in batch or []], last.commit_lsn))

    class UntilConfirmed(FakeSource):
        def poll(self, timeout_s: float = 0.5) -> list:
            return self.polls.pop(0) if self.polls else []

        def confirm(self, lsn: int) -> None:
            super().confirm(lsn)
            if lsn == 71:
                stop.set()

    source = UntilConfirmed([txn(10 * i, ev(i)) for i in range(1, 8)], stop)
    applying = ApplyThread(work, 1)
    try:
        TxnBatcher(source, applying, stop).run()
    finally:
        applying.close()
    assert [lsn for _ids, lsn in done] == sorted(lsn for _ids, lsn in done)
    assert [i for ids, _ in done for i in ids] == list(range(1, 8))
    assert source.confirmed == sorted(source.confirmed) and source.confirmed[-1] == 71
