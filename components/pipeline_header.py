"""A pipeline's title block: name, state badge, route, full-load status, schedule and last error."""

from __future__ import annotations

from nicegui import ui

from components.format import state_color, timestamp
from core.pipeline_schemas import ENGINE_LABELS, MODE_SHORT, PipelinePublic, RetryInfo


def retry_text(retry: RetryInfo | None, state: str) -> str:
    """'Restarting automatically: attempt 3 at 03:12:40 UTC (transient error)', or what stops it."""
    if retry is None:
        return ""
    if retry.next_at is not None and state == "ERROR":
        return (
            f"Restarting automatically at {timestamp(retry.next_at)} (attempt {retry.attempt + 1}; "
            f"{retry.error_kind or 'transient'} error, failing since {timestamp(retry.failing_since)})"
        )
    if retry.error_kind == "terminal" and state == "ERROR":
        return "Not restarted automatically: this error does not go away by retrying (see the fix above)."
    if retry.attempt and state == "RUNNING":
        return f"Recovered after {retry.attempt} automatic restart(s)."
    return ""


def full_load_text(mode: str, status: str | None) -> str:
    """'Full load: COMPLETED'; a CDC_ONLY pipeline has none, and says so rather than NOT_STARTED."""
    if mode == "CDC_ONLY":
        return "Full load: none in this mode (changes only: the targets get the changes made from the start on)"
    return f"Full load: {status or 'NOT_STARTED'}"


def schedule_text(p: PipelinePublic) -> str:
    """'schedule 0 3 * * * (UTC), next run ...', or nothing without a schedule."""
    return f"schedule {p.schedule} (UTC), next run {timestamp(p.next_run_at)}" if p.schedule else ""


class PipelineHeader(ui.column):
    """Shows what a pipeline is and where it stands; `show_state` follows `pipeline.state` events."""

    def __init__(self, p: PipelinePublic) -> None:
        super().__init__()
        self.classes("w-full gap-2")
        self._full_load = p.full_load_status
        self._mode = p.mode
        with self:
            with ui.row().classes("items-center gap-4"):
                self._name = ui.label(p.name).classes("text-xl font-semibold").mark("pipeline-name")
                self._state = ui.badge(p.state).mark("pipeline-state")
                ui.label(
                    f"{MODE_SHORT.get(p.mode, p.mode)} · {ENGINE_LABELS.get(p.engine, p.engine)} · "
                    f"{p.source_connection_name}:{p.source_database}.{p.source_schema} → "
                    f"{p.target_connection_name}:{p.target_database}.{p.target_schema}"
                ).classes("text-grey-8")
            self._description = ui.label(p.description).classes("text-grey-7").mark("pipeline-description")
            self._description.visible = bool(p.description)
            with ui.row().classes("items-center gap-4"):
                self._load_status = ui.label().mark("full-load-status")
                self._schedule = ui.label(schedule_text(p)).classes("text-grey-7").mark("pipeline-schedule")
            self._error = ui.label().classes("text-negative whitespace-pre-wrap").mark("pipeline-error")
            self._retry = ui.label().classes("text-warning-10 whitespace-pre-wrap").mark("pipeline-retry")
        self._retry.visible = False
        self.show_state(p.state, p.full_load_status, p.error_message)

    def show_state(self, state: str, full_load: str | None = None, message: str | None = None) -> None:
        """Display a state; a missing full-load status keeps the last one shown."""
        self._full_load = full_load or self._full_load
        self._state.text = state
        self._state.props(f"color={state_color(state)}")
        self._load_status.text = full_load_text(self._mode, self._full_load)
        self.show_error(message)

    def show_pipeline(self, p: PipelinePublic) -> None:
        """Name, description and schedule after an edit."""
        self._name.text = p.name
        self._description.text = p.description
        self._description.visible = bool(p.description)
        self._schedule.text = schedule_text(p)

    def show_retry(self, retry: RetryInfo | None, state: str) -> None:
        """What automatic recovery does about the last error (hidden when there is nothing to say)."""
        text = retry_text(retry, state)
        self._retry.text = text
        self._retry.visible = bool(text)

    def show_error(self, message: str | None) -> None:
        """The pipeline's last error (hidden when there is none)."""
        self._error.text = message or ""
        self._error.visible = bool(message)
