"""The master secret key: the check that it opens the app database at start, and its rotation.

`python -m core.keys check` says whether the key opens the app database, `generate` prints a new key,
`rotate` re-encrypts every stored secret (connection passwords, channel secrets) under a new key in one
transaction of the app database.

The app database keeps a key check value (`app_settings` row `secret_key_check`: a Fernet token of a
known text under the key). At start, a key that does not open it — or no key at all while the
database holds secrets — stops the app before anything is written.

Rotation with a key file: the new key is written to `secret.key.new` next to `secret.key`, the
transaction commits, then `secret.key.new` atomically replaces `secret.key`. A crash between the commit
and the replace leaves a database under the new key and the new key in `secret.key.new`: the next start
(or `check`) sees that the pending key opens the database and finishes the replace. A crash before the
commit leaves the database as it was; the stale `secret.key.new` is never used and the next rotation
overwrites it.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.fernet import InvalidToken
from sqlalchemy import JSON, create_engine, inspect, text
from sqlalchemy.engine import Connection as SaConnection
from sqlalchemy.engine import make_url
from sqlmodel import Session, select

from core import audit
from core.config import Settings, get_settings
from core.errors import StudioError
from core.security import (
    derived_instance_tag,
    existing_master_secret,
    fernet_for,
    key_file,
    new_master_secret,
    pin_instance_tag,
)
from data import app_settings as settings_db
from data import db
from data.models import Channel, Connection

CHECK_KEY = "secret_key_check"
CHECK_TEXT = b"cdc-studio secret key check"
INSTANCE_KEY = "instance_tag"
NEW_KEY_ENV = "CDC_STUDIO_NEW_SECRET_KEY"


class KeyProblem(StudioError):
    """The key cannot be used with this app database (wrong, missing, or a secret it does not open)."""


@dataclass
class _Stored:
    """What the app database holds under the key: the check value and the encrypted secrets."""

    check: str | None = None
    secrets: list[tuple[str, str]] = field(default_factory=list)  # (which object, token)


@dataclass
class Rotation:
    """What a rotation did."""

    connections: int
    channels: int
    new_key: bytes
    key_in_env: bool


def pending_key_file(settings: Settings) -> Path:
    """Where a rotation puts the new key before the database commits under it."""
    return key_file(settings).with_name("secret.key.new")


def _opens(master: bytes, token: str) -> bool:
    try:
        fernet_for(master).decrypt(token.encode())
    except InvalidToken:
        return False
    return True


def _read_stored(conn: SaConnection) -> _Stored:
    tables = set(inspect(conn).get_table_names())
    stored = _Stored()
    if "app_settings" in tables:
        query = text("SELECT value FROM app_settings WHERE key = :k").columns(value=JSON)
        value = conn.execute(query, {"k": CHECK_KEY}).scalar()
        stored.check = value.get("token") if isinstance(value, dict) else None
    for table, column in (("connections", "password_encrypted"), ("channels", "secrets_encrypted")):
        if table in tables:
            rows = conn.execute(text(f"SELECT id, name, {column} FROM {table} WHERE {column} <> ''"))  # noqa: S608
            stored.secrets += [(f"{table[:-1]} {r[0]} '{r[1]}'", r[2]) for r in rows]
    return stored


def _stored(url: str) -> _Stored:
    """Read the check value and the secrets without writing (a missing SQLite file: nothing stored)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if not (parsed.database and Path(parsed.database).exists()):
            return _Stored()
        # read-only: not even a WAL checkpoint when it closes
        url = f"sqlite:///file:{Path(parsed.database).resolve()}?mode=ro&uri=true"
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return _read_stored(conn)
    finally:
        engine.dispose()


def _key_in_env(settings: Settings) -> bool:
    return settings.secret_key is not None and bool(settings.secret_key.get_secret_value())


def _where(settings: Settings) -> str:
    if _key_in_env(settings):
        return "the environment variable CDC_STUDIO_SECRET_KEY"
    return f"the key file {key_file(settings)} (CDC_STUDIO_SECRET_KEY is not set)"


