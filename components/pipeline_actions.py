"""A pipeline's actions bar: which buttons exist and which are enabled come from core.lifecycle."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from nicegui import ui

from core.lifecycle import State, allowed_actions

# action, label, icon, marker, color, props; in the order they appear
BUTTONS: tuple[tuple[str, str, str, str, str | None, str], ...] = (
    ("start", "Start", "play_arrow", "start", None, ""),
    ("stop", "Stop", "stop", "stop", "negative", ""),
    ("pause", "Pause", "pause", "pause", None, "outline"),
    ("resume", "Resume", "play_circle", "resume", None, "outline"),
    ("recover", "Recover now", "restart_alt", "recover", None, "outline"),
    ("restart_failed", "Restart failed", "healing", "restart-failed", None, "outline"),
    ("resync", "Resync all tables", "sync", "resync", None, "outline"),
    ("validate", "Validate", "fact_check", "validate", None, "outline"),
    ("edit", "Edit", "edit", "edit", None, "outline"),
    ("delete", "Delete", "delete", "delete", "negative", "outline"),
)
READ_ONLY = frozenset({"validate"})
"""Actions a user without the manage-pipelines right still gets a button for."""
ALWAYS = frozenset({"validate", "edit"})
"""Buttons enabled in every state (Edit: name, description and schedule can change even while it runs)."""
# Quasar dims a disabled button only a little (opacity .6): a coloured one still looks pressable.
DISABLED_CSS = (
    ".pipeline-actions .q-btn.disabled, .pipeline-actions .q-btn[disabled] "
    "{ opacity: .35 !important; filter: grayscale(1); cursor: not-allowed !important; }"
)


def offered(mode: str, engine: str) -> frozenset[str]:
    """Actions a pipeline of this mode and engine accepts in some state: the buttons it gets.

    Resume comes with Pause: a pipeline that can never pause never resumes either.
    """
    actions: set[str] = {"edit"}
    for state in State:
        actions |= allowed_actions(state, mode, engine, running=True)
    if "pause" not in actions:
        actions.discard("resume")
    return frozenset(actions)


class PipelineActions(ui.row):
    """Start, Stop, Pause, Resume, Recover now, Restart failed, Resync all tables, Validate, Edit, Delete:
    `on_action(name)` on a click; a disabled button is greyed out."""

    def __init__(self, mode: str, engine: str, *, editor: bool, on_action: Callable[[str], Awaitable[None]]) -> None:
        super().__init__()
        self.classes("gap-2 pipeline-actions")
        ui.add_css(DISABLED_CSS)
        self._mode, self._engine = mode, engine
        self.buttons: dict[str, ui.button] = {}
        possible = offered(mode, engine)
        with self:
            for action, label, icon, marker, color, props in BUTTONS:
                if action not in possible or not (editor or action in READ_ONLY):
                    continue
                button = ui.button(label, icon=icon, on_click=lambda a=action: on_action(a))
                if color:
                    button.props(f"color={color}")
                self.buttons[action] = button.props(props).mark(marker)

    def show(self, state: str, *, running: bool = False, retrying: bool = False) -> None:
        """Enable the buttons of the actions a pipeline in `state` accepts now (`running`: a worker runs;
        `retrying`: an automatic restart is planned)."""
        allowed = allowed_actions(state, self._mode, self._engine, running=running, retrying=retrying)
        for action, button in self.buttons.items():
            button.enabled = action in allowed or action in ALWAYS
