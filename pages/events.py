"""The live events page: applied changes pushed over the websocket, batched and throttled."""

from __future__ import annotations

import json
import time
from collections import Counter, deque

from nicegui import run, ui

from components.frame import frame
from components.live import on_events
from core import monitoring, pipelines
from core.events import Event

MAX_ROWS = 200
COLUMNS = [
    {"name": "applied_at", "label": "Applied", "field": "applied_at", "align": "left"},
    {"name": "pipeline", "label": "Pipeline", "field": "pipeline", "align": "left"},
    {"name": "table", "label": "Table", "field": "table", "align": "left"},
    {"name": "op", "label": "Operation", "field": "op", "align": "left"},
    {"name": "key", "label": "Key", "field": "key_text", "align": "left"},
]
OP_SLOT = r"""
<q-td :props="props">
  <q-badge :color="{insert: 'positive', update: 'primary', delete: 'negative', truncate: 'warning'}[props.value]"
           :label="props.value" />
</q-td>
"""


def _row(event: dict, names: dict[int, str], seq: int) -> dict:
    return {
        **event,
        "seq": seq,
        "pipeline": names.get(event["pipeline_id"], str(event["pipeline_id"])),
        "applied_at": str(event["applied_at"])[11:23],
        "key_text": json.dumps(event["key"], ensure_ascii=False),
    }


async def events_page(pipeline_id: int | None = None) -> None:
    """Newest changes first; counts and events/s over the changes seen since the page opened."""
    async with frame("Live events") as actor:
        names = {p.id: p.name for p in await run.io_bound(pipelines.list_pipelines, actor) or []}
        scope = f"pipeline {names.get(pipeline_id, pipeline_id)}" if pipeline_id else "all pipelines"
        ui.label(f"Changes as they are applied, {scope}. Click a row for the row before/after.").classes("text-grey-7")
        counts: Counter = Counter()
        window: deque[tuple[float, int]] = deque()
        with ui.row().classes("gap-6 items-center"):
            rate = ui.label("0 events/s").classes("text-xl font-semibold").mark("events-rate")
            totals = ui.label("insert 0 · update 0 · delete 0").mark("events-counts")
        table = ui.table(columns=COLUMNS, rows=[], row_key="seq").classes("w-full").mark("events-table")
        table.add_slot("body-cell-op", OP_SLOT)
        seq = iter(range(1, 1 << 62))
        initial = await run.io_bound(monitoring.recent_events, actor, pipeline_id, None, None, MAX_ROWS) or []
        table.rows = [_row(e.model_dump(mode="json"), names, next(seq)) for e in initial]

        def show_detail(e) -> None:  # noqa: ANN001
            row = e.args[1] if isinstance(e.args, list) else e.args
            with ui.dialog() as dialog, ui.card().classes("w-[48rem]"):
                ui.label(f"{row['op']} on {row['table']} · key {row['key_text']}").classes("font-semibold")
                with ui.row().classes("w-full no-wrap gap-4"):
                    for title in ("before", "after"):
                        with ui.column().classes("w-1/2"):
                            ui.label(title).classes("text-grey-7")
                            ui.code(json.dumps(row.get(title), indent=2, ensure_ascii=False), language="json")
                ui.button("Close", on_click=dialog.close).props("flat")
            dialog.open()

        table.on("rowClick", show_detail)

        def on_batch(batch: list[Event]) -> None:
            now = time.monotonic()
            fresh = []
            for e in batch:
                counts.update(e.data["counts"])
                window.append((now, e.data["total"]))
                fresh.extend(e.data["latest"])
            while window and now - window[0][0] > 10:
                window.popleft()
            span = max(1.0, now - window[0][0]) if window else 1.0
            rate.text = f"{sum(n for _, n in window) / span:,.0f} events/s"
            totals.text = f"insert {counts['insert']:,} · update {counts['update']:,} · delete {counts['delete']:,}"
            new_rows = [_row(ev, names, next(seq)) for ev in reversed(fresh[-MAX_ROWS:])]
            table.rows = (new_rows + table.rows)[:MAX_ROWS]
            table.update()

        on_events(on_batch, topics=("cdc.events",), pipeline_id=pipeline_id, interval=0.25)
