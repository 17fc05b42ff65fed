"""Turning pydantic validation errors into the project's ValidationFailed (field + message)."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

from core.errors import ValidationFailed

M = TypeVar("M", bound=BaseModel)


def first_error(exc: ValidationError) -> ValidationFailed:
    """The first problem of a pydantic error as ValidationFailed naming the field."""
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or "input"
    return ValidationFailed(field, err["msg"])


def validated(model: type[M], **values: object) -> M:
    """Build `model` from keyword values; raise ValidationFailed naming the first bad field."""
    try:
        return model(**values)
    except ValidationError as exc:
        raise first_error(exc) from None