def _database(settings: Settings) -> str:
    return make_url(settings.resolved_database_url()).render_as_string(hide_password=True)


def _missing(settings: Settings) -> KeyProblem:
    return KeyProblem(
        f"No secret key was found, but the app database {_database(settings)} holds data encrypted with one. "
        f"The key is looked for in CDC_STUDIO_SECRET_KEY, else in the file {key_file(settings)}, which does not "
        "exist; a new key would not open the stored connection passwords and channel secrets, so none was made. "
        "Restore secret.key from your backup into the data folder (or set CDC_STUDIO_SECRET_KEY to the key) and "
        "start again. Nothing was changed."
    )


def _wrong(settings: Settings) -> KeyProblem:
    return KeyProblem(
        f"The secret key does not open the app database {_database(settings)}: the database was set up with "
        f"another key, so its connection passwords and channel secrets cannot be decrypted. The key was taken from "
        f"{_where(settings)}. Use the key this database was set up with (restore secret.key from your backup, or "
        "set CDC_STUDIO_SECRET_KEY to it), or point DATABASE_URL / CDC_STUDIO_DATA_DIR at the database that "
        "belongs to this key. Nothing was changed."
    )


def _finish_pending_rotation(settings: Settings, stored: _Stored) -> bool:
    """Complete a rotation that committed but crashed before its key file replaced the old one."""
    pending = pending_key_file(settings)
    if _key_in_env(settings) or not pending.exists() or stored.check is None:
        return False
    if not _opens(pending.read_bytes().strip(), stored.check):
        return False
    os.replace(pending, key_file(settings))
    print(f"core.keys: finished an interrupted key rotation: {pending} replaced {key_file(settings)}", file=sys.stderr)
    return True


def verify(settings: Settings) -> None:
    """Raise KeyProblem unless the key opens the app database (or the database holds nothing under a key).

    Writes nothing, except to finish an interrupted rotation (the pending key file replaces the old one)."""
    stored = _stored(settings.resolved_database_url())
    master = existing_master_secret(settings)
    probe = stored.check or (stored.secrets[0][1] if stored.secrets else None)
    if probe is None:
        return
    if master is None:
        raise _missing(settings)
    if not _opens(master, probe) and not _finish_pending_rotation(settings, stored):
        raise _wrong(settings)


def remember_key(settings: Settings, master: bytes) -> None:
    """Write the check value the first time the app starts with a key, keep the instance tag the key gave
    (so a rotation does not rename connectors and topics), and use that tag."""
    with db.session_scope() as session:
        db.serialize(session)  # replicas starting together write it once
        if settings_db.get_setting(session=session, key=CHECK_KEY) is None:
            _put_check(session, master)
        kept = settings_db.get_setting(session=session, key=INSTANCE_KEY)
        if kept is None:
            kept = settings_db.put_setting(
                session=session, key=INSTANCE_KEY, value={"tag": derived_instance_tag(master)}, updated_by=None
            )
        pin_instance_tag(master, kept.value["tag"])


def _put_check(session: Session, master: bytes) -> None:
    token = fernet_for(master).encrypt(CHECK_TEXT).decode()
    settings_db.put_setting(session=session, key=CHECK_KEY, value={"token": token}, updated_by=None)


def _reopen(token: str, old: bytes, new: bytes, what: str) -> str:
    try:
        plain = fernet_for(old).decrypt(token.encode())
    except InvalidToken:
        raise KeyProblem(
            f"{what} has a secret the current key does not open: nothing was rotated "
            "(fix or delete it, then rotate again)"
        ) from None
    return fernet_for(new).encrypt(plain).decode()


def _reencrypt(session: Session, old: bytes, new: bytes) -> tuple[int, int]:
    """Re-encrypt every stored secret from `old` to `new` in the session; KeyProblem naming the first that
    `old` does not open."""
    connections = [c for c in session.exec(select(Connection).order_by(Connection.id)) if c.password_encrypted]  # type: ignore[arg-type]
    for c in connections:
        c.password_encrypted = _reopen(c.password_encrypted, old, new, f"connection {c.id} '{c.name}'")
        session.add(c)
    channels = [c for c in session.exec(select(Channel).order_by(Channel.id)) if c.secrets_encrypted]  # type: ignore[arg-type]
    for ch in channels:
        ch.secrets_encrypted = _reopen(ch.secrets_encrypted, old, new, f"channel {ch.id} '{ch.name}'")
        session.add(ch)
    return len(connections), len(channels)


