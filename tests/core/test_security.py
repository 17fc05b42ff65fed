"""Secret encryption, password hashing, tokens and roles."""

from __future__ import annotations

import pytest

from core.config import get_settings
from core.errors import AuthenticationRequired, PermissionDenied, StudioError
from core.security import (
    Action,
    can,
    create_access_token,
    decode_access_token,
    decrypt_secret,
    encrypt_secret,
    hash_password,
    require,
    verify_password,
)


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CDC_STUDIO_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("CDC_STUDIO_SECRET_KEY", raising=False)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_secret_round_trip_with_generated_key_file(data_dir) -> None:
    token = encrypt_secret("pa;ss wörd")
    assert "pa;ss" not in token
    assert decrypt_secret(token) == "pa;ss wörd"
    key = data_dir / "secret.key"
    assert key.stat().st_mode & 0o777 == 0o600
    first = key.read_bytes()
    encrypt_secret("again")
    assert key.read_bytes() == first


def test_changed_key_is_a_clear_error(data_dir, monkeypatch) -> None:
    token = encrypt_secret("x")
    monkeypatch.setenv("CDC_STUDIO_SECRET_KEY", "another key entirely")
    get_settings.cache_clear()
    with pytest.raises(StudioError, match="CDC_STUDIO_SECRET_KEY"):
        decrypt_secret(token)


def test_env_secret_key_wins(data_dir, monkeypatch) -> None:
    monkeypatch.setenv("CDC_STUDIO_SECRET_KEY", "k" * 40)
    get_settings.cache_clear()
    assert decrypt_secret(encrypt_secret("y")) == "y"
    assert not (data_dir / "secret.key").exists()


def test_password_hash() -> None:
    h = hash_password("correct horse")
    assert h.startswith("$argon2id$")
    assert verify_password(h, "correct horse")
    assert not verify_password(h, "wrong horse")
    assert not verify_password("garbage", "x")


def test_tokens(data_dir) -> None:
    assert decode_access_token(create_access_token(7, "viewer")) == 7
    with pytest.raises(AuthenticationRequired):
        decode_access_token("abc.def.ghi")


def test_roles() -> None:
    assert can("admin", Action.manage_users)
    assert can("editor", Action.manage_connections) and not can("editor", Action.manage_users)
    assert can("viewer", Action.read) and not can("viewer", Action.manage_connections)
    assert not can("nobody", Action.read)
    with pytest.raises(PermissionDenied, match="viewer"):
        require("viewer", Action.manage_pipelines)
