"""One's own account: who you are signed in as, your password, how long a session lasts, your API tokens."""

from __future__ import annotations

from nicegui import run, ui

from components.frame import frame
from components.password_dialog import open_password_dialog
from core.config import get_settings
from core.users import Actor, get_user


def _own(actor: Actor):  # noqa: ANN202 - core.users.UserPublic
    return get_user(Actor(id=actor.id, email=actor.email, role="admin"), actor.id)  # one's own record


async def account_page() -> None:
    """Any signed-in user."""
    async with frame("Account") as actor:
        me = await run.io_bound(_own, actor)
        settings = get_settings()
        if me.must_change:
            ui.label("An admin reset your password: choose your own to go on.").classes(
                "text-warning font-semibold"
            ).mark("account-must-change")
        with ui.card().classes("w-full max-w-xl"):
            with ui.grid(columns=2).classes("gap-x-6 gap-y-1"):
                for label, value, marker in (
                    ("Email", me.email, "account-email"),
                    ("Name", me.full_name or "—", "account-name"),
                    ("Role", me.role, "account-role"),
                ):
                    ui.label(label).classes("text-grey-7")
                    ui.label(value).mark(marker)
            ui.button("Change password", icon="key", on_click=lambda: open_password_dialog(actor)).mark(
                "account-change-password"
            )
            ui.label(
                f"A session ends after {settings.session_idle_minutes} minutes without activity and "
                f"{settings.session_max_hours} hours after signing in. Changing your password ends your "
                "other sessions and login tokens; personal API tokens stay valid until revoked."
            ).classes("text-grey-8 text-sm").mark("account-sessions")
            ui.link("Your API tokens", "/tokens").mark("account-tokens")
