"""The list of saved connections; editors and admins can add, edit and delete them."""

from __future__ import annotations

from nicegui import run, ui

from components.connection_form import KIND_LABELS, USAGE_LABELS, confirm_and_delete, open_connection_form
from components.format import ago, ms
from components.frame import frame
from components.messages import error_title, plain
from core import connections
from core.connections import ConnectionPublic
from core.errors import StudioError
from core.security import Action, can

COLUMNS = [
    {"name": "name", "label": "Name", "field": "name", "align": "left", "sortable": True},
    {"name": "kind", "label": "Kind", "field": "kind_label", "align": "left", "sortable": True},
    {"name": "usage", "label": "Usage", "field": "usage_label", "align": "left"},
    {"name": "endpoint", "label": "Host:port", "field": "endpoint", "align": "left"},
    {"name": "database", "label": "Database", "field": "database", "align": "left"},
    {"name": "schema", "label": "Default schema", "field": "schema", "align": "left"},
    {"name": "last_test", "label": "Last test", "field": "last_test", "align": "left"},
]
ACTIONS_COLUMN = {"name": "actions", "label": "", "field": "id", "align": "right"}

NAME_SLOT = r"""
<q-td :props="props">
  <a :href="'/connections/' + props.row.id" class="text-primary font-medium" @click.stop>{{ props.value }}</a>
</q-td>
"""
LAST_TEST_SLOT = r"""
<q-td :props="props">
  <q-badge v-if="props.row.test_status" :color="props.row.test_status === 'ok' ? 'positive' : 'negative'"
           :label="props.row.test_status" class="mr-2" />
  <span class="text-grey-8">{{ props.value }}</span>
</q-td>
"""
ACTIONS_SLOT = r"""
<q-td :props="props">
  <q-btn flat dense round icon="edit" @click.stop="$parent.$emit('edit', props.row)"><q-tooltip>Edit</q-tooltip></q-btn>
  <q-btn flat dense round icon="delete" color="negative" @click.stop="$parent.$emit('delete', props.row)">
    <q-tooltip>Delete</q-tooltip>
  </q-btn>
</q-td>
"""


def connection_row(c: ConnectionPublic) -> dict:
    """One table row: display strings only (the password never leaves the server)."""
    test = c.last_test
    if test is None:
        status, text = "", "never tested"
    elif test.ok:
        status, text = "ok", f"{ms(test.latency_ms)} · {ago(test.tested_at)}"
    else:
        status, text = "failed", f"{error_title(test.error_kind)} · {ago(test.tested_at)}"
    return {
        "id": c.id,
        "name": c.name,
        "kind": c.kind,
        "kind_label": KIND_LABELS.get(c.kind, c.kind),
        "usage_label": USAGE_LABELS.get(c.usage, c.usage),
        "endpoint": f"{c.host}:{c.port}",
        "database": c.database,
        "schema": c.schema_ or "—",
        "test_status": status,
        "last_test": text,
    }


async def connections_page() -> None:
    """All connections; click a row to open it."""
    async with frame("Connections") as actor:
        manage = can(actor.role, Action.manage_connections)
        by_id: dict[int, ConnectionPublic] = {}

        async def reload() -> None:
            try:
                items = await run.io_bound(connections.list_connections, actor)
            except StudioError as exc:
                error.text = plain(exc)
                error.visible = True
                return
            by_id.clear()
            by_id.update({c.id: c for c in items or []})
            table.rows = [connection_row(c) for c in items or []]
            table.visible = bool(table.rows)
            empty.visible = not table.rows

        async def edit(row: dict) -> None:
            existing = by_id.get(row.get("id"))
            if existing is not None:
                open_connection_form(actor, lambda _saved: reload(), existing)

        async def delete(row: dict) -> None:
            existing = by_id.get(row.get("id"))
            if existing is not None and await confirm_and_delete(actor, existing):
                await reload()

        with ui.row().classes("w-full items-center justify-between"):
            ui.label("Databases CDC Studio can read from and write to.").classes("text-grey-7")
            if manage:
                ui.button(
                    "New connection",
                    icon="add",
                    on_click=lambda: open_connection_form(
                        actor, lambda saved: ui.navigate.to(f"/connections/{saved.id}")
                    ),
                ).mark("new-connection")
        error = ui.label().classes("text-negative").mark("connections-error")
        error.visible = False
        columns = COLUMNS + ([ACTIONS_COLUMN] if manage else [])
        table = (
            ui.table(columns=columns, rows=[], row_key="id")
            .classes("w-full")
            .props("flat bordered")
            .mark("connections-table")
        )
        table.add_slot("body-cell-name", NAME_SLOT)
        table.add_slot("body-cell-last_test", LAST_TEST_SLOT)
        table.on(
            "rowClick",
            lambda e: ui.navigate.to(f"/connections/{_row_id(e.args)}"),
            js_handler="(evt, row) => emit(row.id)",
        )
        if manage:
            table.add_slot("body-cell-actions", ACTIONS_SLOT)
            table.on("edit", lambda e: edit(e.args))
            table.on("delete", lambda e: delete(e.args))
        with ui.card().classes("w-full items-center gap-2 py-10").props("flat bordered") as empty:
            ui.icon("cable", size="xl").classes("text-grey-5")
            ui.label("No connections yet.").classes("text-lg")
            if manage:
                ui.label("Add the databases to replicate from and to with “New connection”.").classes("text-grey-7")
        empty.mark("connections-empty")
        empty.visible = False
        await reload()


def _row_id(args: object) -> object:
    """The connection id a row event carries (the id itself, or a row dict)."""
    return args.get("id") if isinstance(args, dict) else args
