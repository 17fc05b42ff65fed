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
    ("restart_failed", "Restart failed", "healing", "restart-failed", None, "outline"),
    ("validate", "Validate", "fact_check", "validate", None, "outline"),
    ("delete", "Delete", "delete", "delete", "negative", "outline"),
)
READ_ONLY = frozenset({"validate"})
"""Actions a user without the manage-pipelines right still gets a button for."""


def offered(mode: str, engine: str) -> frozenset[str]:
    """Actions a pipeline of this mode and engine accepts in some state: the buttons it gets.

    Resume comes with Pause: a pipeline that can never pause never resumes either.
    """
    actions: set[str] = set()
    for state in State:
        actions |= allowed_actions(state, mode, engine, running=True)
    if "pause" not in actions:
        actions.discard("resume")
    return frozenset(actions)


class PipelineActions(ui.row):
    """Start, Stop, Pause, Resume, Restart failed, Validate, Delete: `on_action(name)` on a click."""

    def __init__(self, mode: str, engine: str, *, editor: bool, on_action: Callable[[str], Awaitable[None]]) -> None:
        super().__init__()
        self.classes("gap-2")
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

    def show(self, state: str, *, running: bool = False) -> None:
        """Enable the buttons of the actions a pipeline in `state` accepts now (`running`: a worker runs)."""
        allowed = allowed_actions(state, self._mode, self._engine, running=running)
        for action, button in self.buttons.items():
            button.enabled = action in allowed
