"""The pipeline actions bar: its buttons and their enabled state come from core.lifecycle.allowed_actions."""

from __future__ import annotations

from nicegui import ui
from nicegui.testing import User

from components.pipeline_actions import PipelineActions, offered
from core.lifecycle import allowed_actions
from tests.ui.helpers import WAIT, eventually, login


def test_the_buttons_offered_follow_mode_and_engine() -> None:
    assert {"pause", "resume"} <= offered("CDC_ONLY", "embedded")
    assert not {"pause", "resume"} & offered("FULL_LOAD_ONLY", "embedded")
    assert "restart_failed" in offered("FULL_LOAD_AND_CDC", "kafka_connect")
    assert "restart_failed" not in offered("FULL_LOAD_AND_CDC", "embedded")
    assert {"start", "stop", "validate", "delete"} <= offered("FULL_LOAD_ONLY", "embedded")


async def _open_bar(user: User, mode: str, engine: str, editor: bool, clicked: list[str]) -> PipelineActions:
    bars: list[PipelineActions] = []

    @ui.page("/test-actions")
    def page() -> None:
        async def record(action: str) -> None:
            clicked.append(action)

        bars.append(PipelineActions(mode, engine, editor=editor, on_action=record))

    await login(user)
    await user.open("/test-actions")
    return bars[-1]


async def test_enabled_buttons_are_the_allowed_actions(app_env, user: User) -> None:
    clicked: list[str] = []
    bar = await _open_bar(user, "CDC_ONLY", "embedded", True, clicked)
    await user.should_see(marker="start", retries=WAIT)
    assert set(bar.buttons) == {"start", "stop", "pause", "resume", "recover", "resync", "validate", "edit", "delete"}
    for state in ("NOT_STARTED", "RUNNING", "PAUSED", "STOPPED", "ERROR"):
        bar.show(state)
        allowed = allowed_actions(state, "CDC_ONLY", "embedded") | {"edit"}  # edit: name etc. in any state
        assert {a for a, b in bar.buttons.items() if b.enabled} == set(bar.buttons) & allowed, state
    bar.show("RUNNING")
    assert not bar.buttons["start"].enabled and "pipeline-actions" in bar.classes  # greyed out by DISABLED_CSS
    bar.show("RUNNING")
    user.find(marker="pause").click()
    user.find(marker="start").click()  # disabled: nothing happens
    user.find(marker="stop").click()
    await eventually(lambda: clicked == ["pause", "stop"])


async def test_a_running_consumer_can_be_stopped_in_error(app_env, user: User) -> None:
    bar = await _open_bar(user, "FULL_LOAD_AND_CDC", "kafka_connect", True, [])
    await user.should_see(marker="restart-failed", retries=WAIT)
    bar.show("ERROR")
    assert not bar.buttons["stop"].enabled
    bar.show("ERROR", running=True)
    assert bar.buttons["stop"].enabled and bar.buttons["restart_failed"].enabled


async def test_a_viewer_only_validates(app_env, user: User) -> None:
    bar = await _open_bar(user, "FULL_LOAD_ONLY", "embedded", False, [])
    await user.should_see(marker="validate", retries=WAIT)
    await user.should_not_see(marker="start")
    await user.should_not_see(marker="delete")
    assert set(bar.buttons) == {"validate"}
