"""The pipelines list and the dashboard follow pipeline.state events: no reload, no polling timer."""

from __future__ import annotations

import threading

import pytest
from nicegui import ui
from nicegui.testing import User

from components.format import STATE_COLORS
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
    # the cards are filled by the page's first read (a worker thread; slow on a busy machine)
    await eventually(lambda: (pipelines.text, running.text, error.text) == ("2", "0", "0"), timeout=20)
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

    def spy(user_id: int, issued_at: float | None = None):  # noqa: ANN202
        threads.append(threading.current_thread())
        return lookup(user_id, issued_at)

    monkeypatch.setattr(frame, "actor_by_id", spy)
    await login(user)
    await user.open("/pipelines")
    await user.should_see(marker="pipelines-table", retries=WAIT)
    assert threads and threading.main_thread() not in threads


def _table(user: User, marker: str) -> ui.table:
    (table,) = [e for e in user.find(marker=marker).elements if isinstance(e, ui.table)]
    return table


async def test_state_badges_use_the_shared_colours_and_the_list_filters_by_state(app_env, user: User) -> None:
    pid = stored_pipeline("orders")
    stored_pipeline("customers")
    _in_thread(lifecycle.transition, pid, "STARTING")
    _in_thread(lifecycle.transition, pid, "RUNNING")
    await login(user)
    await user.open("/pipelines")
    await eventually(lambda: len(table_rows(user, "pipelines-table")) == 2)
    slot = _table(user, "pipelines-table").slots["body-cell-state"].template
    assert all(f"{state}: '{color}'" in slot for state, color in STATE_COLORS.items())
    assert "whitespace-nowrap" in _table(user, "pipelines-table").slots["body-cell-name"].template
    slots = _table(user, "pipelines-table").slots
    assert "toLocaleString" in slots["body-cell-next_run"].template  # the browser's time zone
    assert "props.row.last_run_at" in slots["body-cell-last_run"].template  # when it ran, on hover

    await user.open("/pipelines?state=RUNNING")  # where the dashboard's "Running" card leads
    await eventually(lambda: [r["name"] for r in table_rows(user, "pipelines-table")] == ["orders"])
    await user.should_see("Showing pipelines in state RUNNING")
    await user.open("/pipelines?state=ERROR")
    await user.should_see(marker="state-filter", retries=WAIT)
    await eventually(lambda: table_rows(user, "pipelines-table") == [] or None)
    assert "No pipeline is ERROR right now" in _table(user, "pipelines-table").slots["no-data"].template


async def test_an_empty_list_says_how_to_begin(app_env, user: User) -> None:
    await login(user)
    await user.open("/pipelines")
    await user.should_see(marker="pipelines-table", retries=WAIT)
    assert table_rows(user, "pipelines-table") == []
    assert "create the first one" in _table(user, "pipelines-table").slots["no-data"].template
