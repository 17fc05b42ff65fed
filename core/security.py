"""Password hashing (Argon2), secret encryption (Fernet), API tokens (JWT) and role permissions."""

from __future__ import annotations

import base64
import logging
import os
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from core import audit
from core.actor import Actor
from core.config import Settings, get_settings
from core.errors import AuthenticationRequired, PermissionDenied, StudioError

log = logging.getLogger(__name__)

_hasher = PasswordHasher()


class Role(StrEnum):
    admin = "admin"
    editor = "editor"
    viewer = "viewer"


class Action(StrEnum):
    read = "read"
    manage_connections = "manage_connections"
    manage_pipelines = "manage_pipelines"
    manage_users = "manage_users"
    manage_settings = "manage_settings"  # the installation's admin settings (admins only)


_ALLOWED: dict[Role, set[Action]] = {
    Role.admin: set(Action),
    Role.editor: {Action.read, Action.manage_connections, Action.manage_pipelines},
    Role.viewer: {Action.read},
}


def can(role: str, action: Action) -> bool:
    """Whether a role may perform an action."""
    try:
        return action in _ALLOWED[Role(role)]
    except ValueError:
        return False


def require(who: Actor | str, action: Action) -> None:
    """Raise PermissionDenied unless the actor's role (or the role given) may perform the action. With the
    actor given, the refusal is recorded in the audit trail first (see `refused`), for the UI as for the API."""
    role = who if isinstance(who, str) else who.role
    if can(role, action):
        return
    message = f"the role '{role}' may not {action.value.replace('_', ' ')}"
    if isinstance(who, str):
        raise PermissionDenied(message)
    raise refused(who, message, action.value)


def refused(actor: Actor, message: str, what: str = "") -> PermissionDenied:
    """A PermissionDenied for `actor`, recorded in the audit trail (action request.refused, outcome refused:
    the request being served, else `what`), so that the API's 403 handler does not record it again. A trail
    that cannot be written is logged and the refusal raised all the same."""
    exc = PermissionDenied(message)
    try:
        target = audit.request_line.get() or what
        audit.log(actor, "request.refused", target=target, detail=message, outcome="refused")
        exc.audited = True
    except Exception:  # noqa: BLE001 - the refusal matters more than its record
        log.exception("the refusal of %s to %s could not be audited", actor.email, what or message)
    return exc


def hash_password(password: str) -> str:
    """An Argon2id hash of a user's password."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether the password matches the stored hash."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def key_file(settings: Settings) -> Path:
    """Where the generated master secret lives when CDC_STUDIO_SECRET_KEY is not set."""
    return Path(settings.data_dir) / "secret.key"


def new_master_secret() -> bytes:
    """A fresh random master secret, in the form a key file or CDC_STUDIO_SECRET_KEY holds it."""
    return base64.urlsafe_b64encode(os.urandom(32))


def existing_master_secret(settings: Settings) -> bytes | None:
    """The master secret if there is one (the environment's, else the key file's); never makes one."""
    if settings.secret_key is not None and settings.secret_key.get_secret_value():
        return settings.secret_key.get_secret_value().encode()
    path = key_file(settings)
    return path.read_bytes().strip() if path.exists() else None


def _master_secret(settings: Settings) -> bytes:
    """The secret everything is derived from: CDC_STUDIO_SECRET_KEY, else a key file made once."""
    if settings.secret_key is not None and settings.secret_key.get_secret_value():
        return settings.secret_key.get_secret_value().encode()
    path = key_file(settings)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL: two processes starting together must not write two different keys.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_bytes().strip()
        with os.fdopen(fd, "wb") as f:
            f.write(new_master_secret())
    return path.read_bytes().strip()


def master_secret(settings: Settings) -> bytes:
    """The master secret in use (made into the key file on first use when there is none)."""
    return _master_secret(settings)


@lru_cache(maxsize=8)
def _derive(master: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"cdc-studio", info=purpose).derive(master)


def fernet_for(master: bytes) -> Fernet:
    """The Fernet key stored secrets are encrypted with under a given master secret."""
    return Fernet(base64.urlsafe_b64encode(_derive(master, b"connection-secrets")))


def _fernet() -> Fernet:
    return fernet_for(_master_secret(get_settings()))


def encrypt_secret(plain: str) -> str:
    """Encrypt a connection password for storage."""
    return _fernet().encrypt(plain.encode()).decode()


def decrypt_secret(token: str) -> str:
    """Decrypt a stored connection password."""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise StudioError(
            "a stored password cannot be decrypted: the secret key changed (CDC_STUDIO_SECRET_KEY)"
        ) from exc


def instance_tag() -> str:
    """A short, stable name of this installation (from its secret key; replicas sharing the key share it).

    It keeps the names this app gives to shared outside objects (Kafka Connect connectors, topics)
    apart from another installation's, whose pipeline ids overlap with ours.
    """
    if settings_instance := get_settings().instance:
        return settings_instance
    master = _master_secret(get_settings())
    return _pinned_tags.get(master) or derived_instance_tag(master)


_pinned_tags: dict[bytes, str] = {}  # master secret -> the tag kept in the app database (it survives rotation)


def derived_instance_tag(master: bytes) -> str:
    """The instance tag a master secret gives when the app database keeps none."""
    return _derive(master, b"instance-tag").hex()[:6]


def pin_instance_tag(master: bytes, tag: str) -> None:
    """Use `tag` as the instance tag while `master` is the key (set at start from the app database)."""
    _pinned_tags[master] = tag


def token_signing_key() -> bytes:
    """The key API tokens and UI sessions are signed with."""
    return _derive(_master_secret(get_settings()), b"api-tokens")


def create_access_token(user_id: int, role: str) -> str:
    """A signed bearer token for the REST API: it lasts CDC_STUDIO_TOKEN_TTL_MINUTES, at most
    CDC_STUDIO_SESSION_MAX_HOURS; `iat` to the microsecond, so a password change ends the tokens issued before it."""
    settings = get_settings()
    now = datetime.now(UTC)
    ttl = timedelta(minutes=min(settings.token_ttl_minutes, settings.session_max_hours * 60))
    claims = {"sub": str(user_id), "role": role, "iat": now.timestamp(), "exp": now + ttl}
    return jwt.encode(claims, token_signing_key(), algorithm="HS256")


def decode_login_token(token: str) -> tuple[int, float | None]:
    """The user id and issue time (epoch seconds) of a valid token; AuthenticationRequired otherwise."""
    try:
        claims = jwt.decode(token, token_signing_key(), algorithms=["HS256"])
        issued = claims.get("iat")
        return int(claims["sub"]), float(issued) if issued is not None else None
    except (jwt.PyJWTError, KeyError, ValueError, TypeError) as exc:
        raise AuthenticationRequired("the token is invalid or expired") from exc


def decode_access_token(token: str) -> int:
    """The user id in a valid token; AuthenticationRequired otherwise."""
    return decode_login_token(token)[0]
