"""The in-process event bus engines publish to. Thread-safe; never touches UI elements.

Publishers (worker threads) call `publish`; each subscriber owns a bounded buffer it drains on
its own schedule (a page drains on the event loop and pushes over its websocket), so a slow or
vanished subscriber can never block an engine.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    """`topic` like 'pipeline.progress'; `pipeline_id` when it concerns one pipeline."""

    topic: str
    data: dict[str, Any] = field(default_factory=dict)
    pipeline_id: int | None = None


class Subscription:
    """A bounded buffer of matching events; the oldest are dropped when it overflows."""

    def __init__(self, bus: EventBus, accept: Callable[[Event], bool], maxlen: int) -> None:
        self._bus = bus
        self._accept = accept
        self._buffer: deque[Event] = deque(maxlen=maxlen)
        self._lock = threading.Lock()
        self.dropped = 0

    def offer(self, event: Event) -> None:
        if not self._accept(event):
            return
        with self._lock:
            if len(self._buffer) == self._buffer.maxlen:
                self.dropped += 1
            self._buffer.append(event)

    def drain(self) -> list[Event]:
        """Everything buffered since the last drain, oldest first."""
        with self._lock:
            events = list(self._buffer)
            self._buffer.clear()
        return events

    def close(self) -> None:
        self._bus.unsubscribe(self)


class EventBus:
    """Fan-out of events to subscriptions."""

    def __init__(self) -> None:
        self._subs: list[Subscription] = []
        self._lock = threading.Lock()

    def subscribe(
        self, topics: tuple[str, ...] = (), pipeline_id: int | None = None, maxlen: int = 10_000
    ) -> Subscription:
        """Subscribe to topics (prefix match; empty = all), optionally of one pipeline."""

        def accept(e: Event) -> bool:
            if pipeline_id is not None and e.pipeline_id != pipeline_id:
                return False
            return not topics or any(e.topic.startswith(t) for t in topics)

        sub = Subscription(self, accept, maxlen)
        with self._lock:
            self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    def publish(self, event: Event) -> None:
        """Hand the event to every matching subscription (cheap; callable from any thread)."""
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            sub.offer(event)


bus = EventBus()
