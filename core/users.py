"""Users: the first admin, login, and admin-managed accounts."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from functools import lru_cache

from pydantic import BaseModel, EmailStr, Field

from core import audit as audit_log
from core import login_guard
from core.actor import Actor
from core.config import Settings
from core.errors import AuthenticationRequired, Conflict, NotFound, TooManyAttempts, ValidationFailed
from core.security import Action, Role, hash_password, require, verify_password
from core.validation import validated
from data import users as users_db
from data.db import serialize, session_scope
from data.models import User

log = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 8


@lru_cache(maxsize=1)
def _common_passwords() -> frozenset[str]:
    """The 30,000 most used passwords (zxcvbn's list, from leaked password sets)."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS  # noqa: PLC0415 - loaded on first use

    return frozenset(FREQUENCY_LISTS["passwords"])


def check_password(password: str, email: str, field: str = "password") -> None:
    """The password policy beyond its length: not the email nor the name before its @, not a common password
    (ValidationFailed on `field`, never echoing the password)."""
    lowered, address = password.strip().lower(), email.strip().lower()
    if lowered in {address, address.split("@")[0]}:
        raise ValidationFailed(field, "must not be your email or the name in it")
    if lowered in _common_passwords():
        raise ValidationFailed(field, "is one of the most common passwords: choose another")


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
    must_change: bool = False  # an admin reset the password: the person must set their own


def _fields(user: User) -> dict:
    """What the audit trail shows of an account (never its password hash)."""
    return {"email": user.email, "full_name": user.full_name, "role": user.role, "is_active": user.is_active}


def _public(user: User) -> UserPublic:
    public = UserPublic.model_validate(user, from_attributes=True)
    public.must_change = user.must_change_password
    return public


def needs_first_admin() -> bool:
    """True while no account exists: the first visit then offers to create the admin."""
    with session_scope() as session:
        return users_db.count_users(session=session) == 0


def _insert(session, data: UserCreate) -> User:  # noqa: ANN001
    if users_db.get_user_by_email(session=session, email=str(data.email)):
        raise Conflict(f"a user with the email {data.email} already exists")
    check_password(data.password, str(data.email))
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
        serialize(session)  # two first admins at once (replicas starting together): one wins
        if users_db.count_users(session=session):
            raise Conflict("the first admin already exists; sign in instead")
        user = _insert(session, data)
        audit_log.log(
            Actor.of(user), "user.create_first_admin", object_type="user", object_id=user.id, target=user.email,
            after=_fields(user), session=session,
        )  # fmt: skip
        return _public(user)


def bootstrap_admin(settings: Settings) -> None:
    """On start, create the admin from CDC_STUDIO_ADMIN_EMAIL/PASSWORD if no account exists yet."""
    if not (settings.admin_email and settings.admin_password):
        return
    if not needs_first_admin():
        return
    try:
        create_first_admin(settings.admin_email, settings.admin_password.get_secret_value())
    except Conflict:
        return  # another app process on this database made it a moment ago
    log.info("created the first admin account %s from the environment", settings.admin_email)


_DUMMY_HASH = hash_password("an unknown account still costs one password check")


def authenticate(email: str, password: str, client_addr: str = "") -> Actor:
    """The actor for valid credentials; AuthenticationRequired otherwise, with the same message (and about the
    same time) for an unknown email and a wrong password. TooManyAttempts while the account or the client
    address is locked (see core.login_guard), even for the right password. Failures are audited as
    `login_failed`, successes as `login`."""
    email = email.strip()
    try:
        login_guard.check(email, client_addr)
    except TooManyAttempts as exc:
        audit_log.log(
            None, "login_failed", email=email, actor_type="anonymous", object_type="user", target=email,
            outcome="refused", detail=f"locked: {exc}",
        )  # fmt: skip
        raise
    with session_scope() as session:
        user = users_db.get_user_by_email(session=session, email=email)
        matches = verify_password(user.password_hash if user else _DUMMY_HASH, password)
        actor = Actor.of(user) if user is not None and user.is_active and matches else None
    login_guard.note(email, client_addr, ok=actor is not None)
    if actor is None:
        audit_log.log(
            None, "login_failed", email=email, actor_type="anonymous", object_type="user", target=email,
            outcome="failed", detail="wrong email or password",
        )  # fmt: skip
        raise AuthenticationRequired("wrong email or password")
    audit_log.log(actor, "login", object_type="user", object_id=actor.id, target=actor.email)
    return actor


def actor_by_id(user_id: int, issued_at: float | None = None) -> Actor:
    """The actor for a user id from a login token or UI session begun at `issued_at` (epoch seconds);
    AuthenticationRequired if the account is gone or disabled, or the session began before its password last
    changed (`sessions_valid_after`; a role change needs none: the role is read at each request)."""
    with session_scope() as session:
        user = users_db.get_user(session=session, user_id=user_id)
        if user is None or not user.is_active:
            raise AuthenticationRequired("the account no longer exists or is disabled")
        cut = user.sessions_valid_after
        if cut is not None and (issued_at is None or issued_at < _aware(cut).timestamp()):
            raise AuthenticationRequired("this session ended when the password changed: sign in again")
        return Actor.of(user)


def _aware(value: datetime) -> datetime:
    """SQLite gives datetimes back without their zone: they were written in UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def list_users(actor: Actor) -> list[UserPublic]:
    """Every account (admins only)."""
    require(actor, Action.manage_users)
    with session_scope() as session:
        return [_public(u) for u in users_db.list_users(session=session)]


def create_user(actor: Actor, data: UserCreate) -> UserPublic:
    """Create an account (admins only)."""
    require(actor, Action.manage_users)
    with session_scope() as session:
        user = _insert(session, data)
        audit_log.log(
            actor, "user.create", object_type="user", object_id=user.id, target=user.email, after=_fields(user),
            session=session,
        )  # fmt: skip
        return _public(user)


def get_user(actor: Actor, user_id: int) -> UserPublic:
    require(actor, Action.manage_users)
    with session_scope() as session:
        user = users_db.get_user(session=session, user_id=user_id)
        if user is None:
            raise NotFound(f"user {user_id} not found")
        return _public(user)


class UserUpdate(BaseModel):
    """An admin's edit of an account: only the fields given change."""

    role: Role | None = None
    is_active: bool | None = None
    full_name: str | None = Field(default=None, max_length=200)


class PasswordReset(BaseModel):
    """The new password an admin sets for an account; `must_change`: a temporary one, that the person must
    replace with their own at their next sign-in (until then they can do nothing else)."""

    password: str = Field(min_length=MIN_PASSWORD_LENGTH, max_length=200)
    must_change: bool = False


class PasswordChange(BaseModel):
    """One's own password change: the current password proves it is the account's owner."""

    current_password: str = Field(max_length=200)
    new_password: str = Field(min_length=MIN_PASSWORD_LENGTH, max_length=200)


def _load(session, user_id: int) -> User:  # noqa: ANN001
    user = users_db.get_user(session=session, user_id=user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    return user


def _keeps_an_admin(session, user: User, role: str, active: bool) -> None:  # noqa: ANN001
    """Refuse a change that would leave no active admin: nobody could manage users any more."""
    stays_admin = role == Role.admin and active
    if user.role == Role.admin and user.is_active and not stays_admin:
        if users_db.count_active_admins(session=session, excluding=user.id) == 0:
            raise Conflict(f"{user.email} is the last active admin: make another user admin first")


def update_user(actor: Actor, user_id: int, data: UserUpdate) -> UserPublic:
    """Change an account's role, active flag or name (admins only; never leaves the app without an admin)."""
    require(actor, Action.manage_users)
    with session_scope() as session:
        user = _load(session, user_id)
        role = data.role.value if data.role is not None else user.role
        active = data.is_active if data.is_active is not None else user.is_active
        if user.id == actor.id and not active:
            raise Conflict("you cannot deactivate your own account")
        _keeps_an_admin(session, user, role, active)
        before = _fields(user)
        if data.full_name is not None:
            user.full_name = data.full_name.strip()
        user.role, user.is_active = role, active
        session.add(user)
        session.flush()
        audit_log.log(
            actor, "user.update", object_type="user", object_id=user.id, target=user.email, before=before,
            after=_fields(user), session=session,
        )  # fmt: skip
        return _public(user)


def reset_password(actor: Actor, user_id: int, data: PasswordReset) -> None:
    """Set a new password for an account (admins only); the person signs in with it from now on."""
    require(actor, Action.manage_users)
    with session_scope() as session:
        user = _load(session, user_id)
        check_password(data.password, user.email)
        user.password_hash = hash_password(data.password)
        user.password_changed_at = user.sessions_valid_after = datetime.now(UTC)  # signed in elsewhere: ended
        user.must_change_password = data.must_change
        session.add(user)
        audit_log.log(
            actor, "user.reset_password", object_type="user", object_id=user.id, target=user.email,
            before={"password": "old"}, after={"password": "new"},
            detail="must change it at next sign-in" if data.must_change else "", session=session,
        )  # fmt: skip


def delete_user(actor: Actor, user_id: int) -> None:
    """Delete an account (admins only; not one's own, not the last active admin)."""
    require(actor, Action.manage_users)
    with session_scope() as session:
        user = _load(session, user_id)
        if user.id == actor.id:
            raise Conflict("you cannot delete your own account")
        _keeps_an_admin(session, user, Role.viewer.value, False)
        email, before = user.email, _fields(user)
        users_db.delete_user(session=session, user=user)
        audit_log.log(
            actor, "user.delete", object_type="user", object_id=user_id, target=email, before=before, session=session
        )


def change_own_password(actor: Actor, data: PasswordChange) -> None:
    """Change the signed-in user's own password; the current password is required (any role)."""
    with session_scope() as session:
        user = _load(session, actor.id)
        if not verify_password(user.password_hash, data.current_password):
            raise ValidationFailed("current_password", "is not your current password")
        check_password(data.new_password, user.email, "new_password")
        user.password_hash = hash_password(data.new_password)
        user.password_changed_at = user.sessions_valid_after = datetime.now(UTC)  # other sessions end
        session.add(user)
        user.must_change_password = False
        audit_log.log(
            actor, "user.change_password", object_type="user", object_id=user.id, target=user.email,
            before={"password": "old"}, after={"password": "new"}, session=session,
        )  # fmt: skip
