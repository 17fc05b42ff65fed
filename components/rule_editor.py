"""Alert rules, editable in place: threshold, how long the condition must hold, severity, on/off."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from nicegui import ui

SEVERITIES = ["info", "warning", "critical"]
KIND_HELP = {  # what a rule's threshold means, per kind
    "retained_wal_bytes": "bytes of WAL the slot retains",
    "slot_wal_status": "fires on wal_status unreserved / lost (no threshold)",
    "slot_inactive": "slot inactive while the pipeline should run",
    "stalled": "bytes the server's WAL moves while the confirmed position stays",
    "lag_seconds": "seconds behind the source",
    "pipeline_error": "pipeline in ERROR",
    "recovery_failing": "automatic recovery failing",
    "connector_task_failed": "a Kafka Connect task FAILED",
    "run_failed": "a full load or scheduled run failed",
    "no_changes": "hours without an applied change",
    "data_mismatch": "a confirmed data mismatch",
    "schema_drift": "the source schema changed",
}


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def duration(seconds: int | None) -> str:
    """'at once', '90 s', '5 min', '2 h'."""
    if not seconds:
        return "at once"
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


class RuleEditor(ui.column):
    """One row per rule. Editors change a row and press Save; `on_delete` removes a pipeline's own rule,
    `on_override` (on a pipeline page) makes a pipeline's own copy of a default rule."""

    def __init__(
        self,
        *,
        on_save: Callable[[int, dict], Awaitable[None]] | None,
        on_delete: Callable[[int], Awaitable[None]] | None = None,
        on_override: Callable[[Any], Awaitable[None]] | None = None,
        pipeline_names: dict[int, str] | None = None,
    ) -> None:
        super().__init__()
        self.classes("w-full gap-1")
        self.mark("alert-rules")
        self._on_save, self._on_delete, self._on_override = on_save, on_delete, on_override
        self._names = pipeline_names or {}

    def show(self, rules: Sequence[Any]) -> None:
        """Replace the rows."""
        self.clear()
        with self:
            for rule in rules:
                self._row(rule)

    def _row(self, rule: Any) -> None:
        rule_id, pipeline_id = _get(rule, "id"), _get(rule, "pipeline_id")
        editable = self._on_save is not None and (pipeline_id is not None or self._on_override is None)
        scope = "default" if pipeline_id is None else self._names.get(pipeline_id, f"pipeline {pipeline_id}")
        with ui.row().classes("w-full items-center gap-3 no-wrap").mark(f"rule-{rule_id}"):
            with ui.column().classes("gap-0 min-w-56"):
                ui.label(str(_get(rule, "kind"))).classes("font-medium")
                ui.label(f"{scope} · {KIND_HELP.get(str(_get(rule, 'kind')), '')}").classes("text-grey-7 text-xs")
            threshold = ui.number("Threshold", value=_get(rule, "threshold")).classes("w-36")
            held = ui.number("For (s)", value=_get(rule, "for_seconds") or 0, min=0, precision=0).classes("w-24")
            severity = ui.select(SEVERITIES, value=_get(rule, "severity"), label="Severity").classes("w-28")
            enabled = ui.switch("On", value=bool(_get(rule, "enabled")))
            for field in (threshold, held, severity, enabled):
                field.set_enabled(editable)
            if editable and self._on_save is not None:
                save = self._on_save

                async def saved() -> None:
                    await save(
                        rule_id,
                        {
                            "threshold": threshold.value,
                            "for_seconds": int(held.value or 0),
                            "severity": severity.value,
                            "enabled": enabled.value,
                        },
                    )

                ui.button("Save", icon="save", on_click=saved).props("outline dense").mark(f"save-rule-{rule_id}")
            if pipeline_id is not None and self._on_delete is not None:
                delete = self._on_delete
                ui.button(icon="delete", on_click=lambda: delete(rule_id)).props("flat dense").tooltip(
                    "Remove this pipeline's own rule (the default applies again)"
                )
            if pipeline_id is None and self._on_override is not None:
                override = self._on_override
                ui.button("Customize", icon="tune", on_click=lambda: override(rule)).props("flat dense").mark(
                    f"override-{rule_id}"
                )
