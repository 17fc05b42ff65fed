"""Monitoring: the recorder of applied changes (the engines' default ChangeSink) and what pages read of it."""

from core.monitoring.queries import RATE_WINDOW, Dashboard, EventPublic, dashboard, recent_events
from core.monitoring.recorder import (
    EVENT_LOG_CAP,
    LIVE_ROWS_PER_BATCH,
    SINK,
    MonitoringSink,
    event_dict,
    flush,
    record_applied,
)

__all__ = [
    "EVENT_LOG_CAP",
    "LIVE_ROWS_PER_BATCH",
    "RATE_WINDOW",
    "SINK",
    "Dashboard",
    "EventPublic",
    "MonitoringSink",
    "dashboard",
    "event_dict",
    "flush",
    "recent_events",
    "record_applied",
]
