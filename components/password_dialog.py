"""A dialog that sets a password: one's own (the current password required) or, for admins, another user's."""

from __future__ import annotations

import time

from nicegui import app, run, ui
from pydantic import ValidationError

from components.messages import field_errors, plain
from core import users
from core.errors import StudioError, ValidationFailed
from core.users import MIN_PASSWORD_LENGTH, Actor, PasswordChange, PasswordReset, UserPublic

FIELD_LABELS = {
    "current_password": "Current password",
    "new_password": "New password",
    "password": "New password",
}


def _password_input(label: str, marker: str) -> ui.input:
    return (
        ui.input(label, password=True, password_toggle_button=True)
        .props("autocomplete=new-password")
        .classes("w-full")
        .mark(marker)
    )


class PasswordDialog:
    """`target` None: the actor's own password (current one asked); else an admin's reset of `target`'s.

    The dialog is deleted when closed, so no typed password stays in the page.
    """

    def __init__(self, actor: Actor, target: UserPublic | None = None) -> None:
        self.actor = actor
        self.target = target
        with ui.dialog().props("persistent") as self.dialog, ui.card().classes("w-[28rem] max-w-full"):
            title = "Change your password" if target is None else f"Set a new password for {target.email}"
            ui.label(title).classes("text-lg font-semibold").mark("password-title")
            self.current = _password_input("Current password", "current-password") if target is None else None
            if self.current is not None:
                self.current.props("autocomplete=current-password")
            self.new = _password_input(f"New password ({MIN_PASSWORD_LENGTH}+ characters)", "new-password")
            self.repeat = _password_input("Repeat the new password", "repeat-password")
            self.must_change = (
                ui.checkbox("A temporary password: they must choose their own at their next sign-in", value=True).mark(
                    "password-must-change"
                )
                if target is not None
                else None
            )
            self.error = ui.label().classes("text-negative whitespace-pre-line").mark("password-error")
            self.error.visible = False
            with ui.row().classes("w-full justify-end gap-2"):
                ui.button("Cancel", on_click=self.close).props("flat").mark("password-cancel")
                self.save_button = ui.button("Change password", on_click=self.save).mark("password-save")

    def open(self) -> PasswordDialog:
        """Show the dialog."""
        self.dialog.open()
        return self

    def close(self) -> None:
        """Forget what was typed, close and delete the dialog."""
        for field in (self.current, self.new, self.repeat):
            if field is not None:
                field.value = ""
        self.dialog.close()
        self.dialog.delete()

    def _fail(self, text: str) -> None:
        self.error.text = text
        self.error.visible = True

    def _request(self) -> PasswordChange | PasswordReset | None:
        new = self.new.value or ""
        if new != (self.repeat.value or ""):
            self._fail("The two new passwords differ.")
            return None
        try:
            if self.current is None:
                return PasswordReset(password=new, must_change=bool(self.must_change and self.must_change.value))
            return PasswordChange(current_password=self.current.value or "", new_password=new)
        except ValidationError as exc:
            self._fail("\n".join(f"{FIELD_LABELS.get(e.field, e.field)}: {e.message}" for e in field_errors(exc)))
            return None

    async def save(self) -> None:
        """Check, change the password through core.users, close and confirm; on error keep the dialog open."""
        self.error.visible = False
        request = self._request()
        if request is None:
            return
        self.save_button.props("loading")
        try:
            if isinstance(request, PasswordChange):
                await run.io_bound(users.change_own_password, self.actor, request)
                app.storage.user["login_at"] = time.time()  # the change ends other sessions, not this one
            else:
                assert self.target is not None
                await run.io_bound(users.reset_password, self.actor, self.target.id, request)
        except ValidationFailed as exc:
            self._fail(f"{FIELD_LABELS.get(exc.field, exc.field)}: {exc.message}")
            return
        except StudioError as exc:
            self._fail(plain(exc))
            return
        finally:
            self.save_button.props(remove="loading")
        who = "Your password" if self.target is None else f"The password of {self.target.email}"
        ui.notify(f"{who} was changed", type="positive")
        self.close()


def open_password_dialog(actor: Actor, target: UserPublic | None = None) -> PasswordDialog:
    """Open a new password dialog (one's own password when `target` is None).

    It is built at the page's root: opened from the account menu, it must not live inside the menu,
    whose content is removed when the menu closes.
    """
    with ui.context.client.layout:
        return PasswordDialog(actor, target).open()
