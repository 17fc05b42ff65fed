"""Password hashing (Argon2), secret encryption (Fernet), API tokens (JWT) and role permissions."""

from __future__ import annotations

import base64
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

from core.config import Settings, get_settings
from core.errors import AuthenticationRequired, PermissionDenied, StudioError

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


def require(role: str, action: Action) -> None:
    """Raise PermissionDenied unless the role may perform the action."""
    if not can(role, action):
        raise PermissionDenied(f"the role '{role}' may not {action.value.replace('_', ' ')}")


def hash_password(password: str) -> str:
    """An Argon2id hash of a user's password."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether the password matches the stored hash."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _master_secret(settings: Settings) -> bytes:
    """The secret everything is derived from: CDC_STUDIO_SECRET_KEY, else a key file made once."""
    if settings.secret_key is not None and settings.secret_key.get_secret_value():
        return settings.secret_key.get_secret_value().encode()
    path = Path(settings.data_dir) / "secret.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL: two processes starting together must not write two different keys.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_bytes().strip()
        with os.fdopen(fd, "wb") as f:
            f.write(base64.urlsafe_b64encode(os.urandom(32)))
    return path.read_bytes().strip()


@lru_cache(maxsize=8)
def _derive(master: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"cdc-studio", info=purpose).derive(master)


def _fernet() -> Fernet:
    master = _master_secret(get_settings())
    return Fernet(base64.urlsafe_b64encode(_derive(master, b"connection-secrets")))


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
    return _derive(_master_secret(get_settings()), b"instance-tag").hex()[:6]


def token_signing_key() -> bytes:
    """The key API tokens and UI sessions are signed with."""
    return _derive(_master_secret(get_settings()), b"api-tokens")


def create_access_token(user_id: int, role: str) -> str:
    """A signed bearer token for the REST API."""
    settings = get_settings()
    now = datetime.now(UTC)
    claims = {"sub": str(user_id), "role": role, "iat": now, "exp": now + timedelta(minutes=settings.token_ttl_minutes)}
    return jwt.encode(claims, token_signing_key(), algorithm="HS256")


def decode_access_token(token: str) -> int:
    """The user id in a valid token; AuthenticationRequired otherwise."""
    try:
        claims = jwt.decode(token, token_signing_key(), algorithms=["HS256"])
        return int(claims["sub"])
    except (jwt.PyJWTError, KeyError, ValueError) as exc:
        raise AuthenticationRequired("the token is invalid or expired") from exc
