"""Notification channels against real receivers: pytest-httpserver for webhook/Slack/PagerDuty, aiosmtpd for
email. Retries are driven with an injected clock (`retry_due(now=...)`), never by sleeping."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import socket
import sqlite3
import ssl
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import Message as MailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pytest_httpserver import HTTPServer
from sqlmodel import col, select
from werkzeug import Request, Response

from core.config import get_settings
from core.errors import Conflict, PermissionDenied, ValidationFailed
from core.monitoring import channels as ch
from core.monitoring.channels import ChannelCreate, ChannelUpdate
from core.users import Actor
from data import db
from data.db import session_scope
from data.models import Alert, Channel, Connection, Delivery, Pipeline, utcnow

ADMIN = Actor(id=1, email="admin@example.com", role="admin")
EDITOR = Actor(id=2, email="editor@example.com", role="editor")
VIEWER = Actor(id=3, email="viewer@example.com", role="viewer")
HOOK_SECRET = "hmac-Secret-9f3c"
SLACK_TOKEN = "xoxTOKENzz81abcdEFGH1234"  # as long as a real one


@pytest.fixture
def app_db(app_env) -> Iterator[str]:
    """A migrated app database with two pipelines (ids in `pipelines`)."""
    url = get_settings().resolved_database_url()
    db.init(url)
    yield url


@pytest.fixture
def pipelines(app_db) -> list[int]:
    with session_scope() as session:
        conn = Connection(name="c", kind="postgresql", host="h", port=5432, database="d", username="u")
        session.add(conn)
        session.flush()
        ids = []
        for name in ("orders", "billing"):
            p = Pipeline(
                name=name,
                source_connection_id=conn.id,
                target_connection_id=conn.id,
                source_database="d",
                source_schema="public",
                target_database="d",
                target_schema="public",
            )
            session.add(p)
            session.flush()
            ids.append(p.id)
        return ids


def make_alert(pipeline_id: int | None, severity: str = "critical", **kw) -> Alert:
    with session_scope() as session:
        alert = Alert(
            pipeline_id=pipeline_id,
            kind=kw.pop("kind", "lag_seconds"),
            object=kw.pop("object", ""),
            severity=severity,
            state="firing",
            message=kw.pop("message", "lag 420 s > 300 s"),
            value=420.0,
            threshold=300.0,
            fired_at=utcnow(),
            **kw,
        )
        session.add(alert)
        session.flush()
        return alert


def resolve(alert: Alert) -> Alert:
    with session_scope() as session:
        row = session.get(Alert, alert.id)
        row.state, row.resolved_at = "resolved", utcnow()
        session.add(row)
        return row


def webhook(url: str, name: str = "hook", **kw) -> int:
    config = {"url": url, **kw.pop("config", {})}
    return ch.create_channel(ADMIN, ChannelCreate(name=name, kind="webhook", config=config, **kw)).id


def deliveries(**kw) -> list[Delivery]:
    with session_scope() as session:
        stmt = select(Delivery)
        for key, value in kw.items():
            stmt = stmt.where(getattr(Delivery, key) == value)
        return list(session.exec(stmt.order_by(col(Delivery.id))))


def wait_for(pred: Callable[[], object], timeout: float = 15.0) -> object:
    """Poll for a positive signal (the background sender thread works on its own)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := pred():
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def settled(channel_id: int, attempts: int = 1) -> Delivery:
    """The channel's only delivery once it has had `attempts` attempts."""

    def done() -> Delivery | None:
        rows = deliveries(channel_id=channel_id)
        return rows[0] if len(rows) == 1 and rows[0].attempts >= attempts else None

    return wait_for(done)  # type: ignore[return-value]


