"""Cron parsing and schedules that survive a restart (jobs persist in the app database)."""

from __future__ import annotations

import pytest

from core import scheduler
from core.errors import ValidationFailed


@pytest.mark.parametrize("expr", ["0 3 * * *", "*/15 * * * mon-fri", "30 2 1 * *", "*/5 * * * * *"])
def test_valid_cron(expr: str) -> None:
    assert scheduler.parse_cron(expr) is not None


@pytest.mark.parametrize(
    "expr", ["", "every day", "61 * * * *", "* * * *", "0 25 * * *", "* * 32 * *", "1 2 3 4 5 6 7"]
)
def test_malformed_cron_is_refused_clearly(expr: str) -> None:
    with pytest.raises(ValidationFailed) as err:
        scheduler.parse_cron(expr)
    assert err.value.field == "schedule" and "cron" in err.value.message


def test_schedule_survives_restart(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    scheduler.start(url)
    try:
        scheduler.set_schedule(42, "0 3 * * *")
        first = scheduler.next_run_at(42)
        assert first is not None and first.hour == 3
    finally:
        scheduler.shutdown()
    assert scheduler.next_run_at(42) is None  # no scheduler running
    scheduler.start(url)  # a new process start on the same database
    try:
        assert scheduler.next_run_at(42) == first
        scheduler.set_schedule(42, None)
        assert scheduler.next_run_at(42) is None
    finally:
        scheduler.shutdown()
