"""Alerts as an on-call engineer reads them: severity, what, where, since when; ack and silence."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from nicegui import ui

from components.format import ago, timestamp

SEVERITY_COLORS = {"critical": "negative", "warning": "warning", "info": "info"}
SILENCE_HOURS = (1, 4, 24)


def _get(alert: Any, name: str) -> Any:
    return alert.get(name) if isinstance(alert, dict) else getattr(alert, name, None)


def summary(alert: Any) -> str:
    """One line: 'CRITICAL retained_wal_bytes on orders (slot x): message'."""
    where = _get(alert, "pipeline_name") or (
        f"pipeline {_get(alert, 'pipeline_id')}" if _get(alert, "pipeline_id") else ""
    )
    obj = _get(alert, "object")
    place = f" on {where}" if where else ""
    place += f" ({obj})" if obj else ""
    return f"{str(_get(alert, 'severity')).upper()} {_get(alert, 'kind')}{place}: {_get(alert, 'message')}"


class AlertList(ui.column):
    """Rows of alerts; with `on_ack`/`on_silence` (editors) each firing row offers Ack and Silence, with
    `on_notifications` a row can show the notifications sent for it."""

    def __init__(
        self,
        *,
        on_ack: Callable[[int], Awaitable[None]] | None = None,
        on_silence: Callable[[int, int], Awaitable[None]] | None = None,
        on_notifications: Callable[[int], Awaitable[list]] | None = None,
        empty: str = "No alerts.",
        marker: str = "alerts",
    ) -> None:
        super().__init__()
        self.classes("w-full gap-1")
        self.mark(marker)
        self._on_ack, self._on_silence, self._on_notifications = on_ack, on_silence, on_notifications
        self._empty = empty

    def show(self, alerts: Sequence[Any]) -> None:
        """Replace the rows."""
        self.clear()
        with self:
            if not alerts:
                ui.label(self._empty).classes("text-grey-7").mark("alerts-empty")
                return
            for alert in alerts:
                self._row(alert)

    def _row(self, alert: Any) -> None:
        alert_id, state = _get(alert, "id"), _get(alert, "state")
        with ui.card().classes("w-full py-2").mark(f"alert-{alert_id}"):
            with ui.row().classes("w-full items-center gap-3 no-wrap"):
                severity = str(_get(alert, "severity"))
                ui.badge(severity.upper(), color=SEVERITY_COLORS.get(severity, "grey")).classes(
                    "min-w-20 justify-center"
                )
                ui.badge(state, color="negative" if state == "firing" else "grey-6", outline=state != "firing")
                with ui.column().classes("gap-0 flex-grow"):
                    ui.label(summary(alert)).classes("font-medium")
                    ui.label(self._times(alert)).classes("text-grey-7 text-sm")
                self._buttons(alert_id, state, alert)
            if self._on_notifications is not None:
                self._notifications(alert_id)

    @staticmethod
    def _times(alert: Any) -> str:
        parts = [f"since {timestamp(_get(alert, 'started_at'))}"]
        if _get(alert, "fired_at"):
            parts.append(f"fired {ago(_get(alert, 'fired_at'))}")
        if _get(alert, "resolved_at"):
            parts.append(f"resolved {timestamp(_get(alert, 'resolved_at'))}")
        if _get(alert, "acked_by"):
            parts.append(f"acknowledged by {_get(alert, 'acked_by')}")
        if _get(alert, "silenced_until"):
            parts.append(f"silenced until {timestamp(_get(alert, 'silenced_until'))}")
        value, threshold = _get(alert, "value"), _get(alert, "threshold")
        if value is not None:
            parts.append(f"value {value:,.6g}" + (f" / threshold {threshold:,.6g}" if threshold is not None else ""))
        return " · ".join(parts)

    def _buttons(self, alert_id: int, state: str, alert: Any) -> None:
        if state == "resolved" or self._on_ack is None or self._on_silence is None:
            return
        on_ack, on_silence = self._on_ack, self._on_silence
        if not _get(alert, "acked_by"):
            ui.button("Ack", icon="done", on_click=lambda: on_ack(alert_id)).props("outline dense").mark(
                f"ack-{alert_id}"
            )
        with ui.button("Silence", icon="notifications_off").props("outline dense").mark(f"silence-{alert_id}"):
            with ui.menu():
                for hours in SILENCE_HOURS:
                    ui.menu_item(f"for {hours} h", on_click=lambda h=hours: on_silence(alert_id, h))

    def _notifications(self, alert_id: int) -> None:
        load = self._on_notifications
        assert load is not None
        with ui.expansion("Notifications", icon="send").classes("w-full text-sm") as box:
            body = ui.column().classes("gap-0")

            async def opened(e) -> None:  # noqa: ANN001 - ValueChangeEventArguments
                if not e.value:
                    return
                deliveries = await load(alert_id)
                body.clear()
                with body:
                    if not deliveries:
                        ui.label("No notification was sent (no channel matched, or it never fired).")
                    for d in deliveries:
                        ui.label(delivery_line(d)).classes("text-sm")

            box.on_value_change(opened)


def delivery_line(d: Any) -> str:
    """One delivery as a log line."""
    code = _get(d, "status_code")
    error = _get(d, "error")
    channel = _get(d, "channel_name") or f"channel {_get(d, 'channel_id')}"
    line = f"{timestamp(_get(d, 'created_at'))} · {channel} · {_get(d, 'event')} · {_get(d, 'status')}"
    line += f" · HTTP {code}" if code else ""
    line += f" · {_get(d, 'attempts')} attempt(s)" if _get(d, "attempts") else ""
    return line + (f" · {error}" if error else "")