def aware(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------------------
# Webhook


def test_webhook_body_and_signature_over_the_raw_body(httpserver: HTTPServer, pipelines) -> None:
    seen: list[Request] = []

    def handler(request: Request) -> Response:
        seen.append(request)
        return Response("ok")

    httpserver.expect_request("/hook", method="POST").respond_with_handler(handler)
    cid = webhook(httpserver.url_for("/hook"), config={"secret": HOOK_SECRET})
    alert = make_alert(pipelines[0], object="public.orders")
    ch.dispatch(alert, "firing")
    row = settled(cid)
    assert (row.status, row.attempts, row.status_code, row.error) == ("sent", 1, 200, None)

    raw = seen[0].get_data()
    expected = "sha256=" + hmac.new(HOOK_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    assert seen[0].headers["X-CDC-Studio-Signature"] == expected
    assert seen[0].headers["Content-Type"] == "application/json"
    body = json.loads(raw)
    a = body["alert"]
    assert a["id"] == alert.id and a["kind"] == "lag_seconds" and a["severity"] == "critical"
    assert a["state"] == "firing" and a["pipeline_id"] == pipelines[0] and a["pipeline_name"] == "orders"
    assert a["object"] == "public.orders" and a["message"] == "lag 420 s > 300 s"
    assert (a["value"], a["threshold"], a["resolved_at"]) == (420.0, 300.0, None)
    for stamp in (a["started_at"], body["sent_at"]):
        assert stamp.endswith("Z") and datetime.fromisoformat(stamp).tzinfo is not None
    assert HOOK_SECRET not in raw.decode()

    ch.dispatch(resolve(alert), "resolved")
    wait_for(lambda: len(seen) == 2)
    second = json.loads(seen[1].get_data())
    assert second["alert"]["state"] == "resolved" and second["alert"]["resolved_at"].endswith("Z")
    assert seen[1].headers["X-CDC-Studio-Signature"].startswith("sha256=")


def test_unsigned_without_secret_and_a_reminder_is_firing(httpserver: HTTPServer, pipelines) -> None:
    httpserver.expect_request("/plain").respond_with_data("ok")
    cid = webhook(httpserver.url_for("/plain"))
    ch.dispatch(make_alert(pipelines[0]), "reminder")
    settled(cid)
    request, _ = httpserver.log[0]
    assert "X-CDC-Studio-Signature" not in request.headers
    body = json.loads(request.get_data())
    assert body["alert"]["state"] == "firing" and body["event"] == "reminder"


def test_500_then_success_retries_on_the_backoff(httpserver: HTTPServer, pipelines) -> None:
    httpserver.expect_oneshot_request("/flaky").respond_with_data("boom", status=500)
    httpserver.expect_request("/flaky").respond_with_data("ok")
    cid = webhook(httpserver.url_for("/flaky"))
    ch.dispatch(make_alert(pipelines[0]), "firing")
    row = settled(cid)
    assert (row.status, row.status_code, row.error) == ("pending", 500, "HTTP 500: boom")
    first = aware(row.last_attempt_at)
    assert aware(row.next_attempt_at) == first + timedelta(seconds=30)

    assert ch.retry_due(now=first + timedelta(seconds=29)) == 0
    assert len(httpserver.log) == 1
    assert ch.retry_due(now=first + timedelta(seconds=31)) == 1
    row = deliveries(channel_id=cid)[0]
    assert (row.status, row.attempts, row.status_code, row.error) == ("sent", 2, 200, None)
    assert len(httpserver.log) == 2
    assert ch.retry_due(now=first + timedelta(hours=1)) == 0  # sent stays sent


def test_gives_up_after_the_last_attempt_with_the_error_kept(pipelines) -> None:
    cid = webhook(f"http://127.0.0.1:{closed_port()}/down")
    ch.dispatch(make_alert(pipelines[0]), "firing")
    row = settled(cid)
    assert row.status == "pending" and row.status_code is None and "ConnectError" in row.error
    now = aware(row.last_attempt_at)
    waits = []
    for _ in range(ch.MAX_ATTEMPTS - 1):
        row = deliveries(channel_id=cid)[0]
        due = aware(row.next_attempt_at)
        waits.append((due - now).total_seconds())
        now = due
        assert ch.retry_due(now=now) == 1
    assert waits == [30, 60, 120, 240, 480, 960, 1800]
    row = deliveries(channel_id=cid)[0]
    assert (row.status, row.attempts, row.next_attempt_at) == ("failed", ch.MAX_ATTEMPTS, None)
    assert "ConnectError" in row.error
    assert ch.retry_due(now=now + timedelta(days=1)) == 0


def test_pending_rows_are_sent_by_the_job_after_a_restart(httpserver: HTTPServer, pipelines) -> None:
    """A row written before the process died (the sender thread never saw it) is sent by retry_due."""
    httpserver.expect_request("/later").respond_with_data("ok")
    cid = webhook(httpserver.url_for("/later"))
    alert = make_alert(pipelines[0])
    with session_scope() as session:
        row = Delivery(
            channel_id=cid, alert_id=alert.id, event="firing", payload={"alert": ch.alert_doc(alert, "orders")}
        )
        session.add(row)
    assert ch.retry_due() == 1
    assert deliveries(channel_id=cid)[0].status == "sent"
    assert json.loads(httpserver.log[0][0].get_data())["alert"]["id"] == alert.id

    # a channel disabled while its delivery waited is not sent to: the row says why
    with session_scope() as session:
        session.add(Delivery(channel_id=cid, alert_id=alert.id, event="reminder", payload={"alert": {}}))
    ch.update_channel(ADMIN, cid, ChannelUpdate(enabled=False))
    assert ch.retry_due() == 0
    row = deliveries(channel_id=cid, event="reminder")[0]
    assert (row.status, row.attempts, row.error) == ("failed", 1, "the channel was disabled before delivery")
    assert len(httpserver.log) == 1


def test_a_claimed_delivery_is_not_sent_twice(httpserver: HTTPServer, pipelines) -> None:
    httpserver.expect_request("/once").respond_with_data("ok")
    cid = webhook(httpserver.url_for("/once"))
    ch.dispatch(make_alert(pipelines[0]), "firing")
    row = settled(cid)
    assert row.status == "sent"
    assert ch.attempt(row.id) is None  # not pending any more
    assert len(httpserver.log) == 1


# ------------------------------------------------------------------------------------------------
# Slack


def test_slack_blocks_and_429_retry_after(httpserver: HTTPServer, pipelines) -> None:
    path = f"/services/T0001/B0002/{SLACK_TOKEN}"
    httpserver.expect_oneshot_request(path).respond_with_data(
        "rate_limited", status=429, headers={"Retry-After": "120"}
    )
    httpserver.expect_request(path).respond_with_data("ok")
    cid = ch.create_channel(
        ADMIN, ChannelCreate(name="slack", kind="slack", config={"webhook_url": httpserver.url_for(path)})
    ).id
    ch.dispatch(make_alert(pipelines[1], message="slot cdc_billing inactive for 6 min"), "firing")
    row = settled(cid)
    assert (row.status, row.status_code) == ("pending", 429)
    first = aware(row.last_attempt_at)
    assert aware(row.next_attempt_at) == first + timedelta(seconds=120)  # Slack's wish, not our 30 s

    assert ch.retry_due(now=first + timedelta(seconds=60)) == 0
    assert len(httpserver.log) == 1
    assert ch.retry_due(now=first + timedelta(seconds=121)) == 1
    row = deliveries(channel_id=cid)[0]
    assert (row.status, row.attempts, row.status_code) == ("sent", 2, 200)

    body = json.loads(httpserver.log[1][0].get_data())
    assert "CRITICAL" in body["text"] and "slot cdc_billing inactive" in body["text"]
    kinds = [b["type"] for b in body["blocks"]]
    assert kinds[0] == "header" and "section" in kinds and kinds[-1] == "context"
    blob = json.dumps(body["blocks"])
    assert "billing" in blob and "420.0" in blob and "300.0" in blob and "started" in blob


def test_slack_errors_never_show_the_webhook_token(httpserver: HTTPServer, pipelines) -> None:
    path = f"/services/T0001/B0002/{SLACK_TOKEN}"
    # a receiver that quotes the URL back in its error must not put the token into the log
    httpserver.expect_request(path).respond_with_data(f"no_service at {httpserver.url_for(path)}", status=404)
    cid = ch.create_channel(
        ADMIN, ChannelCreate(name="slack", kind="slack", config={"webhook_url": httpserver.url_for(path)})
    ).id
    ch.dispatch(make_alert(pipelines[0]), "firing")
    row = settled(cid)
    assert row.status_code == 404 and row.error.startswith("HTTP 404: no_service")
    assert SLACK_TOKEN not in row.error and "/services/" not in row.error
    assert ch.senders.redact(f"bad token {SLACK_TOKEN}x", [httpserver.url_for(path)]) == "bad token ***x"

    down = ch.create_channel(
        ADMIN,
        ChannelCreate(name="down", kind="slack", config={"webhook_url": f"http://127.0.0.1:{closed_port()}{path}"}),
    )
    result = ch.test_channel(ADMIN, down.id, timeout=2)
    assert not result.ok and result.error and SLACK_TOKEN not in result.error
    for d in deliveries():
        assert SLACK_TOKEN not in (d.error or "") and SLACK_TOKEN not in json.dumps(d.payload)


# ------------------------------------------------------------------------------------------------
# PagerDuty


def test_pagerduty_trigger_and_resolve_share_the_dedup_key(httpserver: HTTPServer, pipelines) -> None:
    httpserver.expect_request("/v2/enqueue", method="POST").respond_with_json({"status": "success"}, status=202)
    cid = ch.create_channel(
        ADMIN,
        ChannelCreate(
            name="pd",
            kind="pagerduty",
            config={"routing_key": "R0UTINGKEY123", "events_url": httpserver.url_for("/v2/enqueue")},
        ),
    ).id
    alert = make_alert(pipelines[0], severity="warning", kind="retained_wal_bytes", object="cdc_orders")
    ch.dispatch(alert, "firing")
    assert settled(cid).status_code == 202
    ch.dispatch(resolve(alert), "resolved")
    wait_for(lambda: len(httpserver.log) == 2 and all(d.status == "sent" for d in deliveries(channel_id=cid)))

    trigger, resolved = (json.loads(r.get_data()) for r, _ in httpserver.log)
    assert trigger["routing_key"] == "R0UTINGKEY123" and trigger["event_action"] == "trigger"
    assert resolved["event_action"] == "resolve"
    assert trigger["dedup_key"] == resolved["dedup_key"] and trigger["dedup_key"].endswith(f"-{alert.id}")
    assert trigger["dedup_key"].startswith("cdcstudio-")
    p = trigger["payload"]
    assert p["severity"] == "warning" and p["source"] == "orders" and "lag 420 s" in p["summary"]
    assert p["timestamp"].endswith("Z") and p["custom_details"]["object"] == "cdc_orders"
    assert p["custom_details"]["value"] == 420.0
    assert p["component"] == "cdc_orders"
    for d in deliveries(channel_id=cid):
        assert "R0UTINGKEY123" not in json.dumps(d.payload)

    # a test triggers and resolves at once, so nobody is left paged
    assert ch.test_channel(ADMIN, cid).ok
    test_trigger, test_resolve = (json.loads(r.get_data()) for r, _ in httpserver.log[2:])
    assert (test_trigger["event_action"], test_resolve["event_action"]) == ("trigger", "resolve")
    assert test_trigger["dedup_key"] == test_resolve["dedup_key"] != trigger["dedup_key"]
    assert test_trigger["payload"]["severity"] == "info" and "component" in test_trigger["payload"]


# ------------------------------------------------------------------------------------------------
# Email


class Keeper:
    """An aiosmtpd handler that keeps every message it is given."""

    def __init__(self) -> None:
        self.messages: list[MailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802, ANN001
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Controller, Keeper]]:
    keeper = Keeper()
    controller = Controller(keeper, hostname="127.0.0.1", port=closed_port())
    controller.start()
    yield controller, keeper
    controller.stop()


def _authenticator(server, session, envelope, mechanism, auth_data):  # noqa: ANN001, ANN202
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"alerts", b"M4il-pass")
    return AuthResult(success=ok, handled=False)  # not handled: aiosmtpd answers 535 itself


