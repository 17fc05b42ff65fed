"""Every pipeline with its state, mode, source -> target, last run and next scheduled run."""

from __future__ import annotations

from nicegui import run, ui

from components.format import ago, timestamp
from components.frame import frame
from components.live import on_events
from components.messages import plain
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
  <a :href="'/pipelines/' + props.row.id" class="text-primary font-medium">{{ props.value }}</a>
</q-td>
"""
STATE_SLOT = r"""
<q-td :props="props">
  <q-badge :color="{RUNNING: 'primary', STARTING: 'primary', STOPPING: 'warning', PAUSED: 'warning',
                    ERROR: 'negative', STOPPED: 'grey-7', NOT_STARTED: 'grey-5'}[props.value] || 'grey'"
           :label="props.value" />
</q-td>
"""
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
        "next_run": timestamp(p.next_run_at) if p.next_run_at else "—",
    }


async def pipelines_page() -> None:
    """The list of pipelines; rows follow the pipelines' state and run events (no polling)."""
    async with frame("Pipelines") as actor:
        if can(actor.role, Action.manage_pipelines):
            ui.button("New pipeline", icon="add", on_click=lambda: ui.navigate.to("/pipelines/new")).mark(
                "new-pipeline"
            )
        table = ui.table(columns=COLUMNS, rows=[], row_key="id").classes("w-full").mark("pipelines-table")
        table.add_slot("body-cell-name", NAME_SLOT)
        table.add_slot("body-cell-state", STATE_SLOT)

        async def refresh() -> None:
            try:
                items = await run.io_bound(pipelines.list_pipelines, actor)
            except StudioError as exc:
                ui.notify(plain(exc), type="negative")
                return
            if items is not None:  # None: the app is stopping
                table.rows = [pipeline_row(p) for p in items]
                table.update()

        on_events(lambda _events: refresh(), topics=FOLLOWED)  # the rows as stored once they changed
        await refresh()
