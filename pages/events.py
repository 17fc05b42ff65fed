"""The live events page: applied changes pushed over the websocket, filtered, pausable, with a row diff."""

from __future__ import annotations

import json
import time
from collections import Counter, deque
from dataclasses import dataclass, field

from nicegui import run, ui

from components.event_detail import show_event_dialog
from components.format import iso_utc, time_cell_slot
from components.frame import frame
from components.live import on_events
from components.preferences import show_utc
from core import monitoring, pipelines
from core.events import Event
from core.monitoring import event_view
from core.users import Actor

MAX_ROWS = 200  # shown
BUFFER = 2000  # kept in the page: filters and a paused view draw from it
OPS = ["insert", "update", "delete", "truncate"]
COLUMNS = [
    {"name": "applied_at", "label": "Applied", "field": "applied_at", "align": "left"},
    {"name": "pipeline", "label": "Pipeline", "field": "pipeline", "align": "left"},
    {"name": "table", "label": "Table", "field": "table", "align": "left", "classes": "whitespace-nowrap"},
    {"name": "op", "label": "Operation", "field": "op", "align": "left"},
    {"name": "key", "label": "Key", "field": "key_text", "align": "left"},
]
OP_SLOT = r"""
<q-td :props="props">
  <q-badge :color="{insert: 'positive', update: 'primary', delete: 'negative', truncate: 'warning'}[props.value]"
           :label="props.value" />
</q-td>
"""
WITHHELD = "withheld"


def _row(event: dict, names: dict[int, str], seq: int, see_data: bool) -> dict:
    """A change as the table holds it; row values only for those who may see them (rows reach the browser)."""
    row = {
        "seq": seq,
        "pipeline_id": event["pipeline_id"],
        "pipeline": names.get(event["pipeline_id"], str(event["pipeline_id"])),
        "applied_at": iso_utc(event["applied_at"]),
        "table": event["table"],
        "op": event["op"],
    }
    if see_data:
        row |= {"key": event["key"], "before": event["before"], "after": event["after"]}
        row["key_text"] = json.dumps(event["key"], ensure_ascii=False)
    else:
        row["key_text"] = WITHHELD
    return row


@dataclass
class Filters:
    """What the person narrowed the feed to."""

    pipeline_id: int | None = None
    table: str | None = None
    op: str | None = None
    key: str = ""

    def match(self, row: dict) -> bool:
        """Whether a row passes every filter."""
        return (
            (self.pipeline_id is None or row["pipeline_id"] == self.pipeline_id)
            and (not self.table or row["table"] == self.table)
            and (not self.op or row["op"] == self.op)
            and (not self.key or self.key.lower() in row["key_text"].lower())
        )


@dataclass
class Feed:
    """The page's buffer of changes (newest first), the live counters, and the paused state."""

    names: dict[int, str]
    see_data: bool
    rows: deque[dict] = field(default_factory=lambda: deque(maxlen=BUFFER))
    counts: Counter = field(default_factory=Counter)
    window: deque[tuple[float, int]] = field(default_factory=deque)
    tables: set[str] = field(default_factory=set)
    paused: bool = False
    missed: int = 0  # changes that arrived while paused
    seq: int = 0

    def add(self, events: list[dict]) -> None:
        """Take changes (oldest first) into the buffer."""
        for ev in events:
            self.seq += 1
            self.rows.appendleft(_row(ev, self.names, self.seq, self.see_data))
            self.tables.add(ev["table"])
        if self.paused:
            self.missed += len(events)

    def count(self, batch: list[Event]) -> float:
        """Count a batch into the totals; the events per second over the last 10 s."""
        now = time.monotonic()
        for e in batch:
            self.counts.update(e.data["counts"])
            self.window.append((now, e.data["total"]))
        while self.window and now - self.window[0][0] > 10:
            self.window.popleft()
        span = max(1.0, now - self.window[0][0]) if self.window else 1.0
        return sum(n for _, n in self.window) / span

    def visible(self, filters: Filters) -> list[dict]:
        """The newest rows that pass the filters."""
        out = []
        for row in self.rows:
            if filters.match(row):
                out.append(row)
                if len(out) == MAX_ROWS:
                    break
        return out