@pytest.fixture
def smtp_auth() -> Iterator[tuple[Controller, Keeper]]:
    keeper = Keeper()
    controller = Controller(
        keeper,
        hostname="127.0.0.1",
        port=closed_port(),
        authenticator=_authenticator,
        auth_require_tls=False,
        auth_required=True,
    )
    controller.start()
    yield controller, keeper
    controller.stop()


def email_config(controller: Controller, **kw) -> dict:
    return {
        "host": "127.0.0.1",
        "port": controller.port,
        "security": "none",
        "sender": "CDC Studio <cdc@example.com>",
        "recipients": ["oncall@example.com", "dba@example.com"],
        **kw,
    }


def test_email_over_plain_smtp(smtp, pipelines) -> None:
    controller, keeper = smtp
    cid = ch.create_channel(ADMIN, ChannelCreate(name="mail", kind="email", config=email_config(controller))).id
    alert = make_alert(pipelines[0], object="public.orders")
    ch.dispatch(alert, "firing")
    row = settled(cid)
    assert (row.status, row.status_code) == ("sent", 250)
    mail = keeper.messages[0]
    assert mail["Subject"] == "[CDC Studio] CRITICAL firing: lag 420 s > 300 s"
    assert keeper.envelopes[0] == ("cdc@example.com", ["oncall@example.com", "dba@example.com"])
    text = mail.get_content()
    for needle in ("orders", "public.orders", "420.0", "300.0", "lag_seconds", "critical", str(alert.id)):
        assert needle in text

    ch.dispatch(resolve(alert), "resolved")
    wait_for(lambda: len(keeper.messages) == 2)
    assert keeper.messages[1]["Subject"] == "[CDC Studio] CRITICAL resolved: lag 420 s > 300 s"


