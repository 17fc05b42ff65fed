"""Notification channels over the API: CRUD, write-only secrets, validation, roles, send test and the delivery log."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import time
from pathlib import Path

import httpx
from pytest_httpserver import HTTPServer

from core.monitoring import channels as ch
from data.db import session_scope
from data.models import Alert, Connection, Pipeline

SECRET = "Wh-Secret-77aa"
SLACK_TOKEN = "xoxTok3nQQ"
ROUTING_KEY = "PDkey0000111"
MAIL_PASSWORD = "M4il-Pa55-zz"
API = "/api/v1/channels"


def make_pipeline(name: str) -> int:
    with session_scope() as session:
        c = Connection(name=f"c-{name}", kind="postgresql", host="h", port=5432, database="d", username="u")
        session.add(c)
        session.flush()
        p = Pipeline(
            name=name,
            source_connection_id=c.id,
            target_connection_id=c.id,
            source_database="d",
            source_schema="s",
            target_database="d",
            target_schema="t",
        )
        session.add(p)
        session.flush()
        return p.id


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_crud_and_secrets_are_write_only(client: httpx.AsyncClient, admin, viewer, app_env, httpserver) -> None:
    seen: list[str] = []
    bodies = [
        {"name": "hook", "kind": "webhook", "config": {"url": httpserver.url_for("/h"), "secret": SECRET}},
        {"name": "slack", "kind": "slack", "config": {"webhook_url": f"https://hooks.example/services/{SLACK_TOKEN}"}},
        {"name": "pd", "kind": "pagerduty", "config": {"routing_key": ROUTING_KEY}, "min_severity": "critical"},
        {
            "name": "mail",
            "kind": "email",
            "config": {
                "host": "smtp.example.com",
                "port": 465,
                "security": "ssl",
                "username": "alerts",
                "password": MAIL_PASSWORD,
                "sender": "cdc@example.com",
                "recipients": ["oncall@example.com"],
            },
        },
    ]
    created = []
    for body in bodies:
        r = await client.post(API, headers=admin, json=body)
        assert r.status_code == 201, r.text
        seen.append(r.text)
        created.append(r.json())
    hook, slack, pd, mail = created
    assert hook["config"] == {"url": httpserver.url_for("/h"), "secret": "***"}
    assert slack["config"] == {"webhook_url": "***"} and pd["config"] == {"routing_key": "***"}
    assert pd["min_severity"] == "critical" and hook["min_severity"] == "warning"
    assert mail["config"]["password"] == "***" and mail["config"]["username"] == "alerts"
    assert hook["pipeline_ids"] == [] and hook["enabled"] is True
    assert set(hook) >= {"id", "name", "kind", "config", "pipeline_ids", "min_severity", "enabled"}

    r = await client.get(API, headers=viewer)
    assert r.status_code == 200 and [c["name"] for c in r.json()] == ["hook", "mail", "pd", "slack"]
    seen.append(r.text)
    seen.append((await client.get(f"{API}/{hook['id']}", headers=viewer)).text)

    # a PUT that leaves the secret out keeps it: the test notification is still signed with it
    pid = make_pipeline("orders")
    r = await client.put(
        f"{API}/{hook['id']}",
        headers=admin,
        json={"config": {"url": httpserver.url_for("/h2")}, "pipeline_ids": [pid], "enabled": False},
    )
    assert r.status_code == 200, r.text
    seen.append(r.text)
    assert r.json()["config"]["secret"] == "***" and r.json()["pipeline_ids"] == [pid] and not r.json()["enabled"]
    httpserver.expect_request("/h2").respond_with_data("ok")
    r = await client.post(f"{API}/{hook['id']}/test", headers=admin)
    assert r.json() == {"ok": True, "status_code": 200, "error": None}
    request = httpserver.log[0][0]
    signature = "sha256=" + hmac.new(SECRET.encode(), request.get_data(), hashlib.sha256).hexdigest()
    assert request.headers["X-CDC-Studio-Signature"] == signature
    assert json.loads(request.get_data())["alert"]["kind"] == "test"

    r = await client.get(f"{API}/{hook['id']}/deliveries", headers=viewer)
    assert r.status_code == 200
    seen.append(r.text)
    [test_row] = r.json()
    assert (test_row["event"], test_row["status"], test_row["attempts"], test_row["status_code"]) == (
        "test",
        "sent",
        1,
        200,
    )
    assert test_row["channel_name"] == "hook"

    seen.append((await client.get("/openapi.json")).text)
    for text in seen:
        for secret in (SECRET, SLACK_TOKEN, ROUTING_KEY, MAIL_PASSWORD):
            assert secret not in text
    # encrypted at rest: no plain secret in the SQLite files' bytes
    data_dir = Path(app_env["CDC_STUDIO_DATA_DIR"])
    blob = b"".join(p.read_bytes() for p in data_dir.rglob("*") if p.is_file())
    for secret in (SECRET, SLACK_TOKEN, ROUTING_KEY, MAIL_PASSWORD):
        assert secret.encode() not in blob

    assert (await client.delete(f"{API}/{hook['id']}", headers=admin)).status_code == 204
    assert (await client.get(f"{API}/{hook['id']}", headers=admin)).status_code == 404
    assert (await client.delete(f"{API}/{hook['id']}", headers=admin)).status_code == 404
    assert len((await client.get(API, headers=admin)).json()) == 3


async def test_validation_names_the_field(client: httpx.AsyncClient, admin) -> None:
    cases = [
        ({"name": "x", "kind": "webhook", "config": {"url": "not-a-url"}}, ["body", "config", "url"]),
        ({"name": "x", "kind": "slack", "config": {}}, ["body", "config", "webhook_url"]),
        ({"name": "x", "kind": "pagerduty", "config": {"routing_key": ""}}, ["body", "config", "routing_key"]),
        (
            {
                "name": "x",
                "kind": "email",
                "config": {"host": "m", "port": 25, "sender": "nobody", "recipients": ["a@b"]},
            },
            ["body", "config", "sender"],
        ),
        ({"name": "x", "kind": "sms", "config": {}}, ["body", "kind"]),
        (
            {"name": "x", "kind": "webhook", "config": {"url": "http://h"}, "min_severity": "high"},
            ["body", "min_severity"],
        ),
        (
            {"name": "x", "kind": "webhook", "config": {"url": "http://h"}, "pipeline_ids": [424242]},
            ["body", "pipeline_ids"],
        ),
    ]
    for body, loc in cases:
        r = await client.post(API, headers=admin, json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["detail"][0]["loc"][: len(loc)] == loc, (body, r.text)
    assert (await client.get(API, headers=admin)).json() == []

    ok = {"name": "x", "kind": "webhook", "config": {"url": "http://h"}}
    cid = (await client.post(API, headers=admin, json=ok)).json()["id"]
    assert (await client.post(API, headers=admin, json=ok)).status_code == 409
    r = await client.put(f"{API}/{cid}", headers=admin, json={"kind": "slack"})  # the new kind's config is missing
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "config", "webhook_url"]
    assert (await client.put(f"{API}/9999", headers=admin, json={"enabled": False})).status_code == 404


async def test_roles(client: httpx.AsyncClient, admin, editor, viewer) -> None:
    body = {"name": "e", "kind": "webhook", "config": {"url": f"http://127.0.0.1:{closed_port()}/x"}}
    assert (await client.post(API, headers=viewer, json=body)).status_code == 403
    r = await client.post(API, headers=editor, json=body)
    assert r.status_code == 201
    cid = r.json()["id"]
    assert (await client.get(API, headers=viewer)).status_code == 200
    assert (await client.get(f"{API}/{cid}/deliveries", headers=viewer)).status_code == 200
    assert (await client.put(f"{API}/{cid}", headers=viewer, json={"enabled": False})).status_code == 403
    assert (await client.post(f"{API}/{cid}/test", headers=viewer)).status_code == 403
    assert (await client.delete(f"{API}/{cid}", headers=viewer)).status_code == 403
    assert (await client.get(API)).status_code == 401

    # the editor's test of an unreachable receiver is a result, not an error
    r = await client.post(f"{API}/{cid}/test", headers=editor)
    assert r.status_code == 200
    result = r.json()
    assert result["ok"] is False and result["status_code"] is None and "ConnectError" in result["error"]
    rows = (await client.get(f"{API}/{cid}/deliveries", headers=editor)).json()
    assert [(d["event"], d["status"]) for d in rows] == [("test", "failed")]
    assert (await client.put(f"{API}/{cid}", headers=editor, json={"enabled": False})).json()["enabled"] is False
    assert (await client.delete(f"{API}/{cid}", headers=editor)).status_code == 204


async def test_an_alert_shows_in_the_channel_log(client: httpx.AsyncClient, admin, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/alerts").respond_with_data("ok")
    pid = make_pipeline("orders")
    body = {"name": "hook", "kind": "webhook", "config": {"url": httpserver.url_for("/alerts")}, "pipeline_ids": [pid]}
    cid = (await client.post(API, headers=admin, json=body)).json()["id"]
    with session_scope() as session:
        alert = Alert(pipeline_id=pid, kind="pipeline_error", severity="critical", state="firing", message="ERROR")
        session.add(alert)
        session.flush()
    ch.dispatch(alert, "firing")
    deadline = time.monotonic() + 15
    rows: list[dict] = []
    while time.monotonic() < deadline:
        rows = (await client.get(f"{API}/{cid}/deliveries", headers=admin)).json()
        if rows and rows[0]["status"] != "pending":
            break
        await asyncio.sleep(0.05)
    [row] = rows
    assert (row["event"], row["status"], row["alert_id"], row["attempts"]) == ("firing", "sent", alert.id, 1)
    assert row["payload"]["alert"]["pipeline_name"] == "orders" and row["next_attempt_at"] is None
