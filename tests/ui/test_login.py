"""Signing in, the login guard, and the first-admin form."""

from __future__ import annotations

import pytest
from nicegui import ui
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


async def test_api_docs_are_served_by_the_app_and_linked_from_the_account_menu(app_env, user: User) -> None:
    for path, script in (
        ("/docs", "/api-docs-assets/swagger-ui-bundle.js"),
        ("/redoc", "/api-docs-assets/redoc.standalone.js"),
    ):
        page = await user.http_client.get(path)
        assert page.status_code == 200, page.text
        assert script in page.text
        assert "cdn.jsdelivr.net" not in page.text and "fonts.googleapis" not in page.text  # nothing from outside
        asset = await user.http_client.get(script)
        assert asset.status_code == 200 and len(asset.content) > 100_000  # the real bundle, not a stub
    spec = (await user.http_client.get("/openapi.json")).json()
    assert spec["info"]["title"] == "CDC Studio API" and "/api/v1/pipelines" in spec["paths"]

    await login(user)
    user.find(marker="user-menu").click()
    await user.should_see(marker="api-docs")


def _active_nav(user: User) -> list[str]:
    return [e.props["href"] for e in user.find(marker="nav-active").elements]


async def test_the_current_page_is_highlighted_in_the_navigation(app_env, user: User) -> None:
    await login(user)
    assert _active_nav(user) == ["/"]
    await user.open("/events")
    await user.should_see(marker="events-table", retries=WAIT)
    assert _active_nav(user) == ["/events"]
    await user.open("/pipelines")
    await user.should_see(marker="pipelines-table", retries=WAIT)
    assert _active_nav(user) == ["/pipelines"]


def _dark(user: User) -> bool | None:
    (mode,) = [e for e in user.current_layout.descendants() if isinstance(e, ui.dark_mode)]
    return mode.value


async def test_dark_mode_and_utc_are_remembered_per_user(app_env, user: User) -> None:
    await login(user)
    assert _dark(user) is False
    user.find(marker="user-menu").click()
    user.find(marker="toggle-dark").click()
    await user.open("/events")
    await user.should_see(marker="events-table", retries=WAIT)
    assert _dark(user) is True
    user.find(marker="toggle-utc").click()
    await user.open("/events")
    await user.should_see(marker="events-table", retries=WAIT)
    (table,) = [e for e in user.find(marker="events-table").elements if isinstance(e, ui.table)]
    assert "toLocaleString" not in table.slots["body-cell-applied_at"].template  # UTC, as asked
    user.find(marker="logout").click()
    await login(user)  # the choices outlive the session
    assert _dark(user) is True
    await user.should_see("Light mode")
    await user.should_see("Show local times")
