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

    audited = False  # True once the refusal is in the audit trail (core.security.refused)


class AuthenticationRequired(StudioError):
    """No valid login or token was presented."""


class TooManyAttempts(StudioError):
    """Sign-ins for this account or from this address are locked for `retry_after` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ConnectorError(StudioError):
    """A database operation failed. `transient` says whether retrying may help; `fix` what a person does
    about it when it does not (shown after the message of a run that ended with it)."""

    kind = "error"
    transient = False
    fix = ""


class AuthFailed(ConnectorError):
    kind = "auth_failed"
    fix = "fix the connection's user or password (Connections page), then press Recover"


class UnknownHost(ConnectorError):
    kind = "unknown_host"
    # A name that resolved before and does not now is usually DNS or a container being replaced; a start
    # with a mistyped host is refused by validation before anything runs, so only working pipelines retry.
    transient = True


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


class ConnectionLost(ConnectorError):
    """An open session broke (server closed it, connection reset, administrator shutdown): retrying helps."""

    kind = "connection_lost"
    transient = True


class ServerUnavailable(ConnectorError):
    """The server is there but not serving now (starting up, shutting down, in recovery, too many connections)."""

    kind = "server_unavailable"
    transient = True


class SerializationFailure(ConnectorError):
    """A transaction lost a race (serialization failure, deadlock, lock timeout): running it again helps."""

    kind = "serialization_failure"
    transient = True


class PrivilegeMissing(ConnectorError):
    """The user lacks a privilege the pipeline needs: a person must grant it."""

    kind = "privilege_missing"
    fix = "grant the privilege on the database, then press Recover"


class SlotInvalidated(ConnectorError):
    """The replication slot is gone or can no longer give changes (its WAL was removed): the changes since
    its position are lost to it; the target must be loaded again."""

    kind = "slot_invalidated"
    fix = (
        "the changes the slot lost cannot be streamed: load the target again — press Resync all tables "
        "(POST /api/v1/pipelines/{id}/resync: a new slot, every table emptied and copied under its snapshot, "
        "then streamed); raise max_slot_wal_keep_size so it does not happen again"
    )


class SnapshotUnavailable(ConnectorError):
    """The exported snapshot a full load was to run under cannot be imported any more."""

    kind = "snapshot_unavailable"
    fix = "start the pipeline again: a new slot exports a new snapshot"


TRANSIENT = "transient"
TERMINAL = "terminal"

_MAX_CAUSES = 5  # how deep a chain of wrapped errors is followed


def error_kind(exc: BaseException, _depth: int = 0) -> str:
    """Whether retrying the run that ended with `exc` may help: "transient" or "terminal".

    A translated driver error (ConnectorError) says it itself (`transient`). Our other errors are terminal
    (a person must act: validation, a missing object, a refused start), unless they were raised from or
    while handling another error: then they take its kind. Anything else reached us from a driver or the runtime
    without being translated — typically a stream that broke — and is transient: a retry is cheap (backoff
    up to the cap), and a pipeline that keeps failing raises the recovery_failing alert.
    """
    if getattr(exc, "transient", False) is True:
        return TRANSIENT
    if isinstance(exc, ConnectorError):
        return TERMINAL
    if isinstance(exc, StudioError):
        # The cause, or the error being handled when it was raised (also after `from None`, which only hides
        # it from tracebacks): "cannot read the source: connection refused" is as transient as the refusal.
        cause = exc.__cause__ or exc.__context__
        return error_kind(cause, _depth + 1) if cause is not None and _depth < _MAX_CAUSES else TERMINAL
    return TRANSIENT


def is_transient(exc: BaseException) -> bool:
    """`error_kind(exc) == "transient"`."""
    return error_kind(exc) == TRANSIENT
