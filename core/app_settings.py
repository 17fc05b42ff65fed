"""The installation's admin settings, and who may see row data.

Row data (the values of captured rows, sample rows) is visible to admins and editors; viewers see it
only when an admin turned on "viewers see data" (off by default: read-only people get the shape of
the data, not its content).
"""

from __future__ import annotations

from pydantic import BaseModel

from core import audit
from core.security import Action, Role, require
from core.users import Actor
from data import app_settings as settings_db
from data.db import session_scope

VIEWERS_SEE_DATA = "viewers_see_data"


class SettingsView(BaseModel):
    """The admin settings as the Settings page and the API show them."""

    viewers_see_data: bool = False
    can_edit: bool = False  # whether the actor may change them


def _viewers_see_data() -> bool:
    with session_scope() as session:
        stored = settings_db.get_setting(session=session, key=VIEWERS_SEE_DATA)
        return bool(stored and stored.value.get("enabled"))


def viewers_see_data() -> bool:
    """Whether an admin allowed viewers to see row data (default no)."""
    return _viewers_see_data()


def can_see_data(actor: Actor) -> bool:
    """Whether the actor may see row data: admins and editors always, viewers per the admin setting."""
    if actor.role in (Role.admin, Role.editor):
        return True
    if actor.role == Role.viewer:
        return _viewers_see_data()
    return False


def get_settings_view(actor: Actor) -> SettingsView:
    """The admin settings (anyone signed in may read them; only admins may change them)."""
    require(actor, Action.read)
    return SettingsView(viewers_see_data=_viewers_see_data(), can_edit=actor.role == Role.admin)


def set_viewers_see_data(actor: Actor, value: bool) -> SettingsView:
    """Allow or forbid viewers to see row data (admins only); audited."""
    require(actor, Action.manage_settings)
    before = {VIEWERS_SEE_DATA: _viewers_see_data()}
    with session_scope() as session:
        settings_db.put_setting(
            session=session, key=VIEWERS_SEE_DATA, value={"enabled": bool(value)}, updated_by=actor.email
        )
        audit.log(
            actor, "settings.viewers_see_data", object_type="setting", object_id=VIEWERS_SEE_DATA,
            target=VIEWERS_SEE_DATA, before=before, after={VIEWERS_SEE_DATA: bool(value)},
            detail="yes" if value else "no", session=session,
        )  # fmt: skip
    return get_settings_view(actor)
