"""The master secret key: a wrong or missing key stops a real app process before it writes anything, and
`python -m core.keys rotate` re-encrypts every secret in one transaction (or changes nothing)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import create_engine, text
from sqlmodel import select

from core import keys
from core.config import get_settings
from core.errors import AuthenticationRequired
from core.security import create_access_token, decode_access_token, decrypt_secret, encrypt_secret, fernet_for
from data.db import session_scope
from data.models import Channel, Connection
from tests.appprocess import ROOT, AppProcess
from tests.pgcluster import PgCluster

HOOK_SECRET = "hook-signing-secret-1"


def snapshot(folder: Path) -> dict[str, str]:
    """Every file of a data folder and a hash of its bytes (but SQLite's -shm: an index of the WAL that any
    reader updates, not data)."""
    files = [p for p in sorted(folder.iterdir()) if p.is_file() and not p.name.endswith("-shm")]
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def start_fails(app: AppProcess, **env: str) -> subprocess.CompletedProcess:
    """Run app.py with extra environment until it exits (it must, within the timeout)."""
    return subprocess.run(
        [sys.executable, "app.py"], cwd=ROOT, env={**app.env(), **env}, capture_output=True, text=True, timeout=90
    )


def keys_cli(app: AppProcess, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "core.keys", *args],
        cwd=ROOT,
        env={**app.env(), **env},
        capture_output=True,
        text=True,
        timeout=90,
    )


def browser_id(browser: httpx.Client) -> str:
    """The id of the UI session (NiceGUI's signed `session` cookie) the app answers a page visit with."""
    browser.get("/login")
    payload = browser.cookies["session"].split(".")[0]
    return json.loads(base64.b64decode(payload + "=" * (-len(payload) % 4)))["id"]


def pg_connection(pg: PgCluster, database: str) -> dict:
    return {
        "name": "warehouse",
        "kind": "postgresql",
        "usage": "source",
        "host": pg.host,
        "port": pg.port,
        "database": database,
        "username": pg.user,
        "password": pg.password,
    }


def test_a_wrong_or_missing_key_stops_the_start_and_touches_nothing(tmp_path, pg: PgCluster, pg_db: str) -> None:
    data = tmp_path / "data"
    app = AppProcess(data, tmp_path / "app.log")
    app.start()
    try:
        r = httpx.post(f"{app.base}/api/v1/connections", headers=app.token(), json=pg_connection(pg, pg_db))
        assert r.status_code == 201, r.text
        cid = r.json()["id"]
    finally:
        app.terminate()
    before = snapshot(data)
    assert "secret.key" in before and "cdc_studio.db" in before

    wrong = start_fails(app, CDC_STUDIO_SECRET_KEY=keys.new_master_secret().decode())
    assert wrong.returncode != 0
    assert "The secret key does not open the app database" in wrong.stderr
    assert "CDC_STUDIO_SECRET_KEY" in wrong.stderr and "Nothing was changed" in wrong.stderr
    assert snapshot(data) == before

    (data / "secret.key").rename(tmp_path / "backup.key")
    missing = start_fails(app)
    assert missing.returncode != 0
    assert "No secret key was found" in missing.stderr and str(data / "secret.key") in missing.stderr
    assert not (data / "secret.key").exists(), "no new key may be made for a database that has secrets"
    (tmp_path / "backup.key").rename(data / "secret.key")
    assert snapshot(data) == before

    app.start()
    try:
        r = httpx.post(f"{app.base}/api/v1/connections/{cid}/test", headers=app.token())
        assert r.status_code == 200 and r.json()["ok"] is True, r.text
    finally:
        app.terminate()


@pytest.mark.parametrize("app_db", ["sqlite", "postgresql"], indirect=True)
def test_rotate_end_to_end(tmp_path, pg: PgCluster, pg_db: str, httpserver: HTTPServer, app_db: str | None) -> None:
    data = tmp_path / "data"
    app = AppProcess(data, tmp_path / "app.log", **({"DATABASE_URL": app_db} if app_db else {}))
    app.start()
    try:
        old_login = app.token()
        browser = httpx.Client(base_url=app.base)
        ui_session = browser_id(browser)
        assert browser_id(browser) == ui_session  # the signed session cookie is honoured
        r = httpx.post(f"{app.base}/api/v1/connections", headers=old_login, json=pg_connection(pg, pg_db))
        cid = r.json()["id"]
        hook = {"name": "hook", "kind": "webhook", "config": {"url": httpserver.url_for("/h"), "secret": HOOK_SECRET}}
        r = httpx.post(f"{app.base}/api/v1/channels", headers=old_login, json=hook)
        assert r.status_code == 201, r.text
        chid = r.json()["id"]
    finally:
        app.terminate()
    old_key = (data / "secret.key").read_bytes()
    assert (data / "cdc_studio.db").exists() == (app_db is None)  # the app state is where the test says

    rotated = keys_cli(app, "rotate")
    assert rotated.returncode == 0, rotated.stderr
    assert "1 connection password(s) and 1 channel secret(s)" in rotated.stdout
    assert "Personal API tokens keep working" in rotated.stdout
    assert (data / "secret.key").read_bytes() != old_key and not (data / "secret.key.new").exists()
    assert (data / "secret.key").stat().st_mode & 0o077 == 0
    engine = create_engine(app_db or f"sqlite:///{data / 'cdc_studio.db'}")
    with engine.connect() as db:
        audited = db.execute(text("SELECT actor_type FROM audit_log WHERE action = 'keys.rotate'")).all()
    engine.dispose()
    assert [tuple(r) for r in audited] == [("system",)]
    assert keys_cli(app, "check").returncode == 0

    app.start()
    try:
        assert httpx.get(f"{app.base}/api/v1/connections", headers=old_login).status_code == 401
        assert browser_id(browser) != ui_session  # the old UI session (and who signed in with it) is gone
        login = app.token()
        r = httpx.post(f"{app.base}/api/v1/connections/{cid}/test", headers=login)
        assert r.status_code == 200 and r.json()["ok"] is True, r.text
        httpserver.expect_oneshot_request("/h", method="POST").respond_with_data("ok")
        r = httpx.post(f"{app.base}/api/v1/channels/{chid}/test", headers=login)
        assert r.status_code == 200, r.text
        request, _ = httpserver.log[-1]
        signature = "sha256=" + hmac.new(HOOK_SECRET.encode(), request.get_data(), hashlib.sha256).hexdigest()
        assert request.headers["X-CDC-Studio-Signature"] == signature
    finally:
        app.terminate()


def stored_rows() -> list[tuple]:
    with session_scope() as session:
        rows = [(c.id, c.password_encrypted) for c in session.exec(select(Connection).order_by(Connection.id))]  # type: ignore[arg-type]
        return rows + [(c.id, c.secrets_encrypted) for c in session.exec(select(Channel).order_by(Channel.id))]  # type: ignore[arg-type]


def conn(name: str, password_encrypted: str = "") -> Connection:
    return Connection(
        name=name,
        kind="postgresql",
        host="h",
        port=5432,
        database="d",
        username="u",
        password_encrypted=password_encrypted,
    )


def seed(prepare_env: dict[str, str]) -> None:
    """A started app database with a connection without password, one with, and a channel with secrets."""
    from core.app_state import prepare

    prepare()
    with session_scope() as session:
        session.add(conn("a"))
        session.add(conn("b", encrypt_secret("pw")))
        session.add(Channel(name="hook", kind="webhook", secrets_encrypted=encrypt_secret('{"secret": "s"}')))


@pytest.mark.parametrize("app_db", ["sqlite", "postgresql"], indirect=True)
def test_a_secret_the_key_does_not_open_aborts_the_rotation(app_env) -> None:
    seed(app_env)
    with session_scope() as session:
        stray = fernet_for(keys.new_master_secret()).encrypt(b"other").decode()
        session.add(conn("stray", stray))
    settings = get_settings()
    data = Path(app_env["CDC_STUDIO_DATA_DIR"])
    rows, key = stored_rows(), (data / "secret.key").read_bytes()
    with pytest.raises(keys.KeyProblem, match="connection 3 'stray'.*nothing was rotated"):
        keys.rotate(settings)
    assert stored_rows() == rows and (data / "secret.key").read_bytes() == key
    assert not keys.pending_key_file(settings).exists()
    keys.verify(settings)


@pytest.mark.parametrize("app_db", ["sqlite", "postgresql"], indirect=True)
def test_rotation_with_the_key_in_the_environment(app_env, monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = keys.new_master_secret(), keys.new_master_secret()
    monkeypatch.setenv("CDC_STUDIO_SECRET_KEY", old.decode())
    get_settings.cache_clear()
    seed(app_env)
    login = create_access_token(1, "admin")
    with pytest.raises(keys.KeyProblem, match="--new-key or CDC_STUDIO_NEW_SECRET_KEY"):
        keys.rotate(get_settings())
    result = keys.rotate(get_settings(), new)
    assert (result.connections, result.channels, result.key_in_env) == (1, 1, True)
    assert "change it to the new key before the app starts again" in keys._report(result, get_settings())
    with pytest.raises(keys.KeyProblem, match="does not open the app database"):
        keys.verify(get_settings())  # the old key, still in the environment, no longer opens it
    monkeypatch.setenv("CDC_STUDIO_SECRET_KEY", new.decode())
    get_settings.cache_clear()
    keys.verify(get_settings())
    assert [decrypt_secret(token) for _, token in stored_rows() if token] == ["pw", '{"secret": "s"}']
    with pytest.raises(AuthenticationRequired):
        decode_access_token(login)


def test_a_crash_between_commit_and_key_swap_is_finished_at_the_next_check(app_env, monkeypatch) -> None:
    seed(app_env)
    settings = get_settings()

    def crash(*_args: object) -> None:
        raise SystemExit("killed after the commit")

    monkeypatch.setattr(keys, "_swap_key_file", crash)
    with pytest.raises(SystemExit):
        keys.rotate(settings)
    assert keys.pending_key_file(settings).exists()
    with pytest.raises(Exception, match="cannot be decrypted"):
        decrypt_secret(stored_rows()[1][1])  # the database is under the new key, the key file still the old
    keys.verify(settings)  # what the next start does first
    assert not keys.pending_key_file(settings).exists()
    assert [decrypt_secret(token) for _, token in stored_rows() if token] == ["pw", '{"secret": "s"}']


def test_the_instance_tag_survives_a_rotation(app_env) -> None:
    from core.security import instance_tag

    seed(app_env)
    tag = instance_tag()
    keys.rotate(get_settings())
    from core.app_state import prepare

    prepare()  # the next start
    assert instance_tag() == tag


def test_generate_prints_a_usable_key(tmp_path) -> None:
    out = subprocess.run([sys.executable, "-m", "core.keys", "generate"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0
    fernet_for(out.stdout.strip().encode()).encrypt(b"x")
    assert len(out.stdout.strip()) == 44
