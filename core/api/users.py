"""User accounts (admins only), one's own password, and the admin settings (the audit trail: core.api.audit)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel

from core import app_settings, users
from core.api.deps import current_actor
from core.app_settings import SettingsView
from core.users import Actor, PasswordChange, PasswordReset, UserCreate, UserPublic, UserUpdate

router = APIRouter(prefix="/users", tags=["users"])


@router.get("", response_model=list[UserPublic])
def list_users(actor: Actor = Depends(current_actor)) -> list[UserPublic]:
    """Every account."""
    return users.list_users(actor)


@router.post("", response_model=UserPublic, status_code=201)
def create_user(body: UserCreate, actor: Actor = Depends(current_actor)) -> UserPublic:
    """Create an account with a role (admin, editor, viewer)."""
    return users.create_user(actor, body)


@router.get("/{user_id}", response_model=UserPublic)
def get_user(user_id: int, actor: Actor = Depends(current_actor)) -> UserPublic:
    """One account."""
    return users.get_user(actor, user_id)


@router.put("/{user_id}", response_model=UserPublic)
def update_user(user_id: int, body: UserUpdate, actor: Actor = Depends(current_actor)) -> UserPublic:
    """Change role, active flag or name; 409 if it would leave no active admin or deactivate yourself."""
    return users.update_user(actor, user_id, body)


@router.delete("/{user_id}", status_code=204)
def delete_user(user_id: int, actor: Actor = Depends(current_actor)) -> Response:
    """Delete an account; 409 for your own account or the last active admin."""
    users.delete_user(actor, user_id)
    return Response(status_code=204)


@router.post("/{user_id}/password", status_code=204)
def reset_password(user_id: int, body: PasswordReset, actor: Actor = Depends(current_actor)) -> Response:
    """Set a new password for an account (admins only)."""
    users.reset_password(actor, user_id, body)
    return Response(status_code=204)


# No prefix: one's own account and the settings live at their own paths (mounted as
# `audit_router`).
audit_router = APIRouter()


@audit_router.post("/auth/password", status_code=204, tags=["auth"])
def change_own_password(body: PasswordChange, actor: Actor = Depends(current_actor)) -> Response:
    """Change your own password (any role); the current password is required (422 if wrong)."""
    users.change_own_password(actor, body)
    return Response(status_code=204)


class SettingsUpdate(BaseModel):
    """The admin settings to change; left out keeps the value."""

    viewers_see_data: bool | None = None


@audit_router.get("/settings", response_model=SettingsView, tags=["settings"])
def get_app_settings(actor: Actor = Depends(current_actor)) -> SettingsView:
    """The admin settings (anyone signed in may read them; can_edit says whether you may change them)."""
    return app_settings.get_settings_view(actor)


@audit_router.put("/settings", response_model=SettingsView, tags=["settings"])
def update_app_settings(body: SettingsUpdate, actor: Actor = Depends(current_actor)) -> SettingsView:
    """Change the admin settings (admins only)."""
    if body.viewers_see_data is not None:
        return app_settings.set_viewers_see_data(actor, body.viewers_see_data)
    return app_settings.get_settings_view(actor)
