"""The pipelines list and the dashboard follow pipeline.state events: no reload, no polling timer."""

from __future__ import annotations

import threading

import pytest
from nicegui import ui
from nicegui.testing import User

from core import lifecycle
from tests.ui.helpers import WAIT, eventually, login, stored_pipeline, table_rows


def _in_thread(fn, *args, **kwargs) -> None:  # noqa: ANN001
    """Run `fn` the way engines do: on a worker thread, not on the event loop."""
    worker = threading.Thread(target=fn, args=args, kwargs=kwargs)
    worker.start()
    worker.join()


def _timers(user: User) -> list[float]:
    return [t.interval for t in user.current_layout.descendants() if isinstance(t, ui.timer)]


async def test_a_state_change_reaches_the_list_without_a_reload(app_env, user: User) -> None:
    pid = stored_pipeline("orders")
    await login(user)
    await user.open("/pipelines")
    await eventually(
        lambda: [(r["name"], r["state"]) for r in table_rows(user, "pipelines-table")] == [("orders", "NOT_STARTED")]
    )
    assert all(interval < 1 for interval in _timers(user))  # only the event drain: no polling of the database
    _in_thread(lifecycle.transition, pid, "STARTING")
    await eventually(lambda: table_rows(user, "pipelines-table")[0]["state"] == "STARTING")
    _in_thread(lifecycle.transition, pid, "RUNNING")
    await eventually(lambda: table_rows(user, "pipelines-table")[0]["state"] == "RUNNING")


async def test_the_dashboard_counts_follow_state_events(app_env, user: User) -> None:
    pid = stored_pipeline("orders")
    stored_pipeline("customers")
    await login(user)
    await user.should_see(marker="stat-pipelines", retries=WAIT)
    (running,) = user.find(marker="stat-running").elements
    (pipelines,) = user.find(marker="stat-pipelines").elements
    (error,) = user.find(marker="stat-error").elements
    assert (pipelines.text, running.text, error.text) == ("2", "0", "0")
    _in_thread(lifecycle.transition, pid, "STARTING")
    await eventually(lambda: running.text == "1", timeout=10)
    _in_thread(lifecycle.transition, pid, "ERROR", error_message="boom")
    await eventually(lambda: (running.text, error.text) == ("0", "1"), timeout=10)


async def test_the_frame_looks_the_user_up_off_the_event_loop(
    app_env, user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    from components import frame

    threads: list[threading.Thread] = []
    lookup = frame.actor_by_id

    def spy(user_id: int):  # noqa: ANN202
        threads.append(threading.current_thread())
        return lookup(user_id)

    monkeypatch.setattr(frame, "actor_by_id", spy)
    await login(user)
    await user.open("/pipelines")
    await user.should_see(marker="pipelines-table", retries=WAIT)
    assert threads and threading.main_thread() not in threads
