"""The users page: admins list and create accounts; other roles are turned away."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from nicegui.testing import User

from core.errors import AuthenticationRequired
from core.security import Role
from core.users import authenticate, get_user, list_users
from tests.conftest import ADMIN_EMAIL
from tests.ui.helpers import WAIT, admin_actor, eventually, login, make_user, set_value, table_rows


async def test_admin_lists_and_creates_users(app_env, user: User) -> None:
    await login(user)
    await user.open("/users")
    rows = await eventually(lambda: table_rows(user, "users-table"))
    assert [r["email"] for r in rows] == [ADMIN_EMAIL] and rows[0]["role"] == "admin"
    # an instant with its UTC offset: the browser shows it in its own time zone, UTC on hover
    assert datetime.fromisoformat(rows[0]["created"]).utcoffset() == timedelta(0)

    user.find(marker="user-email").type("ed@example.com")
    user.find(marker="user-name").type("Ed Editor")
    user.find(marker="user-password").type("editor-pass-1")
    set_value(user, "user-role", "editor")
    user.find(marker="create-user").click()
    await user.should_see("Created ed@example.com (editor)", retries=WAIT)
    rows = await eventually(lambda: len(table_rows(user, "users-table")) == 2 and table_rows(user, "users-table"))
    ed = next(r for r in rows if r["email"] == "ed@example.com")
    assert ed["name"] == "Ed Editor" and ed["role"] == "editor" and ed["active"] == "yes"
    assert user.find(marker="user-password").elements.pop().value == ""


async def test_bad_input_and_duplicates_are_explained(app_env, user: User) -> None:
    await login(user)
    await user.open("/users")
    user.find(marker="user-email").type("not-an-email")
    user.find(marker="user-password").type("short")
    user.find(marker="create-user").click()
    await user.should_see("Email: ", retries=WAIT)
    await user.should_see("Password: must have at least 8 characters")
    user.find(marker="user-email").clear().type(ADMIN_EMAIL)
    user.find(marker="user-password").clear().type("long-enough-1")
    user.find(marker="create-user").click()
    await user.should_see(f"A user with the email {ADMIN_EMAIL} already exists", retries=WAIT)
    assert len(list_users(admin_actor())) == 1


async def test_non_admins_are_turned_away(app_env, user: User) -> None:
    make_user("ed@example.com", "editor-pass-1", Role.editor)
    await login(user, "ed@example.com", "editor-pass-1")
    await user.should_not_see("Users")  # no nav link
    await user.open("/users")
    await user.should_see("You need the admin role to see and manage users.")
    await user.should_not_see(marker="users-table")
    await user.should_not_see(marker="create-user")


def _row(user: User, email: str) -> dict:
    return next(r for r in table_rows(user, "users-table") if r["email"] == email)


async def test_admin_changes_role_deactivates_resets_and_deletes(app_env, user: User) -> None:
    ed = make_user("ed@example.com", "editor-pass-1", Role.editor)
    await login(user)
    await user.open("/users")
    await eventually(lambda: len(table_rows(user, "users-table")) == 2)
    me = _row(user, ADMIN_EMAIL)
    assert me["is_self"] and not _row(user, "ed@example.com")["is_self"]

    # change role
    user.find(marker="users-table").trigger("edit", {"id": ed.id})
    await user.should_see(marker="edit-user-title")
    set_value(user, "edit-user-role", "viewer")
    user.find(marker="edit-user-save").click()
    await user.should_see("Saved ed@example.com (viewer)", retries=WAIT)
    await eventually(lambda: _row(user, "ed@example.com")["role"] == "viewer")
    assert get_user(admin_actor(), ed.id).role == "viewer"

    # the last admin cannot step down: the reason, in the dialog
    user.find(marker="users-table").trigger("edit", {"id": me["id"]})
    await user.should_see(marker="edit-user-title")
    set_value(user, "edit-user-role", "editor")
    user.find(marker="edit-user-save").click()
    await user.should_see("is the last active admin: make another user admin first", retries=WAIT)
    user.find(marker="edit-user-cancel").click()
    assert get_user(admin_actor(), me["id"]).role == "admin"

    # deactivate (asked first), then activate again
    user.find(marker="users-table").trigger("toggle", {"id": ed.id})
    await user.should_see(marker="confirm-ok")
    user.find(marker="confirm-ok").click()
    await eventually(lambda: _row(user, "ed@example.com")["active"] == "no")
    with pytest.raises(AuthenticationRequired):
        authenticate("ed@example.com", "editor-pass-1")
    user.find(marker="users-table").trigger("toggle", {"id": ed.id})
    await eventually(lambda: _row(user, "ed@example.com")["active"] == "yes")

    # reset the password: the old one stops working
    user.find(marker="users-table").trigger("password", {"id": ed.id})
    await user.should_see("Set a new password for ed@example.com")
    user.find(marker="new-password").type("reset-pass-123")
    user.find(marker="repeat-password").type("reset-pass-124")
    user.find(marker="password-save").click()
    await user.should_see("The two new passwords differ.")
    user.find(marker="repeat-password").clear().type("reset-pass-123")
    user.find(marker="password-save").click()
    await user.should_see("The password of ed@example.com was changed", retries=WAIT)
    assert authenticate("ed@example.com", "reset-pass-123").id == ed.id

    # delete (asked first)
    user.find(marker="users-table").trigger("delete", {"id": ed.id})
    await user.should_see(marker="confirm-ok")
    user.find(marker="confirm-ok").click()
    await user.should_see("Deleted ed@example.com", retries=WAIT)
    await eventually(lambda: [r["email"] for r in table_rows(user, "users-table")] == [ADMIN_EMAIL])
    assert [u.email for u in list_users(admin_actor())] == [ADMIN_EMAIL]


async def test_everyone_changes_their_own_password(app_env, user: User) -> None:
    make_user("vi@example.com", "viewer-pass-1", Role.viewer)
    await login(user, "vi@example.com", "viewer-pass-1")
    user.find(marker="change-password").click()
    await user.should_see("Change your password")
    user.find(marker="current-password").type("not-my-password")
    user.find(marker="new-password").type("viewer-new-pass-1")
    user.find(marker="repeat-password").type("viewer-new-pass-1")
    user.find(marker="password-save").click()
    await user.should_see("Current password: is not your current password", retries=WAIT)
    user.find(marker="current-password").clear().type("viewer-pass-1")
    user.find(marker="password-save").click()
    await user.should_see("Your password was changed", retries=WAIT)
    await user.should_not_see(marker="password-title")
    with pytest.raises(AuthenticationRequired):
        authenticate("vi@example.com", "viewer-pass-1")
    assert authenticate("vi@example.com", "viewer-new-pass-1").role == "viewer"
