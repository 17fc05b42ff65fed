"""Turning errors into plain words for people (never a traceback)."""

from __future__ import annotations

from pydantic import ValidationError

from core.errors import (
    AuthFailed,
    ConnectionRefused,
    ConnectorError,
    ConnectTimeout,
    DatabaseNotFound,
    DriverMissing,
    StudioError,
    UnknownHost,
    ValidationFailed,
)

_KIND_TITLES: dict[type[ConnectorError], str] = {
    AuthFailed: "Login failed",
    UnknownHost: "Unknown host",
    ConnectionRefused: "Connection refused",
    ConnectTimeout: "Timed out",
    DatabaseNotFound: "Database not found",
    DriverMissing: "Driver missing",
}

_ERROR_KIND_TITLES = {cls.kind: title for cls, title in _KIND_TITLES.items()}


def error_title(error_kind: str | None) -> str:
    """A short heading for a stored test failure kind ('auth_failed' -> 'Login failed')."""
    if not error_kind:
        return "Failed"
    return _ERROR_KIND_TITLES.get(error_kind, error_kind.replace("_", " ").capitalize())


def plain(exc: BaseException) -> str:
    """A message for people: the project's own wording for StudioErrors, a generic line otherwise."""
    if isinstance(exc, StudioError):
        text = str(exc) or exc.__class__.__name__
        return text[:1].upper() + text[1:]
    return "Something went wrong on the server; see the server log for details."


def _pydantic_message(err: dict) -> str:
    kind = err.get("type", "")
    ctx = err.get("ctx") or {}
    if kind == "missing" or (kind == "string_too_short" and ctx.get("min_length") == 1):
        return "is required"
    if kind == "string_too_short":
        return f"must have at least {ctx.get('min_length')} characters"
    if kind == "string_too_long":
        return f"must have at most {ctx.get('max_length')} characters"
    if kind in ("int_parsing", "int_from_float", "int_type"):
        return "must be a whole number"
    if kind == "greater_than_equal":
        return f"must be at least {ctx.get('ge')}"
    if kind == "less_than_equal":
        return f"must be at most {ctx.get('le')}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}"
    msg = str(err.get("msg", "is not valid"))
    return msg[:1].lower() + msg[1:]


def field_errors(exc: ValidationError) -> list[ValidationFailed]:
    """Every problem of a pydantic error as ValidationFailed(field, message in plain words)."""
    out = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "input"
        out.append(ValidationFailed(field, _pydantic_message(err)))
    return out
