"""One config and one sender per channel kind: check the config; build the kind's message from an alert
document and send it.

An alert document is the webhook body's `alert` object (see `core.monitoring.channels.alert_doc`).
Senders never raise for a failed delivery: they answer an `Outcome`, whose error text has every
secret of the channel blanked out (an error of a Slack webhook may quote its URL, the token).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.security import instance_tag

SIGNATURE_HEADER = "X-CDC-Studio-Signature"
PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
USER_AGENT = "CDC-Studio-Notifier/1"
MAX_ERROR_CHARS = 500
_MAIL_POLICY = policy.SMTP.clone(max_line_length=998)


@dataclass(frozen=True)
class Outcome:
    """What one attempt gave: `retry_after_s` is the receiver's own wish for the next attempt (Slack's 429)."""

    ok: bool
    status_code: int | None = None
    error: str | None = None
    retry_after_s: float | None = None


@dataclass(frozen=True)
class Message:
    """What to send: the alert document, the event (firing | resolved | reminder | test) and the send time."""

    alert: dict
    event: str
    sent_at: datetime

    @property
    def state(self) -> str:
        """The alert's state as receivers see it: a reminder or a test is a firing."""
        return "resolved" if self.event == "resolved" else "firing"


Sender = Callable[[dict, dict, Message, float], Outcome]


# Each kind's config, checked when a channel is saved; its secret fields are stored encrypted, apart.
SECRET_FIELDS: dict[str, tuple[str, ...]] = {
    "webhook": ("secret",),
    "slack": ("webhook_url",),
    "email": ("password",),
    "pagerduty": ("routing_key",),
}


def _http_url(value: str) -> str:
    value = value.strip()
    if not value.lower().startswith(("http://", "https://")) or len(value.split("/", 3)[2]) == 0:
        raise ValueError("must be an http:// or https:// URL")
    return value


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class WebhookConfig(_Config):
    url: str = Field(max_length=2000)
    secret: str | None = Field(default=None, max_length=500)

    _url = field_validator("url")(_http_url)


class SlackConfig(_Config):
    webhook_url: str = Field(max_length=2000)

    _url = field_validator("webhook_url")(_http_url)


class EmailConfig(_Config):
    host: str = Field(min_length=1, max_length=255)
    port: int = Field(ge=1, le=65535)
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = Field(default=None, max_length=320)
    password: str | None = Field(default=None, max_length=500)
    sender: str = Field(min_length=3, max_length=320)
    recipients: list[str] = Field(min_length=1, max_length=50)

    @field_validator("recipients", mode="before")
    @classmethod
    def _split(cls, v: Any) -> Any:
        return [r.strip() for r in v.split(",") if r.strip()] if isinstance(v, str) else v

    @field_validator("recipients")
    @classmethod
    def _addresses(cls, v: list[str]) -> list[str]:
        bad = [r for r in v if "@" not in r or any(c.isspace() for c in r.strip())]
        if bad:
            raise ValueError(f"not an email address: {bad[0]!r}")
        return [r.strip() for r in v]

    @field_validator("sender")
    @classmethod
    def _sender(cls, v: str) -> str:
        if "@" not in v:
            raise ValueError("must be an email address (optionally 'Name <address>')")
        return v


class PagerDutyConfig(_Config):
    routing_key: str = Field(min_length=1, max_length=200)
    events_url: str | None = Field(default=None, max_length=2000)

    @field_validator("events_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return _http_url(v) if v else None


CONFIGS: dict[str, type[_Config]] = {
    "webhook": WebhookConfig,
    "slack": SlackConfig,
    "email": EmailConfig,
    "pagerduty": PagerDutyConfig,
}


def iso(dt: datetime | None) -> str | None:
    """ISO-8601 in UTC (`...Z`); a naive time is taken as UTC (SQLite hands them back naive)."""
    if dt is None:
        return None
    aware = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    return aware.isoformat().replace("+00:00", "Z")


def redact(text: str, secrets: Iterable[str]) -> str:
    """The text with every secret (and, for URLs, their path and query, where tokens live) as ***."""
    for secret in secrets:
        if not secret:
            continue
        text = text.replace(secret, "***")
        parts = urlsplit(secret)
        for piece in (parts.path, parts.query):
            if len(piece) > 1:
                text = text.replace(piece, "/***" if piece.startswith("/") else "***")
        for segment in parts.path.split("/"):
            if len(segment) >= 16:  # a token on its own (Slack's is 24 characters; its T/B ids are shorter)
                text = text.replace(segment, "***")
    return text[:MAX_ERROR_CHARS]


def _http_outcome(response: httpx.Response) -> Outcome:
    if 200 <= response.status_code < 300:
        return Outcome(ok=True, status_code=response.status_code)
    retry_after = _retry_after(response.headers.get("Retry-After"))
    body = response.text.strip().replace("\n", " ")[:200]
    error = f"HTTP {response.status_code}" + (f": {body}" if body else "")
    return Outcome(ok=False, status_code=response.status_code, error=error, retry_after_s=retry_after)


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # the HTTP-date form: Slack sends seconds, and our own backoff covers the rest


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> Outcome:
    """POST raw bytes; a network failure is an outcome, not an exception."""
    all_headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers}
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False) as client:
            return _http_outcome(client.post(url, content=body, headers=all_headers))
    except httpx.HTTPError as exc:
        return Outcome(ok=False, error=f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)


