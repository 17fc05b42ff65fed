"""Per-request context for the audit trail: the client's address and the actor the request acted as.

`RequestContext` is a pure ASGI middleware (no nicegui) that sets `core.audit.client_addr` for each HTTP
request and gives the request an empty actor slot. `current_actor` fills the slot; the 403 handler reads it
to audit a refused action. A slot (a one-item dict) rather than a plain ContextVar: FastAPI runs sync
dependencies in a worker thread with a copy of the context, so a value set there would not be seen by the
handler, while a change to a shared object is.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from core import audit
from core.actor import Actor

_slot: ContextVar[dict[str, Actor] | None] = ContextVar("request_actor_slot", default=None)


def set_request_actor(actor: Actor) -> None:
    """Remember who the current request acts as (no-op outside a request)."""
    slot = _slot.get()
    if slot is not None:
        slot["actor"] = actor


def request_actor() -> Actor | None:
    """The actor of the request being served, once its token was checked."""
    slot = _slot.get()
    return slot.get("actor") if slot is not None else None


class RequestContext:
    """Pure ASGI middleware: client address and an actor slot per HTTP (and websocket) connection."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        addr = audit.client_addr.set(client[0] if client else None)
        line = audit.request_line.set(f"{scope.get('method', 'WEBSOCKET')} {scope.get('path', '')}")
        slot = _slot.set({})
        try:
            await self.app(scope, receive, send)
        finally:
            _slot.reset(slot)
            audit.request_line.reset(line)
            audit.client_addr.reset(addr)
