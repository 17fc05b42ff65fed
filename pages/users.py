"""User accounts: admins list them, create them, change roles, deactivate, set passwords and delete."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from nicegui import run, ui
from pydantic import ValidationError

from components.confirm import confirm
from components.format import iso_utc, time_cell_slot
from components.frame import frame
from components.messages import field_errors, plain
from components.password_dialog import open_password_dialog
from components.preferences import show_utc
from core import users
from core.errors import StudioError
from core.security import Action, Role, can
from core.users import Actor, UserCreate, UserPublic, UserUpdate

COLUMNS = [
    {"name": "email", "label": "Email", "field": "email", "align": "left", "sortable": True},
    {"name": "name", "label": "Name", "field": "name", "align": "left", "sortable": True},
    {"name": "role", "label": "Role", "field": "role", "align": "left", "sortable": True},
    {"name": "active", "label": "Active", "field": "active", "align": "center"},
    {"name": "created", "label": "Created", "field": "created", "align": "left", "sortable": True},
]
ROLE_LABELS = {
    Role.viewer.value: "Viewer (read only)",
    Role.editor.value: "Editor (connections, pipelines)",
    Role.admin.value: "Admin (everything, users)",
}
FIELD_LABELS = {"email": "Email", "password": "Password", "role": "Role", "full_name": "Full name"}


ACTIONS_COLUMN = {"name": "actions", "label": "", "field": "id", "align": "right"}
# Your own row offers no deactivate/delete (you would lock yourself out); core refuses them anyway.
ACTIONS_SLOT = r"""
<q-td :props="props">
  <q-btn flat dense round icon="edit" @click.stop="$parent.$emit('edit', props.row)">
    <q-tooltip>Change role or name</q-tooltip></q-btn>
  <q-btn flat dense round icon="key" @click.stop="$parent.$emit('password', props.row)">
    <q-tooltip>Set a new password</q-tooltip></q-btn>
  <template v-if="!props.row.is_self">
    <q-btn flat dense round :icon="props.row.is_active ? 'person_off' : 'person'"
           @click.stop="$parent.$emit('toggle', props.row)">
      <q-tooltip>{{ props.row.is_active ? 'Deactivate' : 'Activate' }}</q-tooltip></q-btn>
    <q-btn flat dense round icon="delete" color="negative" @click.stop="$parent.$emit('delete', props.row)">
      <q-tooltip>Delete</q-tooltip></q-btn>
  </template>
</q-td>
"""
ACTIVE_SLOT = r"""
<q-td :props="props">
  <q-badge :color="props.row.is_active ? 'positive' : 'grey-6'" :label="props.value" />