def test_email_login(smtp_auth, pipelines) -> None:
    controller, keeper = smtp_auth
    good = email_config(controller, username="alerts", password="M4il-pass")
    cid = ch.create_channel(ADMIN, ChannelCreate(name="mail", kind="email", config=good)).id
    assert ch.test_channel(ADMIN, cid).ok
    assert keeper.messages[0]["Subject"].startswith("[CDC Studio] INFO test: Test notification")

    bad = ch.create_channel(
        ADMIN,
        ChannelCreate(name="bad", kind="email", config=email_config(controller, username="alerts", password="nope-X1")),
    )
    result = ch.test_channel(ADMIN, bad.id)
    assert not result.ok and result.status_code == 535 and "nope-X1" not in (result.error or "")
    assert len(keeper.messages) == 1
    test_rows = deliveries(channel_id=bad.id)
    assert [(d.event, d.status, d.status_code) for d in test_rows] == [("test", "failed", 535)]


# ------------------------------------------------------------------------------------------------
# Routing


def test_routing_by_pipeline_severity_and_enabled(httpserver: HTTPServer, pipelines) -> None:
    httpserver.expect_request("/r").respond_with_data("ok")
    url = httpserver.url_for("/r")
    orders, billing = pipelines
    every = webhook(url, "every", min_severity="info")
    only_orders = webhook(url, "orders-only", pipeline_ids=[orders], min_severity="info")
    critical_only = webhook(url, "critical-only", min_severity="critical")
    webhook(url, "off", enabled=False, min_severity="info")

    def routed(alert: Alert) -> set[int]:
        ch.dispatch(alert, "firing")
        return {d.channel_id for d in deliveries(alert_id=alert.id)}

    assert routed(make_alert(orders, "info")) == {every, only_orders}
    assert routed(make_alert(billing, "warning")) == {every}
    assert routed(make_alert(billing, "critical")) == {every, critical_only}
    assert routed(make_alert(orders, "critical")) == {every, only_orders, critical_only}
    assert routed(make_alert(None, "critical", kind="scheduler")) == {every, critical_only}


