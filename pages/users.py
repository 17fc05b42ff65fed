"""User accounts: admins list them and create new ones with a role."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from nicegui import run, ui
from pydantic import ValidationError

from components.format import timestamp
from components.frame import frame
from components.messages import field_errors, plain
from core import users
from core.errors import StudioError
from core.security import Action, Role, can
from core.users import Actor, UserCreate, UserPublic

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


def user_row(u: UserPublic) -> dict:
    """One row of the users table."""
    return {
        "id": u.id,
        "email": u.email,
        "name": u.full_name,
        "role": u.role,
        "active": "yes" if u.is_active else "no",
        "created": timestamp(u.created_at),
    }


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

        async def reload() -> None:
            try:
                items = await run.io_bound(users.list_users, actor)
            except StudioError as exc:
                ui.notify(plain(exc), type="negative")
                return
            table.rows = [user_row(u) for u in items or []]

        NewUserForm(actor, reload)
        table = (
            ui.table(columns=COLUMNS, rows=[], row_key="id")
            .classes("w-full")
            .props("flat bordered")
            .mark("users-table")
        )
        await reload()