def _json_bytes(doc: dict) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def webhook_body(msg: Message) -> dict:
    """The documented webhook body: the alert (its state per event), the event and when it was sent."""
    return {"alert": {**msg.alert, "state": msg.state}, "event": msg.event, "sent_at": iso(msg.sent_at)}


def sign(secret: str, body: bytes) -> str:
    """The signature header's value: `sha256=` and the hex HMAC-SHA256 of the exact body bytes."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def send_webhook(config: dict, secrets: dict, msg: Message, timeout: float) -> Outcome:
    """POST the webhook body, signed when the channel has a secret."""
    body = _json_bytes(webhook_body(msg))
    headers = {SIGNATURE_HEADER: sign(secrets["secret"], body)} if secrets.get("secret") else {}
    return _post(config["url"], body, headers, timeout)


def _headline(msg: Message) -> str:
    alert = msg.alert
    what = {"resolved": "Resolved", "reminder": "Still firing", "test": "Test"}.get(msg.event, "Firing")
    return f"{what}: {alert.get('message') or alert.get('kind')}"


def _figures(alert: dict) -> str:
    value, threshold = alert.get("value"), alert.get("threshold")
    if value is None and threshold is None:
        return "-"
    return f"{value if value is not None else '-'} (threshold {threshold if threshold is not None else '-'})"


def slack_body(msg: Message) -> dict:
    """A Slack incoming-webhook message: `text` for notifications and `blocks` for the channel."""
    alert = msg.alert
    severity = str(alert.get("severity", "")).upper()
    pipeline = alert.get("pipeline_name") or "-"
    fields = [
        {"type": "mrkdwn", "text": f"*Severity*\n{severity}"},
        {"type": "mrkdwn", "text": f"*Pipeline*\n{pipeline}"},
        {
            "type": "mrkdwn",
            "text": f"*Rule*\n{alert.get('kind')}" + (f" on {alert['object']}" if alert.get("object") else ""),
        },
        {"type": "mrkdwn", "text": f"*Value*\n{_figures(alert)}"},
    ]
    times = f"started {alert.get('started_at') or '-'}"
    if alert.get("resolved_at"):
        times += f" · resolved {alert['resolved_at']}"
    times += f" · sent {iso(msg.sent_at)} · CDC Studio"
    return {
        "text": f"[{severity}] {_headline(msg)} ({pipeline})",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": f"[{severity}] {_headline(msg)}"[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": str(alert.get("message") or "")[:3000] or "-"}},
            {"type": "section", "fields": fields},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": times}]},
        ],
    }


def send_slack(config: dict, secrets: dict, msg: Message, timeout: float) -> Outcome:
    """POST to the Slack incoming webhook (its URL is the secret); a 429 carries Slack's Retry-After."""
    return _post(secrets["webhook_url"], _json_bytes(slack_body(msg)), {}, timeout)


def dedup_key(alert: dict) -> str:
    """PagerDuty's incident key: the same for an alert's trigger, reminders and resolve, and apart from
    another installation's alerts of the same id."""
    return f"cdcstudio-{instance_tag()}-{alert.get('id') if alert.get('id') is not None else 'test'}"