def test_resolved_only_to_the_channels_that_got_the_firing(httpserver: HTTPServer, pipelines) -> None:
    httpserver.expect_request("/r").respond_with_data("ok")
    url = httpserver.url_for("/r")
    orders, billing = pipelines
    got_it = webhook(url, "orders-hook", pipeline_ids=[orders])
    webhook(url, "billing-hook", pipeline_ids=[billing])
    alert = make_alert(orders)
    ch.dispatch(alert, "firing")
    # a channel added (or rerouted) while the alert fires is not told it resolved: it never heard of it
    webhook(url, "late-hook")
    ch.dispatch(resolve(alert), "resolved")
    rows = deliveries(alert_id=alert.id)
    assert [(d.channel_id, d.event) for d in rows] == [(got_it, "firing"), (got_it, "resolved")]
    views = ch.deliveries_of_alert(VIEWER, alert.id)
    assert [v.event for v in views] == ["resolved", "firing"] and views[0].channel_name == "orders-hook"
    assert ch.list_deliveries(VIEWER, channel_id=got_it, limit=1)[0].event == "resolved"


def test_dispatch_never_raises(pipelines, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*a, **kw):  # noqa: ANN002, ANN003, ANN202
        raise RuntimeError("database gone")

    monkeypatch.setattr(ch.store, "list_channels", broken)
    ch.dispatch(make_alert(pipelines[0]), "firing")  # logged, not raised


