"""The account page: who I am, my password, what a session lasts; reached from the account menu."""

from __future__ import annotations

from nicegui.testing import User

from core.users import authenticate
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.ui.helpers import WAIT, login


async def test_the_account_page_shows_me_and_changes_my_password(app_env, user: User) -> None:
    await login(user)
    await user.open("/account")
    await user.should_see(marker="account-email", retries=WAIT)
    assert user.find(marker="account-email").elements.pop().text == ADMIN_EMAIL
    assert user.find(marker="account-role").elements.pop().text == "admin"
    await user.should_see("60 minutes without activity", retries=WAIT)
    user.find(marker="account-change-password").click()
    user.find(marker="current-password").type(ADMIN_PASSWORD)
    user.find(marker="new-password").type("a-new-admin-pass-2")
    user.find(marker="repeat-password").type("a-new-admin-pass-2")
    user.find(marker="password-save").click()
    await user.should_see("Your password was changed", retries=WAIT)
    assert authenticate(ADMIN_EMAIL, "a-new-admin-pass-2").email == ADMIN_EMAIL
    # this session survives its own password change (others end)
    await user.open("/account")
    await user.should_see(marker="account-email", retries=WAIT)
