"""The net effect per key of one batch of changes to one table, grouped for set-based statements.

Changes are folded in order into one final state per primary key: a row to upsert or a key to
delete. insert→update→delete of a key nets to a delete; delete→insert to an upsert of the new
row; a primary-key update deletes the old key and upserts the new one. Columns the source did
not send (unchanged TOAST values) are filled from an earlier change in the batch when there is
one; otherwise they must keep the target's value: such rows become UPDATEs of the sent columns,
or, when the key moved, take the missing values from the target row at the old key.
TRUNCATE discards everything before it (the target is truncated first, then the rest applied).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from core.cdc.applier.catalog import SchemaMismatch, TargetTable
from core.cdc.applier.copytext import FIELD, Rows
from core.cdc.events import ChangeEvent

# Final state of one key: DELETE; a dict (the whole new row: column -> text); or a tuple
# (values, unchanged, origin): columns in `unchanged` are not in `values` and keep the target's
# value, which lives in the pre-batch target row at key `origin`. Full rows are the events' own
# dicts (never copied or changed): a batch allocates as little as possible.
DELETE: Any = object()

Lookup = Callable[[TargetTable, Any, tuple[str, ...]], dict[str, str | None] | None]


@dataclass
class Plan:
    """Set-based work for one table: truncate first, then deletes, upserts, partial updates."""

    truncate: bool = False
    deletes: Rows = field(default_factory=Rows)  # key values
    upserts: dict[tuple[str, ...], Rows] = field(default_factory=dict)  # columns -> rows
    updates: dict[tuple[str, ...], Rows] = field(default_factory=dict)  # sent columns (key included) -> rows

    @property
    def rows(self) -> int:
        return len(self.deletes) + sum(map(len, self.upserts.values())) + sum(map(len, self.updates.values()))


class TableChanges:
    """Folds the changes of one source table into net changes of its target table."""

    __slots__ = ("table", "source", "rows", "truncated", "counts", "_sigs")

    def __init__(self, table: TargetTable, source: tuple[str, str]) -> None:
        self.table = table
        self.source = source
        self.rows: dict[Any, Any] = {}
        self.truncated = False
        self.counts = {"insert": 0, "update": 0, "delete": 0, "truncate": 0}
        self._sigs: dict[frozenset[str], tuple[str, ...]] = {}

    def add(self, ev: ChangeEvent) -> None:
        """Fold one change into the batch state."""
        op = ev.op
        if op == "insert":
            self.rows[self._key(ev.after, ev)] = ev.after
        elif op == "update":
            self._update(ev)
        elif op == "delete":
            self.rows[self._old_key(ev)] = DELETE
        elif op == "truncate":
            self.rows.clear()
            self.truncated = True
        else:
            raise ValueError(f"unknown change operation {op!r} for {self.table.label}")
        self.counts[op] += 1

    def _update(self, ev: ChangeEvent) -> None:
        after = ev.after
        new = self._key(after, ev)
        old = self._old_key(ev) if (ev.key or ev.before) else new
        unchanged = ev.unchanged
        rec: Any = after
        if unchanged:
            prev = self.rows.get(old)
            vals = {c: v for c, v in after.items() if c not in unchanged}  # type: ignore[union-attr]
            if prev is None or prev is DELETE:
                rec = (vals, frozenset(unchanged), old)
            else:
                pvals, punchanged, porigin = (prev, (), None) if type(prev) is dict else prev
                missing = set()
                for c in unchanged:
                    if c in pvals and c not in punchanged:
                        vals[c] = pvals[c]
                    else:
                        missing.add(c)
                rec = (vals, frozenset(missing), porigin) if missing else vals
        if old != new:
            self.rows[old] = DELETE
        self.rows[new] = rec

    def _key(self, row: dict | None, ev: ChangeEvent) -> Any:
        if row is None:
            raise SchemaMismatch(f"{ev.op} on {self.table.label} carries no row", table=self.source)
        try:
            return self.table.key_of(row)
        except KeyError:
            raise self._key_error(ev) from None

    def _old_key(self, ev: ChangeEvent) -> Any:
        for row in (ev.key, ev.before):
            if row:
                try:
                    return self.table.key_of(row)
                except KeyError:
                    continue
        raise self._key_error(ev)

    def _key_error(self, ev: ChangeEvent) -> SchemaMismatch:
        pk = ", ".join(self.table.primary_key)
        return SchemaMismatch(
            f"a {ev.op} on source table {ev.schema}.{ev.table} does not carry the target key ({pk}) of "
            f"{self.table.label}; give the source table the same primary key (or REPLICA IDENTITY FULL)",
            table=self.source,
            columns=list(self.table.primary_key),
        )

    def plan(self, lookup: Lookup, safe: bool = False) -> Plan:
        """Group the net changes by statement shape; `lookup` reads pre-batch target rows for moved keys.

        `safe` escapes value by value (see copytext.MarkerInValue).
        """
        t = self.table
        plan = Plan(truncate=self.truncated, deletes=Rows(safe))
        full, ncols, colset, values_of = t.columns, len(t.columns), t.colset, t.values_of
        single_key = len(t.primary_key) == 1
        deletes = plan.deletes.lines
        fulls = plan.upserts[full] = Rows(safe)  # other shapes may turn out full too (moved keys)
        lines = fulls.lines
        join = FIELD.join
        for key, rec in self.rows.items():
            if rec is DELETE:
                if single_key and not safe and key is not None:
                    deletes.append(key)  # one key column: its value is the line
                else:
                    plan.deletes.add((key,) if single_key else key)
                continue
            if type(rec) is dict:
                if len(rec) == ncols and rec.keys() == colset:
                    values = values_of(rec)
                    if safe or None in values:  # NULLs take the marked path (no exception per row)
                        fulls.add(values)
                    else:
                        lines.append(join(values))
                    continue
                vals, unchanged = rec, frozenset()  # type: ignore[var-annotated]
            else:
                vals, unchanged, origin = rec
                if origin != key:
                    vals, unchanged = self._carry(lookup, vals, unchanged, origin)
            sig = self._signature(vals, unchanged)
            groups = plan.updates if unchanged else plan.upserts
            rows = groups.get(sig)
            if rows is None:
                rows = groups[sig] = Rows(safe)
            rows.add(tuple([vals[c] for c in sig]))
        if not fulls.lines:
            del plan.upserts[full]
        return plan

    def _carry(self, lookup: Lookup, vals: dict, unchanged: frozenset[str], origin: Any) -> tuple[dict, frozenset]:
        """A moved key with unsent columns takes them from the target row at its old key (read before any write)."""
        cols = tuple(c for c in self.table.columns if c in unchanged)
        found = None if self.truncated else lookup(self.table, origin, cols)
        vals = dict(vals)
        if found is not None:
            vals.update(found)
        return vals, frozenset()  # a missing origin row: insert what was sent, the rest takes defaults

    def _signature(self, vals: dict, unchanged: frozenset[str]) -> tuple[str, ...]:
        sent = frozenset(vals.keys() - unchanged)
        sig = self._sigs.get(sent)
        if sig is None:
            t = self.table
            extra = sorted(sent - t.colset - t.ignored)
            if extra and not t.lenient:
                raise SchemaMismatch(
                    f"source table {self.source[0]}.{self.source[1]} has column(s) {', '.join(extra)} "
                    f"that target table {t.label} lacks",
                    table=self.source,
                    columns=extra,
                )
            sig = self._sigs[sent] = tuple(c for c in t.columns if c in sent)
        return sig


def collect(
    events: Iterable[ChangeEvent], table_for: Callable[[tuple[str, str]], TargetTable]
) -> dict[tuple[str, str], TableChanges]:
    """Fold a batch into per-table net changes, tables in order of first appearance."""
    out: dict[tuple[str, str], TableChanges] = {}
    last: tuple[str, str] | None = None
    changes: TableChanges | None = None
    for ev in events:
        src = (ev.schema, ev.table)
        if src != last:
            changes = out.get(src)
            if changes is None:
                changes = out[src] = TableChanges(table_for(src), src)
            last = src
        changes.add(ev)  # type: ignore[union-attr]
    return out
