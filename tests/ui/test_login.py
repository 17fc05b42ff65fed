"""Signing in, the login guard, and the first-admin form."""

from __future__ import annotations

import pytest
from nicegui.testing import User

from tests.conftest import ADMIN_EMAIL
from tests.ui.helpers import WAIT, login


@pytest.fixture
def no_admin_env(app_env, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh app with no bootstrap admin (request it before `user`)."""
    monkeypatch.delenv("CDC_STUDIO_ADMIN_EMAIL")
    monkeypatch.delenv("CDC_STUDIO_ADMIN_PASSWORD")


async def test_anonymous_visit_redirects_to_login(app_env, user: User) -> None:
    await user.open("/connections")
    await user.should_see(marker="login")
    await user.should_not_see(marker="user-menu")


async def test_wrong_password_shows_an_error(app_env, user: User) -> None:
    await user.open("/login")
    user.find(marker="email").type(ADMIN_EMAIL)
    user.find(marker="password").type("not-the-password")
    user.find(marker="login").click()
    await user.should_see("wrong email or password", retries=WAIT)
    await user.should_not_see(marker="user-menu")


async def test_login_shows_the_dashboard(app_env, user: User) -> None:
    await login(user)
    await user.should_see("Dashboard")
    await user.should_see(marker="stat-connections")
    await user.should_see(f"{ADMIN_EMAIL} (admin)")


async def test_first_admin_form_creates_the_admin_and_signs_in(no_admin_env, user: User) -> None:
    await user.open("/login")
    await user.should_see(marker="create-admin", retries=WAIT)
    user.find(marker="full-name").type("Ada Admin")
    user.find(marker="email").type("ada@example.com")
    user.find(marker="password").type("first-admin-pw")
    user.find(marker="confirm").type("first-admin-pw")
    user.find(marker="create-admin").click()
    await user.should_see("ada@example.com (admin)", retries=WAIT)
    await user.should_see("Dashboard")


async def test_first_admin_form_rejects_mismatched_passwords(no_admin_env, user: User) -> None:
    await user.open("/setup")
    user.find(marker="email").type("ada@example.com")
    user.find(marker="password").type("first-admin-pw")
    user.find(marker="confirm").type("something-else")
    user.find(marker="create-admin").click()
    await user.should_see("the passwords do not match", retries=WAIT)


async def test_logout_returns_to_login(app_env, user: User) -> None:
    await login(user)
    user.find(marker="logout").click()
    await user.should_see(marker="login", retries=WAIT)