# ------------------------------------------------------------------------------------------------
# CRUD, secrets, validation, roles


def test_secrets_are_encrypted_write_only_and_kept_on_update(httpserver: HTTPServer, app_db, pipelines) -> None:
    httpserver.expect_request("/s").respond_with_data("ok")
    created = ch.create_channel(
        EDITOR,
        ChannelCreate(name="signed", kind="webhook", config={"url": httpserver.url_for("/s"), "secret": HOOK_SECRET}),
    )
    assert created.config == {"url": httpserver.url_for("/s"), "secret": "***"}
    ch.update_channel(EDITOR, created.id, ChannelUpdate(config={"url": httpserver.url_for("/s")}, min_severity="info"))
    ch.update_channel(EDITOR, created.id, ChannelUpdate(config={"url": httpserver.url_for("/s"), "secret": "***"}))
    shown = ch.get_channel(VIEWER, created.id)
    assert shown.config["secret"] == "***" and shown.min_severity == "info"
    assert ch.test_channel(EDITOR, created.id).ok
    request = httpserver.log[-1][0]
    assert (
        request.headers["X-CDC-Studio-Signature"]
        == "sha256=" + hmac.new(HOOK_SECRET.encode(), request.get_data(), hashlib.sha256).hexdigest()
    )

    slack = ch.create_channel(
        EDITOR, ChannelCreate(name="sl", kind="slack", config={"webhook_url": f"https://hooks.example/{SLACK_TOKEN}"})
    )
    assert slack.config == {"webhook_url": "***"}
    raw = Path(app_db.removeprefix("sqlite:///"))
    with sqlite3.connect(raw) as conn:
        rows = conn.execute("select name, kind, config, secrets_encrypted, pipeline_ids from channels").fetchall()
    assert len(rows) == 2
    for row in rows:
        assert HOOK_SECRET not in repr(row) and SLACK_TOKEN not in repr(row)
    assert all(row[3] for row in rows)  # the secrets are there, encrypted

    # a null secret removes it: the webhook goes out unsigned
    ch.update_channel(EDITOR, created.id, ChannelUpdate(config={"url": httpserver.url_for("/s"), "secret": None}))
    assert "secret" not in ch.get_channel(VIEWER, created.id).config
    assert ch.test_channel(EDITOR, created.id).ok
    assert "X-CDC-Studio-Signature" not in httpserver.log[-1][0].headers


