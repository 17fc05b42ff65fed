"""Personal API tokens: make one (its text shown once), see yours (admins: everyone's), revoke."""

from __future__ import annotations

from nicegui import run, ui
from pydantic import ValidationError

from components.confirm import confirm
from components.frame import frame
from components.messages import field_errors, plain
from core import tokens
from core.errors import StudioError

COLUMNS = [
    {"name": "name", "label": "Name", "field": "name", "align": "left"},
    {"name": "owner", "label": "Owner", "field": "owner", "align": "left"},
    {"name": "role", "label": "Role", "field": "role", "align": "left"},
    {"name": "prefix", "label": "Starts with", "field": "prefix", "align": "left"},
    {"name": "created", "label": "Created (UTC)", "field": "created", "align": "left"},
    {"name": "expires", "label": "Expires (UTC)", "field": "expires", "align": "left"},
    {"name": "last_used", "label": "Last used (UTC)", "field": "last_used", "align": "left"},
    {"name": "state", "label": "State", "field": "state", "align": "left"},
    {"name": "actions", "label": "", "field": "actions"},
]
ACTIONS_SLOT = r"""
<q-td :props="props">
  <q-btn v-if="props.row.state === 'active'" flat dense color="negative" icon="block" label="Revoke"
         @click="$parent.$emit('revoke', props.row)" />
</q-td>
"""


def _when(at) -> str:  # noqa: ANN001 - datetime | None
    return at.strftime("%Y-%m-%d %H:%M") if at else "—"


def _row(t: tokens.TokenPublic) -> dict:
    return {
        "id": t.id, "name": t.name, "owner": t.user_email, "role": t.role, "prefix": f"{t.prefix}…",
        "created": _when(t.created_at), "expires": _when(t.expires_at) if t.expires_at else "never",
        "last_used": _when(t.last_used_at), "state": t.state,
    }  # fmt: skip


async def tokens_page() -> None:
    """Any signed-in user; admins see and revoke everyone's."""
    async with frame("API tokens") as actor:
        ui.label(
            "A personal token works like a login with 'Authorization: Bearer <token>', with a role no higher "
            "than yours. Its text is shown once, when it is made."
        ).classes("text-grey-8")
        with ui.row().classes("items-end gap-3"):
            name = ui.input("Name").mark("token-name")
            roles = tokens.roles_up_to(actor.role)
            role = ui.select(roles, label="Role", value=actor.role).classes("w-32").mark("token-role")
            days = ui.number("Expires in days (empty: never)", min=1, max=3650, format="%d")
            days.classes("w-56").mark("token-days")
            ui.button("Create token", icon="add", on_click=lambda: create()).mark("token-create")
        table = ui.table(columns=COLUMNS, rows=[], row_key="id").classes("w-full").props("flat bordered")
        table.mark("tokens-table")
        table.add_slot("body-cell-actions", ACTIONS_SLOT)

        async def reload() -> None:
            try:
                items = await run.io_bound(tokens.list_tokens, actor)
            except StudioError as exc:
                ui.notify(plain(exc), type="negative")
                return
            table.rows = [_row(t) for t in items]

        async def create() -> None:
            expires = int(days.value) if days.value else None
            try:
                data = tokens.TokenCreate(name=name.value or "", role=role.value, expires_in_days=expires)
            except ValidationError as exc:
                ui.notify("; ".join(f"{e.field}: {e.message}" for e in field_errors(exc)), type="negative")
                return
            try:
                made = await run.io_bound(tokens.create_token, actor, data)
            except StudioError as exc:
                ui.notify(plain(exc), type="negative")
                return
            name.value = ""
            _show_once(made)
            await reload()

        async def revoke(row: dict) -> None:
            if not await confirm(f"Revoke the token '{row['name']}' of {row['owner']}?", "Revoke"):
                return
            try:
                await run.io_bound(tokens.revoke_token, actor, int(row["id"]))
            except StudioError as exc:
                ui.notify(plain(exc), type="negative")
                return
            ui.notify(f"Revoked '{row['name']}'", type="positive")
            await reload()

        table.on("revoke", lambda e: revoke(e.args))
        await reload()


def _show_once(made: tokens.TokenCreated) -> None:
    with ui.dialog() as dialog, ui.card().classes("w-[36rem] max-w-full"):
        ui.label(f"Token '{made.name}' ({made.role})").classes("text-lg font-semibold")
        ui.label("Copy it now: it is not shown again.").classes("text-warning")
        ui.input(value=made.token).props("readonly outlined").classes("w-full font-mono").mark("token-text")
        with ui.row().classes("w-full justify-end"):
            ui.button("Copy", icon="content_copy", on_click=lambda: ui.clipboard.write(made.token)).props("flat")
            ui.button("Done", on_click=dialog.close).mark("token-done")
    dialog.open()
