"""The bridge from the event bus to a page: drain on the event loop, throttled, per client."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

from nicegui import ui

from core.events import Event, bus


def on_events(
    handler: Callable[[list[Event]], None | Awaitable[None]],
    topics: tuple[str, ...] = (),
    pipeline_id: int | None = None,
    interval: float = 0.5,
) -> None:
    """Call `handler` with the batch of new events every `interval` s while this page is open.

    Engine threads only append to the subscription's buffer; the handler runs on the event
    loop, so it may update elements, and its updates reach the browser over the websocket. An
    async handler is awaited before the next drain, so a slow one (a database read in a worker
    thread) gets one batch at a time instead of piling up.
    """
    sub = bus.subscribe(topics, pipeline_id=pipeline_id)

    async def drain() -> None:
        events = sub.drain()
        if events:
            result = handler(events)
            if inspect.isawaitable(result):
                await result

    ui.timer(interval, drain)
    ui.context.client.on_disconnect(sub.close)