@pytest.mark.parametrize(
    ("kind", "config", "field"),
    [
        ("webhook", {}, "config.url"),
        ("webhook", {"url": "ftp://x"}, "config.url"),
        ("slack", {"webhook_url": "not a url"}, "config.webhook_url"),
        ("email", {"host": "m", "port": 25, "sender": "a@b", "recipients": []}, "config.recipients"),
        ("email", {"host": "m", "port": 25, "sender": "a@b", "recipients": ["x"]}, "config.recipients"),
        (
            "email",
            {"host": "m", "port": 25, "sender": "a@b", "recipients": ["x@y"], "security": "tls"},
            "config.security",
        ),
        ("email", {"host": "m", "port": 0, "sender": "a@b", "recipients": ["x@y"]}, "config.port"),
        ("pagerduty", {}, "config.routing_key"),
        ("pagerduty", {"routing_key": "k", "events_url": "nope"}, "config.events_url"),
        ("webhook", {"url": "http://x", "extra": 1}, "config.extra"),
    ],
)
def test_config_is_validated_per_kind(app_db, kind: str, config: dict, field: str) -> None:
    with pytest.raises(ValidationFailed) as err:
        ch.create_channel(ADMIN, ChannelCreate(name="x", kind=kind, config=config))
    assert err.value.field == field
    assert ch.list_channels(VIEWER) == []


def test_crud_names_pipelines_and_roles(app_db, pipelines) -> None:
    recipients = "oncall@example.com, dba@example.com"
    mail = ch.create_channel(
        EDITOR,
        ChannelCreate(
            name="mail",
            kind="email",
            config={"host": "smtp.example.com", "port": 587, "sender": "a@example.com", "recipients": recipients},
            pipeline_ids=[pipelines[1], pipelines[0], pipelines[1]],
        ),
    )
    assert mail.config["recipients"] == ["oncall@example.com", "dba@example.com"]
    assert mail.config["security"] == "starttls" and mail.pipeline_ids == sorted(pipelines)
    with pytest.raises(Conflict):
        ch.create_channel(EDITOR, ChannelCreate(name="mail", kind="webhook", config={"url": "http://x"}))
    with pytest.raises(ValidationFailed) as err:
        ch.update_channel(EDITOR, mail.id, ChannelUpdate(pipeline_ids=[9999]))
    assert err.value.field == "pipeline_ids"
    with pytest.raises(PermissionDenied):
        ch.create_channel(VIEWER, ChannelCreate(name="v", kind="webhook", config={"url": "http://x"}))
    with pytest.raises(PermissionDenied):
        ch.test_channel(VIEWER, mail.id)
    with pytest.raises(PermissionDenied):
        ch.delete_channel(VIEWER, mail.id)
    # changing the kind needs the new kind's config
    with pytest.raises(ValidationFailed):
        ch.update_channel(EDITOR, mail.id, ChannelUpdate(kind="pagerduty"))
    # pages may hand plain dicts: checked the same way
    with pytest.raises(ValidationFailed) as err:
        ch.update_channel(EDITOR, mail.id, {"min_severity": "loud"})
    assert err.value.field == "min_severity"
    moved = ch.update_channel(EDITOR, mail.id, {"kind": "pagerduty", "config": {"routing_key": "rk"}})
    assert moved.kind == "pagerduty" and moved.config == {"routing_key": "***"}
    ch.delete_channel(EDITOR, mail.id)
    assert ch.list_channels(VIEWER) == []
    with session_scope() as session:
        assert session.exec(select(Channel)).all() == []


