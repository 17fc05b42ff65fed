"""Users: the first admin, login, and admin-managed accounts."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, EmailStr, Field

from core.config import Settings
from core.errors import AuthenticationRequired, Conflict, NotFound
from core.security import Action, Role, hash_password, require, verify_password
from core.validation import validated
from data import audit
from data import users as users_db
from data.db import session_scope
from data.models import User

log = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 8


@dataclass(frozen=True)
class Actor:
    """The signed-in user an action is performed for."""

    id: int
    email: str
    role: str

    @classmethod
    def of(cls, user: User) -> Actor:
        assert user.id is not None
        return cls(id=user.id, email=user.email, role=user.role)


class UserCreate(BaseModel):
    email: EmailStr
    password: str = Field(min_length=MIN_PASSWORD_LENGTH, max_length=200)
    role: Role = Role.viewer
    full_name: str = Field(default="", max_length=200)


class UserPublic(BaseModel):
    id: int
    email: str
    full_name: str
    role: str
    is_active: bool
    created_at: datetime


def _public(user: User) -> UserPublic:
    return UserPublic.model_validate(user, from_attributes=True)


def needs_first_admin() -> bool:
    """True while no account exists: the first visit then offers to create the admin."""
    with session_scope() as session:
        return users_db.count_users(session=session) == 0


def _insert(session, data: UserCreate) -> User:  # noqa: ANN001
    if users_db.get_user_by_email(session=session, email=str(data.email)):
        raise Conflict(f"a user with the email {data.email} already exists")
    user = User(
        email=str(data.email),
        full_name=data.full_name,
        role=data.role.value,
        password_hash=hash_password(data.password),
    )
    return users_db.add_user(session=session, user=user)


def create_first_admin(email: str, password: str, full_name: str = "") -> UserPublic:
    """Create the first admin; refused once any account exists."""
    data = validated(UserCreate, email=email, password=password, role=Role.admin, full_name=full_name)
    with session_scope() as session:
        if users_db.count_users(session=session):
            raise Conflict("the first admin already exists; sign in instead")
        user = _insert(session, data)
        audit.record(session=session, user_email=user.email, action="user.create_first_admin", target=user.email)
        return _public(user)


def bootstrap_admin(settings: Settings) -> None:
    """On start, create the admin from CDC_STUDIO_ADMIN_EMAIL/PASSWORD if no account exists yet."""
    if not (settings.admin_email and settings.admin_password):
        return
    if not needs_first_admin():
        return
    create_first_admin(settings.admin_email, settings.admin_password.get_secret_value())
    log.info("created the first admin account %s from the environment", settings.admin_email)


def authenticate(email: str, password: str) -> Actor:
    """The actor for valid credentials; AuthenticationRequired otherwise (same message either way)."""
    with session_scope() as session:
        user = users_db.get_user_by_email(session=session, email=email.strip())
        if user is None or not user.is_active or not verify_password(user.password_hash, password):
            raise AuthenticationRequired("wrong email or password")
        return Actor.of(user)


def actor_by_id(user_id: int) -> Actor:
    """The actor for a user id from a token or session; AuthenticationRequired if gone/disabled."""
    with session_scope() as session:
        user = users_db.get_user(session=session, user_id=user_id)
        if user is None or not user.is_active:
            raise AuthenticationRequired("the account no longer exists or is disabled")
        return Actor.of(user)


def list_users(actor: Actor) -> list[UserPublic]:
    """Every account (admins only)."""
    require(actor.role, Action.manage_users)
    with session_scope() as session:
        return [_public(u) for u in users_db.list_users(session=session)]


def create_user(actor: Actor, data: UserCreate) -> UserPublic:
    """Create an account (admins only)."""
    require(actor.role, Action.manage_users)
    with session_scope() as session:
        user = _insert(session, data)
        audit.record(
            session=session, user_email=actor.email, action="user.create", target=user.email, detail=f"role={user.role}"
        )
        return _public(user)


def get_user(actor: Actor, user_id: int) -> UserPublic:
    require(actor.role, Action.manage_users)
    with session_scope() as session:
        user = users_db.get_user(session=session, user_id=user_id)
        if user is None:
            raise NotFound(f"user {user_id} not found")
        return _public(user)
