"""Every pipeline with its state, mode, source -> target, last run and next scheduled run."""

from __future__ import annotations

from nicegui import run, ui

from components.format import STATE_COLORS, ago, iso_utc, state_badge_slot, time_cell_slot, time_js
from components.frame import frame
from components.live import on_events
from components.messages import plain
from components.preferences import show_utc
from core import pipelines
from core.errors import StudioError
from core.pipeline_schemas import PipelinePublic
from core.security import Action, can

COLUMNS = [
    {"name": "name", "label": "Name", "field": "name", "align": "left", "sortable": True},
    {"name": "state", "label": "State", "field": "state", "align": "left", "sortable": True},
    {"name": "mode", "label": "Mode", "field": "mode", "align": "left"},
    {"name": "route", "label": "Source → target", "field": "route", "align": "left"},
    {"name": "last_run", "label": "Last run", "field": "last_run", "align": "left"},
    {"name": "next_run", "label": "Next scheduled run", "field": "next_run", "align": "left"},
]
NAME_SLOT = r"""
<q-td :props="props">
  <a :href="'/pipelines/' + props.row.id" class="text-primary font-medium whitespace-nowrap">{{ props.value }}</a>
</q-td>
"""
EMPTY = (
    "No pipelines yet. A pipeline copies tables from a source connection to a target and keeps them in sync: "
    '<a href="/pipelines/new" class="text-primary">create the first one</a>.'
)
EMPTY_IN_STATE = 'No pipeline is {state} right now. <a href="/pipelines" class="text-primary">Show all</a>.'


def last_run_slot(utc: bool) -> str:
    """'COMPLETED · 5 min ago', with the start time (browser's zone, or UTC) on hover."""
    title = time_js("props.row.last_run_at", utc)
    return f'<q-td :props="props"><span :title="{title}">{{{{ props.value }}}}</span></q-td>'


def empty_slot(state: str | None) -> str:
    """The table's friendly empty state: how to begin, or that no pipeline is in the chosen state."""
    text = EMPTY_IN_STATE.format(state=state) if state else EMPTY
    return f'<div class="w-full text-center text-grey-7 p-6">{text}</div>'


FOLLOWED = ("pipeline.state", "pipeline.run")  # what changes a row: its state, its last run


def pipeline_row(p: PipelinePublic) -> dict:
    """Display strings of one pipeline."""
    last = p.last_run
    return {
        "id": p.id,
        "name": p.name,
        "state": p.state,
        "mode": p.mode,
        "route": f"{p.source_connection_name}:{p.source_schema} → {p.target_connection_name}:{p.target_schema}",
        "last_run": f"{last.status} · {ago(last.started_at)}" if last else "never",
        "last_run_at": iso_utc(last.started_at) if last else None,
        "next_run": iso_utc(p.next_run_at),
    }


async def pipelines_page(state: str | None = None) -> None:
    """The list of pipelines (only those in `state` when given); rows follow state and run events."""
    async with frame("Pipelines") as actor:
        if can(actor.role, Action.manage_pipelines):
            ui.button("New pipeline", icon="add", on_click=lambda: ui.navigate.to("/pipelines/new")).mark(
                "new-pipeline"
            )
        shown = state if state in STATE_COLORS else None
        if shown:
            with ui.row().classes("items-center gap-2"):
                ui.label(f"Showing pipelines in state {shown}").mark("state-filter")
                ui.link("show all", "/pipelines")
        table = ui.table(columns=COLUMNS, rows=[], row_key="id").classes("w-full").mark("pipelines-table")
        table.add_slot("body-cell-name", NAME_SLOT)
        table.add_slot("body-cell-state", state_badge_slot())
        table.add_slot("no-data", empty_slot(shown))
        table.add_slot("body-cell-next_run", time_cell_slot(show_utc()))
        table.add_slot("body-cell-last_run", last_run_slot(show_utc()))

        async def refresh() -> None:
            try:
                items = await run.io_bound(pipelines.list_pipelines, actor)
            except StudioError as exc:
                ui.notify(plain(exc), type="negative")
                return
            if items is not None:  # None: the app is stopping
                table.rows = [pipeline_row(p) for p in items if shown is None or p.state == shown]
                table.update()

        on_events(lambda _events: refresh(), topics=FOLLOWED)  # the rows as stored once they changed
        await refresh()
