"""How the project's errors answer over HTTP."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from core import audit
from core.api.context import request_actor
from core.errors import (
    AuthenticationRequired,
    Conflict,
    ConnectorError,
    DatabaseNotFound,
    NotFound,
    NotStartable,
    ObjectNotFound,
    PermissionDenied,
    StudioError,
    TooManyAttempts,
    ValidationFailed,
)

_STATUS: list[tuple[type[StudioError], int]] = [
    (ValidationFailed, 422),
    (AuthenticationRequired, 401),
    (PermissionDenied, 403),
    (NotFound, 404),
    (ObjectNotFound, 404),
    (DatabaseNotFound, 404),
    (Conflict, 409),
    (TooManyAttempts, 429),
    (ConnectorError, 502),
]


def status_of(exc: StudioError) -> int:
    """The HTTP status for one of our errors (400 when nothing more specific fits)."""
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 400


async def _handle(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StudioError)
    status = status_of(exc)
    body: dict[str, Any]
    if isinstance(exc, NotStartable):
        body = {"detail": [{"loc": ["pipeline"], "msg": m, "type": "validation_error"} for m in exc.messages]}
    elif isinstance(exc, ValidationFailed):
        body = {"detail": [{"loc": ["body", *exc.field.split(".")], "msg": exc.message, "type": "value_error"}]}
    else:
        body = {"detail": str(exc)}
        if isinstance(exc, ConnectorError):
            body["kind"] = exc.kind
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if isinstance(exc, TooManyAttempts):
        headers = {"Retry-After": str(exc.retry_after)}
    return JSONResponse(body, status_code=status, headers=headers)


async def _handle_refused(request: Request, exc: Exception) -> JSONResponse:
    """A 403 is audited (outcome "refused"): who asked for what, and why not (once: core may have already)."""
    if getattr(exc, "audited", False):
        return await _handle(request, exc)
    actor = request_actor()
    await run_in_threadpool(
        audit.log,
        actor,
        "request.refused",
        target=f"{request.method} {request.url.path}",
        detail=str(exc),
        outcome="refused",
        actor_type=None if actor else "anonymous",
    )
    return await _handle(request, exc)


async def _handle_invalid_request(_request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422, minus the echoed input: a rejected body may hold a password."""
    assert isinstance(exc, RequestValidationError)
    errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()]
    return JSONResponse({"detail": errors}, status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    """Answer StudioError subclasses with their status code and a readable detail."""
    app.add_exception_handler(StudioError, _handle)
    app.add_exception_handler(PermissionDenied, _handle_refused)
    app.add_exception_handler(RequestValidationError, _handle_invalid_request)