def _filter_bar(feed: Feed, filters: Filters, redraw) -> ui.select:  # noqa: ANN001
    """The filter controls; returns the table select, whose options grow as new tables appear."""

    def set_filter(name: str, value: object) -> None:
        setattr(filters, name, value or ("" if name == "key" else None))
        redraw()

    with ui.row().classes("items-center gap-3 w-full"):
        pipeline_options = {None: "All pipelines", **feed.names}
        ui.select(
            pipeline_options,
            value=filters.pipeline_id,
            label="Pipeline",
            on_change=lambda e: set_filter("pipeline_id", e.value),
        ).classes("w-48").mark("filter-pipeline")
        tables = (
            ui.select(
                {None: "All tables", **{t: t for t in sorted(feed.tables)}},
                value=None,
                label="Table",
                on_change=lambda e: set_filter("table", e.value),
            )
            .classes("w-56")
            .mark("filter-table")
        )
        ui.select(
            {None: "All operations", **{op: op for op in OPS}},
            value=filters.op,
            label="Operation",
            on_change=lambda e: set_filter("op", e.value),
        ).classes("w-40").mark("filter-op")
        if feed.see_data:  # a key is row data too
            ui.input("Search key", on_change=lambda e: set_filter("key", e.value)).props("clearable").classes(
                "w-48"
            ).mark("filter-key")
    return tables


async def _open_detail(actor: Actor, row: dict, see_data: bool) -> None:
    types = await run.io_bound(event_view.column_types, actor, row["pipeline_id"], row["table"]) if see_data else {}
    show_event_dialog(row, types or {}, see_data)


async def events_page(pipeline_id: int | None = None, op: str | None = None) -> None:
    """Newest changes first; filters, a pause that freezes the view (not the stream), a row diff on click."""
    async with frame("Live events") as actor:
        see_data = await run.io_bound(event_view.can_see_data, actor)
        names = {p.id: p.name for p in await run.io_bound(pipelines.list_pipelines, actor) or []}
        feed = Feed(names=names, see_data=bool(see_data))
        filters = Filters(pipeline_id=pipeline_id, op=op if op in OPS else None)
        hint = "Click a row for its before/after." if see_data else event_view.WITHHELD_NOTE
        ui.label(f"Changes as they are applied. {hint}").classes("text-grey-7").mark("events-hint")
        with ui.row().classes("gap-6 items-center w-full"):
            rate = ui.label("0 events/s").classes("text-xl font-semibold").mark("events-rate")
            totals = ui.label("insert 0 · update 0 · delete 0").mark("events-counts")
            pause = ui.button("Pause", icon="pause").props("outline").mark("events-pause")
            paused_note = ui.label("").classes("text-warning font-medium").mark("events-paused")
        table_select: ui.select | None = None
        bar = ui.element("div").classes("w-full")  # the filters, above the table
        table = (
            ui.table(columns=COLUMNS, rows=[], row_key="seq")
            .classes("w-full")
            .mark("events-table")
            .props('data-testid="events-table"')
        )
        table.add_slot("body-cell-op", OP_SLOT)
        table.add_slot("body-cell-applied_at", time_cell_slot(utc=show_utc(), millis=True))
        table.add_slot(
            "no-data",
            '<div class="w-full text-center text-grey-7 p-4">No changes yet: they appear here as '
            "soon as a running pipeline applies them (nothing matches the filters if some are set).</div>",
        )

        def redraw() -> None:
            if feed.paused:
                paused_note.text = f"Paused: {feed.missed:,} new changes arrived; Resume to show them"
                return
            table.rows = feed.visible(filters)
            table.update()

        def toggle_pause() -> None:
            feed.paused = not feed.paused
            feed.missed = 0
            pause.text, pause.icon = ("Resume", "play_arrow") if feed.paused else ("Pause", "pause")
            paused_note.text = "Paused: the view is frozen, changes are still collected" if feed.paused else ""
            redraw()

        pause.on_click(toggle_pause)
        with bar:
            table_select = _filter_bar(feed, filters, redraw)
        initial = await run.io_bound(monitoring.recent_events, actor, pipeline_id, None, None, MAX_ROWS) or []
        feed.add([e.model_dump(mode="json") for e in reversed(initial)])
        redraw()

        async def on_click(e) -> None:  # noqa: ANN001
            row = e.args[1] if isinstance(e.args, list) else e.args
            await _open_detail(actor, row, feed.see_data)

        table.on("rowClick", on_click)

        def on_batch(batch: list[Event]) -> None:
            events_per_s = feed.count(batch)
            rate.text = f"{events_per_s:,.0f} events/s"
            c = feed.counts
            totals.text = f"insert {c['insert']:,} · update {c['update']:,} · delete {c['delete']:,}"
            known = len(feed.tables)
            feed.add([ev for e in batch for ev in e.data["latest"]])
            if table_select is not None and len(feed.tables) != known:
                table_select.set_options(
                    {None: "All tables", **{t: t for t in sorted(feed.tables)}}, value=filters.table
                )
            redraw()

        on_events(on_batch, topics=("cdc.events",), pipeline_id=pipeline_id, interval=0.25)
