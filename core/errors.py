"""The project's exceptions. Driver errors are translated into these at the connector boundary."""

from __future__ import annotations


class StudioError(Exception):
    """Base of every error CDC Studio raises on purpose; `str()` is a message for people."""


class ValidationFailed(StudioError):
    """User input is wrong; `field` names what to fix."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class NotStartable(ValidationFailed):
    """A pipeline that does not validate is not started; `messages` are the validation errors."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("pipeline", "the pipeline does not validate: " + "; ".join(messages))
        self.messages = messages


class NotFound(StudioError):
    """The thing asked for does not exist."""


class Conflict(StudioError):
    """The request clashes with existing state (for example a duplicate name)."""


class PermissionDenied(StudioError):
    """The user's role does not allow this action."""


class AuthenticationRequired(StudioError):
    """No valid login or token was presented."""


class ConnectorError(StudioError):
    """A database operation failed. `transient` says whether retrying may help."""

    kind = "error"
    transient = False


class AuthFailed(ConnectorError):
    kind = "auth_failed"


class UnknownHost(ConnectorError):
    kind = "unknown_host"


class ConnectionRefused(ConnectorError):
    kind = "refused"
    transient = True


class ConnectTimeout(ConnectorError):
    kind = "timeout"
    transient = True


class DatabaseNotFound(ConnectorError):
    kind = "database_not_found"


class ObjectNotFound(ConnectorError):
    kind = "object_not_found"


class DriverMissing(ConnectorError):
    kind = "driver_missing"


class QueryFailed(ConnectorError):
    kind = "query_failed"
