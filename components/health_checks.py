"""A health report (core.monitoring.health): the overall status and each check with its detail."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from nicegui import ui

from components.format import ago

STATUS_ICONS = {"ok": ("check_circle", "positive"), "warning": ("warning", "warning"), "failing": ("error", "negative")}
OVERALL_COLORS = {"healthy": "positive", "degraded": "warning", "failing": "negative"}


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


class HealthChecks(ui.column):
    """The latest checks of a pipeline (or of the app)."""

    def __init__(self, marker: str = "health") -> None:
        super().__init__()
        self.classes("w-full gap-1")
        self.mark(marker)

    def show(self, report: Any) -> None:
        """Replace what is shown with `report` ({status, checks: [{name, status, detail, checked_at}]})."""
        self.clear()
        with self:
            status = str(_get(report, "status") or "unknown")
            with ui.row().classes("items-center gap-2"):
                ui.label("Health").classes("text-grey-7")
                ui.badge(status, color=OVERALL_COLORS.get(status, "grey")).mark("health-status")
            for check in _get(report, "checks") or []:
                icon, color = STATUS_ICONS.get(str(_get(check, "status")), ("help", "grey"))
                with ui.row().classes("items-center gap-2 no-wrap"):
                    ui.icon(icon, color=color)
                    ui.label(str(_get(check, "name"))).classes("font-medium min-w-48")
                    ui.label(str(_get(check, "detail") or "")).classes("text-sm")
                    checked = _get(check, "checked_at")
                    if checked is not None:
                        at = datetime.fromisoformat(checked) if isinstance(checked, str) else checked
                        ui.label(f"checked {ago(at)}").classes("text-grey-6 text-xs")
