"""The Settings page: admins turn "Viewers can see row data" on and off; other roles are turned away."""

from __future__ import annotations

from nicegui import ui
from nicegui.testing import User

from core import app_settings
from core.security import Role
from tests.ui.helpers import WAIT, eventually, login, make_user


def _switch(user: User) -> ui.switch:
    (switch,) = [e for e in user.find(marker="viewers-see-data").elements if isinstance(e, ui.switch)]
    return switch


async def test_admin_sets_whether_viewers_see_row_data(app_env, user: User) -> None:
    viewer = make_user("vi@example.com", "viewer-pass-1", Role.viewer)
    await login(user)
    await user.should_see("Settings")  # in the navigation, for admins
    await user.open("/settings")
    await user.should_see("Viewers can see row data")
    assert _switch(user).value is False  # off by default
    assert app_settings.can_see_data(viewer) is False

    user.find(marker="viewers-see-data").click()
    await user.should_see("Viewers can now see row data", retries=WAIT)
    await eventually(lambda: app_settings.can_see_data(viewer))
    await user.open("/settings")  # stored, not just shown
    await eventually(lambda: _switch(user).value is True)

    user.find(marker="viewers-see-data").click()
    await user.should_see("Viewers no longer see row data", retries=WAIT)
    await eventually(lambda: not app_settings.can_see_data(viewer))


async def test_non_admins_are_turned_away(app_env, user: User) -> None:
    make_user("ed@example.com", "editor-pass-1", Role.editor)
    await login(user, "ed@example.com", "editor-pass-1")
    await user.should_not_see("Settings")  # no nav entry
    await user.open("/settings")
    await user.should_see("You need the admin role to change the settings.")
    await user.should_not_see(marker="viewers-see-data")
