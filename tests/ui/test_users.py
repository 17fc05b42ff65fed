"""The users page: admins list and create accounts; other roles are turned away."""

from __future__ import annotations

from nicegui.testing import User

from core.security import Role
from core.users import list_users
from tests.conftest import ADMIN_EMAIL
from tests.ui.helpers import WAIT, admin_actor, eventually, login, make_user, set_value, table_rows


async def test_admin_lists_and_creates_users(app_env, user: User) -> None:
    await login(user)
    await user.open("/users")
    rows = await eventually(lambda: table_rows(user, "users-table"))
    assert [r["email"] for r in rows] == [ADMIN_EMAIL] and rows[0]["role"] == "admin"

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
