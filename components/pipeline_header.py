"""A pipeline's title block: name, state badge, route, full-load status, schedule and last error."""

from __future__ import annotations

from nicegui import ui

from components.format import timestamp
from core.pipeline_schemas import PipelinePublic


class PipelineHeader(ui.column):
    """Shows what a pipeline is and where it stands; `show_state` follows `pipeline.state` events."""

    def __init__(self, p: PipelinePublic) -> None:
        super().__init__()
        self.classes("w-full gap-2")
        self._full_load = p.full_load_status
        with self:
            with ui.row().classes("items-center gap-4"):
                ui.label(p.name).classes("text-xl font-semibold")
                self._state = ui.badge(p.state).mark("pipeline-state")
                ui.label(
                    f"{p.mode} · {p.engine} · {p.source_connection_name}:{p.source_database}.{p.source_schema} → "
                    f"{p.target_connection_name}:{p.target_database}.{p.target_schema}"
                ).classes("text-grey-8")
            if p.description:
                ui.label(p.description).classes("text-grey-7")
            with ui.row().classes("items-center gap-4"):
                self._load_status = ui.label().mark("full-load-status")
                schedule = f"schedule {p.schedule} (UTC), next run {timestamp(p.next_run_at)}" if p.schedule else ""
                ui.label(schedule).classes("text-grey-7")
            self._error = ui.label().classes("text-negative whitespace-pre-wrap").mark("pipeline-error")
        self.show_state(p.state, p.full_load_status, p.error_message)

    def show_state(self, state: str, full_load: str | None = None, message: str | None = None) -> None:
        """Display a state; a missing full-load status keeps the last one shown."""
        self._full_load = full_load or self._full_load
        self._state.text = state
        self._state.props(f"color={'negative' if state == 'ERROR' else 'primary'}")
        self._load_status.text = f"Full load: {self._full_load}"
        self.show_error(message)

    def show_error(self, message: str | None) -> None:
        """The pipeline's last error (hidden when there is none)."""
        self._error.text = message or ""
        self._error.visible = bool(message)
