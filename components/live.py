"""The bridge from the event bus to a page: drain on the event loop, throttled, per client."""

from __future__ import annotations

from collections.abc import Callable

from nicegui import ui

from core.events import Event, bus


def on_events(
    handler: Callable[[list[Event]], None],
    topics: tuple[str, ...] = (),
    pipeline_id: int | None = None,
    interval: float = 0.5,
) -> None:
    """Call `handler` with the batch of new events every `interval` s while this page is open.

    Engine threads only append to the subscription's buffer; the handler runs on the event
    loop, so it may update elements, and its updates reach the browser over the websocket.
    """
    sub = bus.subscribe(topics, pipeline_id=pipeline_id)

    def drain() -> None:
        events = sub.drain()
        if events:
            handler(events)

    ui.timer(interval, drain)
    ui.context.client.on_disconnect(sub.close)
