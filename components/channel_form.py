"""A form for one notification channel: webhook, Slack, email (SMTP) or PagerDuty.

Secret fields are write-only: they are never filled from the stored channel; left empty on an edit,
the stored secret is kept.
"""

from __future__ import annotations

from typing import Any

from nicegui import ui

KINDS = {"webhook": "Webhook", "slack": "Slack", "email": "Email (SMTP)", "pagerduty": "PagerDuty"}
# kind -> [(config key, label, secret, kind of input)]
FIELDS: dict[str, list[tuple[str, str, bool, str]]] = {
    "webhook": [("url", "URL", False, "text"), ("secret", "HMAC secret (optional)", True, "text")],
    "slack": [("webhook_url", "Incoming webhook URL", True, "text")],
    "email": [
        ("host", "SMTP host", False, "text"),
        ("port", "Port", False, "number"),
        ("security", "Security", False, "security"),
        ("username", "Username (optional)", False, "text"),
        ("password", "Password (optional)", True, "text"),
        ("sender", "From", False, "text"),
        ("recipients", "To (comma separated)", False, "list"),
    ],
    "pagerduty": [
        ("routing_key", "Routing key", True, "text"),
        ("events_url", "Events API URL (optional)", False, "text"),
    ],
}
SEVERITIES = ["info", "warning", "critical"]


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if obj is None:
        return default
    value = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
    return default if value is None else value


def config_of(kind: str, values: dict[str, Any]) -> dict[str, Any]:
    """The channel config from form values: empty optional fields left out, a secret left empty on an edit
    left out (the stored one is kept), recipients split, the port an int."""
    config: dict[str, Any] = {}
    for key, _label, _secret, input_kind in FIELDS[kind]:
        value = values.get(key)
        if isinstance(value, str):
            value = value.strip()
        if value in (None, ""):  # an optional field, or a secret kept as stored
            continue
        if input_kind == "list":
            value = [v.strip() for v in str(value).split(",") if v.strip()]
        elif input_kind == "number":
            value = int(value)
        config[key] = value
    return config


class ChannelForm(ui.column):
    """Name, kind, the kind's fields, routing (pipelines, minimum severity) and on/off."""

    def __init__(self, pipelines: dict[int, str], channel: Any = None) -> None:
        super().__init__()
        self.classes("w-full gap-2")
        self.editing = channel is not None
        config = _get(channel, "config", {}) or {}
        with self:
            self.name = ui.input("Name", value=_get(channel, "name", "")).classes("w-full").mark("channel-name")
            self.kind = ui.select(KINDS, value=_get(channel, "kind", "webhook"), label="Kind").classes("w-full")
            self.kind.mark("channel-kind")
            self.kind.set_enabled(not self.editing)
            self.inputs: dict[str, dict[str, Any]] = {}
            self.boxes: dict[str, ui.column] = {}
            for kind, fields in FIELDS.items():
                with ui.column().classes("w-full gap-1") as box:
                    self.inputs[kind] = {
                        key: self._input(key, label, secret, how, config) for key, label, secret, how in fields
                    }
                self.boxes[kind] = box
            self.pipelines = ui.select(
                pipelines,
                value=list(_get(channel, "pipeline_ids", []) or []),
                multiple=True,
                label="Pipelines (none = all)",
            ).classes("w-full")
            self.min_severity = ui.select(
                SEVERITIES, value=_get(channel, "min_severity", "warning"), label="Minimum severity"
            )
            self.enabled = ui.switch("Enabled", value=bool(_get(channel, "enabled", True)))
        self.kind.on_value_change(lambda _e: self._show_kind())
        self._show_kind()

    def _input(self, key: str, label: str, secret: bool, how: str, config: dict) -> Any:
        if how == "security":
            return ui.select(["starttls", "ssl", "none"], value=config.get(key, "starttls"), label=label).classes(
                "w-full"
            )
        if how == "number":
            return ui.number(label, value=config.get(key, 587), precision=0).classes("w-full")
        if secret:
            hint = "stored; leave empty to keep it" if self.editing else ""
            field = ui.input(label, password=True, password_toggle_button=True, placeholder=hint).classes("w-full")
        else:
            value = config.get(key)
            value = ", ".join(value) if isinstance(value, list) else (value or "")
            field = ui.input(label, value=value).classes("w-full")
        return field.mark(f"channel-{key}")

    def _show_kind(self) -> None:
        for kind, box in self.boxes.items():
            box.set_visibility(kind == self.kind.value)

    def body(self) -> dict[str, Any]:
        """The create/update body of the API (core.monitoring.channels)."""
        kind = self.kind.value
        values = {key: field.value for key, field in self.inputs[kind].items()}
        return {
            "name": (self.name.value or "").strip(),
            "kind": kind,
            "config": config_of(kind, values),
            "pipeline_ids": list(self.pipelines.value or []),
            "min_severity": self.min_severity.value,
            "enabled": bool(self.enabled.value),
        }
