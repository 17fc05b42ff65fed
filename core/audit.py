"""The audit trail: recording every mutation (who, what, before/after with secrets masked). Reading it
(admins only) is core.audit_trail.

`log(...)` is how core modules record an action. It takes the actor (a user, or a user acting through a
personal API token), the object (`object_type`, `object_id`, a readable `target`), and the object's
fields before and after; the entry keeps only the fields that changed, as `{field: [before, after]}`,
with every secret-looking field replaced by `***`. The client address of the request being served comes
from `client_addr` (a context variable the API middleware and the login page set).
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from pydantic_core import to_jsonable_python
from sqlmodel import Session

from core.actor import Actor
from data import audit
from data.db import session_scope

MASK = "***"
SECRET_MARKERS = (
    "password", "secret", "token", "routing_key", "webhook_url", "api_key", "private_key", "jaas", "credential",
)  # fmt: skip
"""A field whose name contains one of these never shows its value in the audit trail."""

OBJECT_TYPES = (
    "connection", "pipeline", "channel", "rule", "alert", "connector", "user", "token", "setting", "secret_key",
)  # fmt: skip
"""What entries name as their object_type."""

client_addr: ContextVar[str | None] = ContextVar("audit_client_addr", default=None)
"""The address of the client whose request is being served (None outside a request)."""

request_line: ContextVar[str | None] = ContextVar("audit_request_line", default=None)
"""The HTTP request being served, as "METHOD /path" (None outside a request)."""


def is_secret(field: str) -> bool:
    name = field.lower()
    return any(marker in name for marker in SECRET_MARKERS)


def masked(value: Any, field: str = "") -> Any:
    """`value` with every secret field (at any depth of dicts) replaced by MASK."""
    if field and is_secret(field):
        return MASK if value not in (None, "") else value
    if isinstance(value, dict):
        return {k: masked(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [masked(v) for v in value]
    return to_jsonable_python(value, fallback=str)  # stored as JSON: datetimes and enums become text


def changes(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, list[Any]]:
    """The fields that differ between two states of an object, as {field: [before, after]}, secrets masked
    (a changed secret shows as ["***", "***"]: that it changed, never its value)."""
    before, after = before or {}, after or {}
    out: dict[str, list[Any]] = {}
    for field in sorted(set(before) | set(after), key=str):
        old, new = before.get(field), after.get(field)
        if old != new:
            out[str(field)] = [masked(old, str(field)), masked(new, str(field))]
    return out


BOOKKEEPING = frozenset({"id", "created_at", "updated_at"})


def fields(obj: Any, exclude: set[str] | frozenset[str] = frozenset()) -> dict[str, Any]:
    """What the audit trail keeps of a stored object: its columns (JSON-ready, ids and timestamps left out);
    secret columns are masked when the entry is written."""
    values = obj.model_dump(mode="json") if hasattr(obj, "model_dump") else dict(obj)
    return {k: v for k, v in values.items() if k not in BOOKKEEPING and k not in exclude}


def log(
    actor: Actor | None,
    action: str,
    *,
    object_type: str | None = None,
    object_id: str | int | None = None,
    target: str = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    detail: str = "",
    outcome: str = "ok",
    email: str | None = None,
    actor_type: str | None = None,
    session: Session | None = None,
) -> None:
    """Record one action. With `session` it is written in the caller's transaction (it commits or rolls back
    with the change); without, in its own. `actor=None` is the system (or, with `email`, an anonymous
    attempt such as a failed login)."""
    kind = actor_type or (
        "token" if actor and actor.token_id else "user" if actor and actor.id else "system"
    )  # id 0: the app itself (automatic recovery)
    fields: dict[str, Any] = dict(
        user_email=actor.email if actor else email,
        action=action,
        target=target,
        detail=detail,
        actor_type=kind,
        token_id=actor.token_id if actor else None,
        object_type=object_type,
        object_id=object_id,
        outcome=outcome,
        changes=changes(before, after) if (before is not None or after is not None) else None,
        client_addr=client_addr.get(),
    )
    if session is not None:
        audit.record(session=session, **fields)
        return
    with session_scope() as own:
        audit.record(session=own, **fields)
