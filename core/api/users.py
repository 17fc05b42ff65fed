"""User accounts (admins only)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from core import audit, users
from core.api.deps import current_actor
from core.audit import AuditPublic
from core.users import Actor, UserCreate, UserPublic

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


audit_router = APIRouter(prefix="/audit", tags=["audit"])


@audit_router.get("", response_model=list[AuditPublic])
def audit_trail(limit: int = Query(100, ge=1, le=1000), actor: Actor = Depends(current_actor)) -> list[AuditPublic]:
    """Who did what and when (admins only)."""
    return audit.recent(actor, limit)
