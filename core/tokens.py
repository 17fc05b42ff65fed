"""Personal API tokens: made by a user for scripts and CI, with a role no higher than theirs, optionally expiring.

A token is `cdcs_` + 43 URL-safe characters. Only its SHA-256 is stored (and its first characters, `prefix`,
to tell tokens apart in lists): the token itself is shown once, in the answer that creates it. A request with
`Authorization: Bearer cdcs_...` acts as the token's user with the lower of the token's role and the user's
current role.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator

from core import audit
from core.actor import Actor
from core.errors import AuthenticationRequired, NotFound, ValidationFailed
from core.security import Action, Role, can, refused
from core.validation import validated
from data import tokens as tokens_db
from data import users as users_db
from data.db import session_scope
from data.models import ApiToken

TOKEN_PREFIX = "cdcs_"
"""What every personal API token starts with (a login JWT starts with `eyJ`)."""
PREFIX_LENGTH = 12
TOUCH_EVERY = timedelta(minutes=1)
"""`last_used_at` is written at most this often per token, not on every request."""

_RANK = {Role.viewer.value: 0, Role.editor.value: 1, Role.admin.value: 2}


class TokenCreate(BaseModel):
    """A new token: a name, a role (default: yours) and an optional expiry (a time, or days from now)."""

    name: str = Field(min_length=1, max_length=100)
    role: Role | None = None
    expires_at: datetime | None = None
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)

    @field_validator("name")
    @classmethod
    def _strip(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()

    @model_validator(mode="after")
    def _one_expiry(self) -> TokenCreate:
        if self.expires_at is not None and self.expires_in_days is not None:
            raise ValueError("give expires_at or expires_in_days, not both")
        return self


class TokenCreated(BaseModel):
    """The answer to a create: the only time `token` is shown."""

    id: int
    name: str
    role: str
    token: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None


class TokenPublic(BaseModel):
    """A token as lists show it (never the token itself)."""

    id: int
    name: str
    role: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    state: str  # active | expired | revoked
    user_id: int
    user_email: str


def is_api_token(text: str) -> bool:
    """Whether a bearer credential is a personal API token (rather than a login token)."""
    return text.startswith(TOKEN_PREFIX)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _aware(at: datetime | None) -> datetime | None:
    """SQLite gives naive datetimes back: they are UTC."""
    return at.replace(tzinfo=UTC) if at is not None and at.tzinfo is None else at


def _state(token: ApiToken, now: datetime) -> str:
    if token.revoked_at is not None:
        return "revoked"
    expires = _aware(token.expires_at)
    return "expired" if expires is not None and expires <= now else "active"


def _public(token: ApiToken, email: str) -> TokenPublic:
    assert token.id is not None
    return TokenPublic(
        id=token.id,
        name=token.name,
        role=token.role,
        prefix=token.prefix,
        created_at=_aware(token.created_at) or token.created_at,
        expires_at=_aware(token.expires_at),
        last_used_at=_aware(token.last_used_at),
        revoked_at=_aware(token.revoked_at),
        state=_state(token, datetime.now(UTC)),
        user_id=token.user_id,
        user_email=email,
    )


def _fields(token: ApiToken, email: str) -> dict[str, Any]:
    """What the audit trail keeps of a token."""
    return _public(token, email).model_dump(mode="json", exclude={"id", "last_used_at", "state"})


def _expiry(data: TokenCreate, now: datetime) -> datetime | None:
    if data.expires_in_days is not None:
        return now + timedelta(days=data.expires_in_days)
    expires = _aware(data.expires_at)
    if expires is not None and expires <= now:
        raise ValidationFailed("expires_at", "is in the past")
    return expires


def roles_up_to(role: str) -> list[str]:
    """The roles a user with `role` may give a token (their own and lower), highest first."""
    rank = _RANK.get(role, -1)
    return [r for r, n in sorted(_RANK.items(), key=lambda kv: -kv[1]) if n <= rank]


def create_token(actor: Actor, data: TokenCreate) -> TokenCreated:
    """Make a token for the actor; its role may not be higher than the actor's (PermissionDenied)."""
    role = data.role.value if data.role is not None else actor.role
    if role not in roles_up_to(actor.role):
        raise refused(actor, f"a token's role may not be higher than yours ({actor.role})", "token.create")
    now = datetime.now(UTC)
    text = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        user_id=actor.id,
        name=data.name,
        role=role,
        prefix=text[:PREFIX_LENGTH],
        token_hash=_digest(text),
        created_at=now,
        expires_at=_expiry(data, now),
    )
    with session_scope() as session:
        row = tokens_db.add_token(session=session, token=row)
        assert row.id is not None
        audit.log(
            actor,
            "token.create",
            object_type="token",
            object_id=row.id,
            target=row.name,
            after=_fields(row, actor.email),
            session=session,
        )
        return TokenCreated(
            id=row.id,
            name=row.name,
            role=row.role,
            token=text,
            prefix=row.prefix,
            created_at=now,
            expires_at=_aware(row.expires_at),
        )