def _lock(session: Session) -> None:
    """Keep a running app from writing a secret under the old key while the rotation runs."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("LOCK TABLE connections, channels, app_settings IN EXCLUSIVE MODE"))


def _write_pending(settings: Settings, new: bytes) -> Path:
    pending = pending_key_file(settings)
    fd = os.open(pending, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(new)
        f.flush()
        os.fsync(f.fileno())
    return pending


def _swap_key_file(settings: Settings, pending: Path) -> None:
    os.replace(pending, key_file(settings))
    dir_fd = os.open(key_file(settings).parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def rotate(settings: Settings, new_key: bytes | None = None) -> Rotation:
    """Re-encrypt every stored secret under a new key in one transaction, then make the new key current."""
    verify(settings)
    old = existing_master_secret(settings)
    if old is None:
        raise KeyProblem(f"there is no key to rotate from: {key_file(settings)} does not exist")
    in_env = _key_in_env(settings)
    if in_env and not new_key:
        raise KeyProblem(f"CDC_STUDIO_SECRET_KEY is set: give the new key with --new-key or {NEW_KEY_ENV}")
    new = new_key or new_master_secret()
    if new == old:
        raise KeyProblem("the new key is the current key")
    db.init(settings.resolved_database_url())
    remember_key(settings, old)  # a database that never saw this version gets its check value and tag first
    pending = None if in_env else _write_pending(settings, new)
    try:
        counts = _rotate_in_db(old, new)
    except BaseException:
        if pending is not None:
            pending.unlink(missing_ok=True)
        raise
    if pending is not None:
        _swap_key_file(settings, pending)
    return Rotation(connections=counts[0], channels=counts[1], new_key=new, key_in_env=in_env)


def _rotate_in_db(old: bytes, new: bytes) -> tuple[int, int]:
    with db.session_scope() as session:
        _lock(session)
        counts = _reencrypt(session, old, new)
        _put_check(session, new)
        audit.log(
            None,
            "keys.rotate",
            object_type="secret_key",
            target="secret key",
            detail=f"{counts[0]} connection passwords and {counts[1]} channel secrets re-encrypted",
            session=session,
        )
    return counts


def _report(result: Rotation, settings: Settings) -> str:
    lines = [
        f"Re-encrypted {result.connections} connection password(s) and {result.channels} channel secret(s) "
        "under the new key.",
        "Login tokens and UI sessions signed with the old key no longer work: everyone signs in again. "
        "Personal API tokens keep working (they are stored as hashes, not derived from the key).",
    ]
    if result.key_in_env:
        lines.append(
            "CDC_STUDIO_SECRET_KEY is set: change it to the new key before the app starts again "
            "(the database no longer opens with the old one)."
        )
    else:
        lines.append(f"The new key is in {key_file(settings)}: back it up now; restart the app.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.keys", description="The app's master secret key.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="say whether the key opens the app database")
    sub.add_parser("generate", help="print a new random key (for CDC_STUDIO_SECRET_KEY)")
    rot = sub.add_parser("rotate", help="re-encrypt every stored secret under a new key")
    rot.add_argument("--new-key", help=f"the new key (default: {NEW_KEY_ENV}, else a generated one)")
    args = parser.parse_args(argv)
    if args.command == "generate":
        print(new_master_secret().decode())
        return 0
    settings = get_settings()
    try:
        if args.command == "check":
            verify(settings)
            print(f"The key from {_where(settings)} opens the app database {_database(settings)}.")
            return 0
        new_key = args.new_key or os.environ.get(NEW_KEY_ENV)
        print(_report(rotate(settings, new_key.encode() if new_key else None), settings))
        return 0
    except KeyProblem as exc:
        print(f"core.keys: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
