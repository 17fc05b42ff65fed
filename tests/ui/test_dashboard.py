"""The dashboard: a getting-started checklist on an empty install, clickable figures, a row per pipeline."""

from __future__ import annotations

import threading

from nicegui.testing import User

from core import lifecycle, monitoring
from core.monitoring import counters
from data.db import session_scope
from data.models import ConnectionTest, Pipeline
from tests.api.test_monitoring_api import change
from tests.ui.helpers import WAIT, eventually, login, stored_pipeline, table_rows


def _in_thread(fn, *args, **kwargs) -> None:  # noqa: ANN001
    worker = threading.Thread(target=fn, args=args, kwargs=kwargs)
    worker.start()
    worker.join()


def _steps(user: User) -> dict[str, bool]:
    return {key: _has(user, f"step-{key}-done") for key in ("connection", "test", "pipeline", "start")}


def _has(user: User, marker: str) -> bool:
    return any(marker in e._markers for e in user.current_layout.descendants())  # noqa: SLF001


async def test_the_checklist_ticks_each_step_and_goes_away_when_all_are_done(app_env, user: User) -> None:
    await login(user)
    await user.should_see(marker="getting-started", retries=WAIT)
    assert _steps(user) == {"connection": False, "test": False, "pipeline": False, "start": False}
    await user.should_see("0 of 4 done")

    pid = stored_pipeline("orders")  # a connection and a pipeline on it
    await user.open("/")
    await user.should_see(marker="getting-started", retries=WAIT)
    assert _steps(user) == {"connection": True, "test": False, "pipeline": True, "start": False}
    assert _has(user, "step-test-todo") and _has(user, "step-start-todo")

    with session_scope() as session:
        p = session.get(Pipeline, pid)
        session.add(ConnectionTest(connection_id=p.source_connection_id, ok=True, latency_ms=1.0))
    await user.open("/")
    await user.should_see("3 of 4 done", retries=WAIT)
    _in_thread(lifecycle.transition, pid, "STARTING")
    await user.open("/")
    await user.should_see(marker="stat-running", retries=WAIT)
    await user.should_not_see(marker="getting-started")  # nothing left to explain


async def test_figures_open_what_they_count(app_env, user: User) -> None:
    await login(user)
    await user.should_see(marker="card-stat-running", retries=WAIT)
    user.find(marker="card-stat-running").click()
    await user.should_see("Showing pipelines in state RUNNING", retries=WAIT)
    await user.open("/")
    await user.should_see(marker="card-stat-delete_count", retries=WAIT)
    user.find(marker="card-stat-delete_count").click()
    await user.should_see(marker="filter-op", retries=WAIT)
    (op,) = user.find(marker="filter-op").elements
    assert op.value == "delete"


async def test_each_pipeline_row_shows_its_last_change_and_errors(app_env, user: User) -> None:
    quiet, busy = stored_pipeline("quiet"), stored_pipeline("busy")
    for pid in (quiet, busy):
        counters.forget(pid)  # counters live per process: an earlier test's pipeline may have had this id
    monitoring.record_applied(busy, [change("insert", i) for i in range(3)])
    counters.note_error(busy)
    counters.note_error(busy)
    _in_thread(lifecycle.transition, quiet, "STARTING")
    _in_thread(lifecycle.transition, quiet, "ERROR", error_message="target refused the connection")
    await login(user)
    rows = await eventually(
        lambda: len(table_rows(user, "pipelines-glance")) == 2 and table_rows(user, "pipelines-glance")
    )
    by_name = {r["name"]: r for r in rows}
    assert by_name["busy"]["last_change"].endswith("+00:00") and by_name["busy"]["errors"] == 2
    assert by_name["quiet"]["last_change"] is None and by_name["quiet"]["state"] == "ERROR"
    assert by_name["quiet"]["error_message"] == "target refused the connection"
