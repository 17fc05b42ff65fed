"""The dialog of one change: before and after side by side, typed, changed columns highlighted."""

from __future__ import annotations

import json
from typing import Any

from nicegui import ui

from core.monitoring import event_view

DIFF_COLUMNS = [
    {"name": "column", "label": "Column", "field": "column", "align": "left"},
    {"name": "before", "label": "Before", "field": "before", "align": "left"},
    {"name": "after", "label": "After", "field": "after", "align": "left"},
]
DIFF_ROW_SLOT = r"""
<q-tr :props="props" :class="props.row.changed ? 'bg-amber-2 text-black font-semibold' : ''"
      :data-changed="props.row.changed">
  <q-td key="column" :props="props">{{ props.row.column }}<span v-if="props.row.changed"> ●</span></q-td>
  <q-td key="before" :props="props"><code class="whitespace-pre-wrap">{{ props.row.before }}</code></q-td>
  <q-td key="after" :props="props"><code class="whitespace-pre-wrap">{{ props.row.after }}</code></q-td>
</q-tr>
"""
_ABSENT = "—"


def _shown(row: dict | None, name: str) -> str:
    # JSON text shows the type: 42 and true bare, "t" quoted, objects as objects.
    if row is None or name not in row:
        return _ABSENT
    return json.dumps(row[name], ensure_ascii=False, default=str)


def diff_rows(before: dict | None, after: dict | None) -> list[dict[str, Any]]:
    """One row per column of either image: the values as JSON, and whether it changed."""
    changed = set(event_view.changed_columns(before, after))
    names = list(dict.fromkeys([*(after or {}), *(before or {})]))
    return [
        {"column": n, "before": _shown(before, n), "after": _shown(after, n), "changed": n in changed} for n in names
    ]


def show_event_dialog(event: dict, types: dict[str, str], see_data: bool) -> ui.dialog:
    """Open the dialog of one logged change (`event` as the events page holds it)."""
    with ui.dialog() as dialog, ui.card().classes("w-[56rem] max-w-full"):
        ui.label(f"{event['op']} on {event['table']}").classes("text-lg font-semibold")
        if not see_data:
            ui.label(event_view.WITHHELD_NOTE).classes("text-grey-8").mark("data-withheld")
        else:
            _diff(event, types)
        ui.button("Close", on_click=dialog.close).props("flat")
    dialog.open()
    return dialog


def _diff(event: dict, types: dict[str, str]) -> None:
    before = event_view.typed_row(event.get("before"), types)
    after = event_view.typed_row(event.get("after"), types)
    key = event_view.typed_row(event.get("key"), types)
    ui.label(f"key {json.dumps(key, ensure_ascii=False, default=str)}").classes("font-mono").mark("event-key")
    note = event_view.before_note(event["op"], event.get("before"), event.get("key"), event["table"])
    if note:
        with ui.row().classes("items-start gap-2 bg-blue-1 text-black p-2 rounded w-full no-wrap"):
            ui.icon("info", color="primary")
            ui.label(note).mark("before-note")
    changed = event_view.changed_columns(before, after)
    if changed:
        ui.label(f"Changed: {', '.join(changed)}").mark("changed-columns")
    table = ui.table(columns=DIFF_COLUMNS, rows=diff_rows(before, after), row_key="column").classes("w-full")
    table.props("dense flat bordered :pagination='{rowsPerPage: 0}' hide-bottom")
    table.add_slot("body", DIFF_ROW_SLOT)
    table.mark("event-diff")