</q-td>
"""


def user_row(u: UserPublic, me: int | None = None) -> dict:
    """One row of the users table (`me`: the signed-in user's id, whose row has fewer actions)."""
    return {
        "id": u.id,
        "email": u.email,
        "name": u.full_name,
        "role": u.role,
        "active": "yes" if u.is_active else "no",
        "is_active": u.is_active,
        "is_self": u.id == me,
        "created": iso_utc(u.created_at),  # shown in the browser's time zone, UTC on hover
    }


class EditUserDialog:
    """Role and full name of one account."""

    def __init__(self, actor: Actor, target: UserPublic, on_saved: Callable[[], Awaitable[None]]) -> None:
        self.actor, self.target, self.on_saved = actor, target, on_saved
        with ui.dialog() as self.dialog, ui.card().classes("w-[28rem] max-w-full"):
            ui.label(f"Edit {target.email}").classes("text-lg font-semibold").mark("edit-user-title")
            self.full_name = ui.input("Full name", value=target.full_name).classes("w-full").mark("edit-user-name")
            self.role = ui.select(ROLE_LABELS, label="Role", value=target.role).classes("w-full").mark("edit-user-role")
            self.error = ui.label().classes("text-negative whitespace-pre-line").mark("edit-user-error")
            self.error.visible = False
            with ui.row().classes("w-full justify-end gap-2"):
                ui.button("Cancel", on_click=self.close).props("flat").mark("edit-user-cancel")
                ui.button("Save", on_click=self.save).mark("edit-user-save")
        self.dialog.open()

    def close(self) -> None:
        """Close and delete the dialog."""
        self.dialog.close()
        self.dialog.delete()

    async def save(self) -> None:
        """Apply the change; a refusal (the last admin) is shown in the dialog."""
        self.error.visible = False
        data = UserUpdate(role=self.role.value, full_name=(self.full_name.value or "").strip())
        try:
            saved = await run.io_bound(users.update_user, self.actor, self.target.id, data)
        except StudioError as exc:
            self.error.text = plain(exc)
            self.error.visible = True
            return
        if saved is None:
            return
        ui.notify(f"Saved {saved.email} ({saved.role})", type="positive")
        self.close()
        await self.on_saved()


class NewUserForm:
    """Email, name, password and role; creates the account through core.users."""

    def __init__(self, actor: Actor, on_created: Callable[[], Awaitable[None]]) -> None:
        self.actor = actor
        self.on_created = on_created
        with ui.card().classes("w-full").props("flat bordered"):
            ui.label("New user").classes("text-lg font-medium")
            with ui.row().classes("w-full items-start gap-4"):
                self.email = ui.input("Email").classes("w-64").mark("user-email")
                self.full_name = ui.input("Full name").classes("w-56").mark("user-name")
                self.password = (
                    ui.input("Password (8+ characters)", password=True, password_toggle_button=True)
                    .props("autocomplete=new-password")
                    .classes("w-56")
                    .mark("user-password")
                )
                self.role = (
                    ui.select(ROLE_LABELS, label="Role", value=Role.viewer.value).classes("w-64").mark("user-role")
                )
                ui.button("Create user", icon="person_add", on_click=self.create).classes("mt-2").mark("create-user")
            self.error = ui.label().classes("text-negative whitespace-pre-line").mark("user-error")
            self.error.visible = False

    def _fail(self, text: str) -> None:
        self.error.text = text
        self.error.visible = True

    async def create(self) -> None:
        """Validate, create, clear the form and refresh the list."""
        self.error.visible = False
        try:
            data = UserCreate(
                email=(self.email.value or "").strip(),
                password=self.password.value or "",
                role=self.role.value,
                full_name=(self.full_name.value or "").strip(),
            )
        except ValidationError as exc:
            self._fail("\n".join(f"{FIELD_LABELS.get(e.field, e.field)}: {e.message}" for e in field_errors(exc)))
            return
        try:
            created = await run.io_bound(users.create_user, self.actor, data)
        except StudioError as exc:
            self._fail(plain(exc))
            return
        if created is None:
            return
        for element in (self.email, self.full_name, self.password):
            element.value = ""
        ui.notify(f"Created {created.email} ({created.role})", type="positive")
        await self.on_created()


async def users_page() -> None:
    """Every account; admins only."""
    async with frame("Users") as actor:
        if not can(actor.role, Action.manage_users):
            ui.label("You need the admin role to see and manage users.").classes("text-grey-8").mark("users-denied")
            return

        by_id: dict[int, UserPublic] = {}

        async def reload() -> None:
            try:
                items = await run.io_bound(users.list_users, actor)
            except StudioError as exc:
                ui.notify(plain(exc), type="negative")
                return
            by_id.clear()
            by_id.update({u.id: u for u in items or []})
            table.rows = [user_row(u, actor.id) for u in items or []]

        NewUserForm(actor, reload)
        table = (
            ui.table(columns=[*COLUMNS, ACTIONS_COLUMN], rows=[], row_key="id")
            .classes("w-full")
            .props("flat bordered")
            .mark("users-table")
        )
        table.add_slot("body-cell-actions", ACTIONS_SLOT)
        table.add_slot("body-cell-active", ACTIVE_SLOT)
        table.add_slot("body-cell-created", time_cell_slot(show_utc()))
        actions = UserActions(actor, by_id, reload)
        table.on("edit", lambda e: actions.edit(e.args))
        table.on("password", lambda e: actions.password(e.args))
        table.on("toggle", lambda e: actions.toggle(e.args))
        table.on("delete", lambda e: actions.delete(e.args))
        await reload()


class UserActions:
    """What the buttons of a user row do; every refusal (last admin, yourself) is shown in words."""

    def __init__(self, actor: Actor, by_id: dict[int, UserPublic], reload: Callable[[], Awaitable[None]]) -> None:
        self.actor, self.by_id, self.reload = actor, by_id, reload

    def _target(self, row: object) -> UserPublic | None:
        return self.by_id.get(row.get("id") if isinstance(row, dict) else row)  # type: ignore[arg-type]

    def edit(self, row: object) -> None:
        """Open the role/name dialog."""
        if (target := self._target(row)) is not None:
            EditUserDialog(self.actor, target, self.reload)

    def password(self, row: object) -> None:
        """Open the dialog that sets a new password for the user."""
        if (target := self._target(row)) is not None:
            open_password_dialog(self.actor, None if target.id == self.actor.id else target)

    async def toggle(self, row: object) -> None:
        """Deactivate (asks first: the person is signed out) or activate the account."""
        target = self._target(row)
        if target is None:
            return
        if target.is_active and not await confirm(
            f"Deactivate {target.email}?\nThey are signed out and cannot sign in until activated again.",
            "Deactivate",
        ):
            return
        await self._apply(users.update_user, target, UserUpdate(is_active=not target.is_active))

    async def delete(self, row: object) -> None:
        """Delete the account after a confirmation."""
        target = self._target(row)
        if target is None or not await confirm(f"Delete the user {target.email}?\nThe audit trail keeps their email."):
            return
        if await self._apply(users.delete_user, target):
            ui.notify(f"Deleted {target.email}", type="positive")

    async def _apply(self, fn: Callable[..., object], target: UserPublic, *args: object) -> bool:
        try:
            await run.io_bound(fn, self.actor, target.id, *args)
        except StudioError as exc:
            ui.notify(plain(exc), type="negative")
            return False
        await self.reload()
        return True