# ------------------------------------------------------------------------------------------------
# Email over TLS: a self-signed certificate for 127.0.0.1, trusted through SSL_CERT_FILE (what OpenSSL's
# default verify paths read), so the client verifies it as it would a real server's


@pytest.fixture
def tls_files(tmp_path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def _server_context(tls_files: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*tls_files)
    return context


def test_email_starttls_with_login(tls_files, pipelines, monkeypatch: pytest.MonkeyPatch) -> None:
    keeper = Keeper()
    controller = Controller(
        keeper,
        hostname="127.0.0.1",
        port=closed_port(),
        tls_context=_server_context(tls_files),
        require_starttls=True,
        authenticator=_authenticator,
        auth_required=True,  # and AUTH only after TLS (aiosmtpd's default)
    )
    controller.start()
    try:
        monkeypatch.setenv("SSL_CERT_FILE", str(tls_files[0]))
        config = email_config(controller, security="starttls", username="alerts", password="M4il-pass")
        cid = ch.create_channel(ADMIN, ChannelCreate(name="tls", kind="email", config=config)).id
        ch.dispatch(make_alert(pipelines[0], severity="warning"), "reminder")
        row = settled(cid)
        assert (row.status, row.status_code, row.error) == ("sent", 250, None)
        assert keeper.messages[0]["Subject"] == "[CDC Studio] WARNING firing (reminder): lag 420 s > 300 s"

        plain = ch.create_channel(ADMIN, ChannelCreate(name="plain", kind="email", config=email_config(controller)))
        result = ch.test_channel(ADMIN, plain.id)  # the server insists on STARTTLS first
        assert not result.ok and result.status_code == 530
    finally:
        controller.stop()


def test_email_ssl_verifies_the_server(tls_files, pipelines, monkeypatch: pytest.MonkeyPatch) -> None:
    keeper = Keeper()
    controller = Controller(keeper, hostname="127.0.0.1", port=closed_port(), ssl_context=_server_context(tls_files))
    controller.start()
    try:
        config = email_config(controller, security="ssl")
        cid = ch.create_channel(ADMIN, ChannelCreate(name="ssl", kind="email", config=config)).id
        monkeypatch.setenv("SSL_CERT_FILE", str(tls_files[0].with_name("none.pem")))
        untrusted = ch.test_channel(ADMIN, cid)
        assert not untrusted.ok and "CERTIFICATE_VERIFY_FAILED" in (untrusted.error or "")
        assert keeper.messages == []
        monkeypatch.setenv("SSL_CERT_FILE", str(tls_files[0]))
        assert ch.test_channel(ADMIN, cid).ok
        assert keeper.messages[0]["Subject"].startswith("[CDC Studio] INFO test:")
    finally:
        controller.stop()


def test_a_changed_secret_key_needs_the_secrets_again(httpserver: HTTPServer, pipelines) -> None:
    httpserver.expect_request("/k").respond_with_data("ok")
    cid = webhook(httpserver.url_for("/k"), config={"secret": HOOK_SECRET})
    with session_scope() as session:  # as if encrypted under another installation's key
        row = session.get(Channel, cid)
        row.secrets_encrypted = "gAAAAABnot-a-valid-token"
        session.add(row)
    assert ch.get_channel(VIEWER, cid).config == {"url": httpserver.url_for("/k")}  # it still lists
    ch.dispatch(make_alert(pipelines[0]), "firing")
    row = settled(cid)
    assert row.status == "pending" and "cannot be decrypted" in row.error and len(httpserver.log) == 0
    # entering the secret again repairs it
    ch.update_channel(ADMIN, cid, ChannelUpdate(config={"url": httpserver.url_for("/k"), "secret": "new-Secret-1"}))
    assert ch.retry_due(now=aware(row.next_attempt_at)) == 1
    request = httpserver.log[0][0]
    expected = "sha256=" + hmac.new(b"new-Secret-1", request.get_data(), hashlib.sha256).hexdigest()
    assert request.headers["X-CDC-Studio-Signature"] == expected
