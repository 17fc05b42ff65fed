"""No secret in a log line or an error answer: a real app process is driven through a failed login, a
connection whose password the server refuses, a connection that works and a channel with a secret; its log
and every answer are searched for the secrets used."""

from __future__ import annotations

import httpx

from tests.appprocess import AppProcess
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.secretscan import leaks, register_secret

WRONG_LOGIN = "Not-My-Pass-8812"
WRONG_DB_PASSWORD = "Wrong-Db-Pw-5521"
CHANNEL_SECRET = "Hook-Sign-9035"


def test_secrets_stay_out_of_logs_and_errors(tmp_path, pg) -> None:  # noqa: ANN001
    for secret in (WRONG_LOGIN, WRONG_DB_PASSWORD, CHANNEL_SECRET):
        register_secret(secret)  # the whole run's logs are searched for them too
    app = AppProcess(tmp_path / "data", tmp_path / "app.log")
    app.start()
    answers: list[str] = []
    try:
        with httpx.Client(base_url=app.base, timeout=30) as client:
            r = client.post("/api/v1/auth/token", json={"email": ADMIN_EMAIL, "password": WRONG_LOGIN})
            assert r.status_code == 401
            answers.append(r.text)
            r = client.post("/api/v1/auth/token", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
            headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
            base = {"kind": "postgresql", "host": pg.host, "port": pg.port, "database": "postgres"}
            bad = {**base, "name": "bad", "username": pg.user, "password": WRONG_DB_PASSWORD}
            r = client.post("/api/v1/connections", headers=headers, json=bad)
            assert r.status_code == 201, r.text
            answers.append(r.text)
            r = client.post(f"/api/v1/connections/{r.json()['id']}/test", headers=headers)
            answers.append(r.text)
            assert r.status_code == 200 and r.json()["ok"] is False, r.text
            good = {**base, "name": "good", "username": pg.user, "password": pg.password}
            r = client.post("/api/v1/connections", headers=headers, json=good)
            answers.append(r.text)
            r = client.post(f"/api/v1/connections/{r.json()['id']}/test", headers=headers)
            assert r.json()["ok"] is True, r.text
            answers.append(r.text)
            hook = {"name": "h", "kind": "webhook", "config": {"url": "http://127.0.0.1:9/x", "secret": CHANNEL_SECRET}}
            r = client.post("/api/v1/channels", headers=headers, json=hook)
            answers.append(r.text)
            r = client.post(f"/api/v1/channels/{r.json()['id']}/test", headers=headers)
            answers.append(r.text)
            answers.append(client.get("/api/v1/audit", headers=headers).text)
    finally:
        app.terminate()
    secrets = {WRONG_LOGIN, WRONG_DB_PASSWORD, CHANNEL_SECRET, ADMIN_PASSWORD, pg.password}
    assert leaks([app.log_path], secrets) == []
    assert app.log_path.stat().st_size > 0  # the log was written: the search read something
    for text in answers:
        assert not [s for s in secrets if s in text], text