def pagerduty_body(routing_key: str, msg: Message) -> dict:
    """A PagerDuty Events v2 event: trigger (firing, reminder, test) or resolve, keyed by the alert."""
    alert = msg.alert
    severity = alert.get("severity") if alert.get("severity") in ("critical", "warning", "info") else "error"
    details = {k: v for k, v in alert.items() if v is not None}
    return {
        "routing_key": routing_key,
        "event_action": "resolve" if msg.event == "resolved" else "trigger",
        "dedup_key": dedup_key(alert),
        "client": "CDC Studio",
        "payload": {
            "summary": _headline(msg)[:1024],
            "source": alert.get("pipeline_name") or "cdc-studio",
            "severity": severity,
            "timestamp": alert.get("started_at") or iso(msg.sent_at),
            "class": alert.get("kind"),
            "custom_details": details,
            **({"component": alert["object"]} if alert.get("object") else {}),
        },
    }


def send_pagerduty(config: dict, secrets: dict, msg: Message, timeout: float) -> Outcome:
    """POST the event to the Events v2 endpoint (PagerDuty's own unless the channel names another)."""
    body = _json_bytes(pagerduty_body(secrets["routing_key"], msg))
    return _post(config.get("events_url") or PAGERDUTY_EVENTS_URL, body, {}, timeout)


def email_message(config: dict, msg: Message) -> EmailMessage:
    """The notification mail: a subject like `[CDC Studio] CRITICAL firing: <message>` and the fields."""
    alert = msg.alert
    label = {"reminder": "firing (reminder)", "test": "test"}.get(msg.event, msg.state)
    # no folding of a long subject: some readers keep the fold's space ("Subject:\r\n [CDC Studio] ...")
    mail = EmailMessage(policy=_MAIL_POLICY)
    what = str(alert.get("message") or alert.get("kind"))[:300]
    mail["Subject"] = f"[CDC Studio] {str(alert.get('severity', '')).upper()} {label}: {what}"
    mail["From"] = config["sender"]
    mail["To"] = ", ".join(config["recipients"])
    mail["Date"] = formatdate(msg.sent_at.timestamp(), usegmt=True)
    mail["Message-ID"] = make_msgid(domain="cdc-studio")
    lines = [_headline(msg), ""]
    for key in (
        "severity",
        "kind",
        "pipeline_name",
        "object",
        "message",
        "value",
        "threshold",
        "started_at",
        "resolved_at",
        "id",
    ):
        lines.append(
            f"{key.replace('_', ' ').capitalize():<14} {alert.get(key) if alert.get(key) is not None else '-'}"
        )
    lines += [f"{'State':<14} {msg.state}", f"{'Sent at':<14} {iso(msg.sent_at)}", "", "-- CDC Studio"]
    mail.set_content("\n".join(lines))
    return mail


def _smtp(config: dict, timeout: float) -> smtplib.SMTP:
    host, port, security = config["host"], int(config["port"]), config.get("security", "starttls")
    context = ssl.create_default_context()
    if security == "ssl":
        return smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
    smtp = smtplib.SMTP(host, port, timeout=timeout)
    if security == "starttls":
        smtp.starttls(context=context)
    return smtp


def send_email(config: dict, secrets: dict, msg: Message, timeout: float) -> Outcome:
    """Send the mail over SMTP (STARTTLS, SSL or plain), logging in when the channel has a username."""
    try:
        with _smtp(config, timeout) as smtp:
            if config.get("username"):
                smtp.login(config["username"], secrets.get("password") or "")
            smtp.send_message(email_message(config, msg))
        return Outcome(ok=True, status_code=250)
    except smtplib.SMTPResponseException as exc:
        text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        return Outcome(ok=False, status_code=exc.smtp_code, error=f"SMTP {exc.smtp_code}: {text}")
    except (smtplib.SMTPException, OSError) as exc:
        return Outcome(ok=False, error=f"{type(exc).__name__}: {exc}")


SENDERS: dict[str, Sender] = {
    "webhook": send_webhook,
    "slack": send_slack,
    "email": send_email,
    "pagerduty": send_pagerduty,
}


def send(kind: str, config: dict, secrets: dict, msg: Message, timeout: float) -> Outcome:
    """Send with the kind's sender; the outcome's error has the channel's secrets blanked out."""
    sender = SENDERS.get(kind)
    if sender is None:
        return Outcome(ok=False, error=f"unknown channel kind '{kind}'")
    try:
        outcome = sender(config, secrets, msg, timeout)
    except Exception as exc:  # a bug or an odd config must not kill the delivery worker
        outcome = Outcome(ok=False, error=f"{type(exc).__name__}: {exc}")
    if outcome.error:
        outcome = Outcome(
            ok=outcome.ok,
            status_code=outcome.status_code,
            error=redact(outcome.error, secrets.values()),
            retry_after_s=outcome.retry_after_s,
        )
    return outcome