def create_token_for(actor: Actor, name: str, role: str | None = None, expires_in_days: int | None = None) -> str:
    """The text of a new token (a shortcut for pages and tests)."""
    data = validated(TokenCreate, name=name, role=role, expires_in_days=expires_in_days)
    return create_token(actor, data).token


def list_tokens(actor: Actor) -> list[TokenPublic]:
    """The actor's own tokens; an admin's list holds everyone's."""
    owner = None if can(actor.role, Action.manage_users) else actor.id
    with session_scope() as session:
        return [_public(t, email) for t, email in tokens_db.list_tokens(session=session, user_id=owner)]


def revoke_token(actor: Actor, token_id: int) -> None:
    """Revoke one of the actor's tokens (an admin: anyone's); someone else's is NotFound for non-admins."""
    with session_scope() as session:
        token = tokens_db.get_token(session=session, token_id=token_id)
        if token is None or (token.user_id != actor.id and not can(actor.role, Action.manage_users)):
            raise NotFound(f"token {token_id} not found")
        if token.revoked_at is not None:
            return
        owner = users_db.get_user(session=session, user_id=token.user_id)
        email = owner.email if owner else ""
        before = _fields(token, email)
        token.revoked_at = datetime.now(UTC)
        session.add(token)
        audit.log(
            actor,
            "token.revoke",
            object_type="token",
            object_id=token_id,
            target=token.name,
            before=before,
            after=_fields(token, email),
            session=session,
        )


def actor_for_token(text: str) -> Actor:
    """The actor a personal API token acts as; AuthenticationRequired if unknown, revoked, expired or its user
    is disabled or gone. Its effective role is the lower of the token's and the user's current role."""
    now = datetime.now(UTC)
    with session_scope() as session:
        token = tokens_db.get_by_hash(session=session, token_hash=_digest(text))
        if token is None:
            raise AuthenticationRequired("unknown API token")
        if token.revoked_at is not None:
            raise AuthenticationRequired("the API token was revoked")
        expires = _aware(token.expires_at)
        if expires is not None and expires <= now:
            raise AuthenticationRequired(f"the API token expired at {expires.isoformat(timespec='seconds')}")
        user = users_db.get_user(session=session, user_id=token.user_id)
        if user is None or not user.is_active:
            raise AuthenticationRequired("the API token's account no longer exists or is disabled")
        last = _aware(token.last_used_at)
        assert token.id is not None
        if last is None or now - last >= TOUCH_EVERY:
            tokens_db.touch(session=session, token_id=token.id, at=now)
        role = min(token.role, user.role, key=lambda r: _RANK.get(r, -1))
        assert user.id is not None
        # a pending forced reset holds for the account's tokens too: only the password change until it is done
        return Actor(
            id=user.id, email=user.email, role=role, token_id=token.id, must_change_password=user.must_change_password
        )
