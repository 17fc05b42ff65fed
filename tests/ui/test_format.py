"""The small formatters the pages share."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from components.format import (
    STATE_COLORS,
    ago,
    format_options,
    human_bytes,
    human_count,
    ms,
    parse_options,
    state_badge_slot,
    state_color,
    timestamp,
)
from core.errors import ValidationFailed
from core.lifecycle import State


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (None, "—"),
        (-1, "—"),
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (8192, "8.0 KiB"),
        (1536 * 1024, "1.5 MiB"),
        (375 * 1024**3, "375.0 GiB"),
        (3 * 1024**6, "3072.0 PiB"),
    ],
)
def test_human_bytes(size: int | None, text: str) -> None:
    assert human_bytes(size) == text


def test_counts_times_and_latencies() -> None:
    assert human_count(1234567) == "1,234,567" and human_count(None) == "—"
    assert ms(2.345) == "2.3 ms" and ms(250.4) == "250 ms" and ms(None) == "—"
    at = datetime(2024, 5, 1, 12, 3, 4)  # naive, as SQLite returns it: UTC
    assert timestamp(at) == "2024-05-01 12:03:04 UTC"
    now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert ago(now - timedelta(seconds=5), now) == "just now"
    assert ago(now - timedelta(minutes=5), now) == "5 min ago"
    assert ago(now - timedelta(hours=3), now) == "3 h ago"
    assert ago(None) == "never"


def test_options_round_trip_and_bad_lines() -> None:
    text = "sslmode=require\n\n# a comment\ndriver = FreeTDS\nurl=a=b"
    parsed = parse_options(text)
    assert parsed == {"sslmode": "require", "driver": "FreeTDS", "url": "a=b"}
    assert parse_options(format_options(parsed)) == parsed
    with pytest.raises(ValidationFailed) as err:
        parse_options("sslmode=require\nnonsense")
    assert err.value.field == "options" and "line 2" in err.value.message


def test_state_colors_are_distinct_for_the_states_people_tell_apart() -> None:
    assert set(STATE_COLORS) == {s.value for s in State}  # every state has its colour
    picked = [STATE_COLORS[s] for s in ("RUNNING", "PAUSED", "STOPPED", "ERROR", "STARTING")]
    assert len(set(picked)) == 5
    assert STATE_COLORS["RUNNING"].startswith("green") and STATE_COLORS["PAUSED"].startswith("amber")
    assert STATE_COLORS["ERROR"].startswith("red") and STATE_COLORS["STOPPING"] == STATE_COLORS["STARTING"]
    assert state_color("nonsense") == "grey"
    assert "green-7" in state_badge_slot()
