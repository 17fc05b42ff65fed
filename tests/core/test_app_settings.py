"""core.app_settings: "viewers see data" (default no, admin only to change) and can_see_data per role."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core import app_settings
from core.errors import PermissionDenied
from core.users import Actor
from data import audit, db
from data.db import session_scope

ADMIN = Actor(id=1, email="admin@example.com", role="admin")
EDITOR = Actor(id=2, email="editor@example.com", role="editor")
VIEWER = Actor(id=3, email="viewer@example.com", role="viewer")


@pytest.fixture
def app_db(tmp_path) -> Iterator[None]:
    previous = db._current_url
    db.init(f"sqlite:///{tmp_path / 'app.db'}")
    yield
    db._current_url = previous


def test_viewers_do_not_see_data_by_default(app_db: None) -> None:
    assert app_settings.can_see_data(ADMIN) is True
    assert app_settings.can_see_data(EDITOR) is True
    assert app_settings.can_see_data(VIEWER) is False
    view = app_settings.get_settings_view(VIEWER)
    assert view.viewers_see_data is False and view.can_edit is False
    assert app_settings.get_settings_view(ADMIN).can_edit is True


def test_admin_turns_it_on_and_off_audited(app_db: None) -> None:
    view = app_settings.set_viewers_see_data(ADMIN, True)
    assert view.viewers_see_data is True
    assert app_settings.can_see_data(VIEWER) is True
    assert app_settings.get_settings_view(VIEWER).viewers_see_data is True
    app_settings.set_viewers_see_data(ADMIN, False)
    assert app_settings.can_see_data(VIEWER) is False
    with session_scope() as session:
        entries = [(e.action, e.detail) for e in audit.recent(session=session)]
    assert entries[:2] == [("settings.viewers_see_data", "no"), ("settings.viewers_see_data", "yes")]


@pytest.mark.parametrize("actor", [EDITOR, VIEWER])
def test_only_admins_change_it(app_db: None, actor: Actor) -> None:
    with pytest.raises(PermissionDenied):
        app_settings.set_viewers_see_data(actor, True)
    assert app_settings.can_see_data(VIEWER) is False


def test_an_unknown_role_sees_nothing(app_db: None) -> None:
    assert app_settings.can_see_data(Actor(id=9, email="x@example.com", role="auditor")) is False
