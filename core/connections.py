"""Saved connections: create/edit/delete with encrypted passwords, tests with history, discovery.

Every function takes the acting user and checks the role first; the same functions serve the
REST API and the pages, so a refusal is the same in both. Functions that reach a database block:
call them from a worker thread, never from the event loop.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core import audit
from core.config import get_settings
from core.connectors import DEFAULT_PORTS, get_connector
from core.connectors.base import (
    ConnectionSpec,
    Connector,
    DatabaseInfo,
    Dependencies,
    ReadinessItem,
    SchemaInfo,
    TableDetail,
    TableInfo,
)
from core.errors import Conflict, ConnectorError, NotFound
from core.security import Action, decrypt_secret, encrypt_secret, require
from core.users import Actor
from data import connections as conn_db
from data import pipelines as pipelines_db
from data.db import session_scope
from data.models import Connection, ConnectionTest, utcnow

log = logging.getLogger(__name__)

Kind = Literal["postgresql", "sqlserver"]
Usage = Literal["source", "target", "both"]
_NAME = Field(min_length=1, max_length=100)


class _Fields(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True, str_strip_whitespace=True)

    @field_validator("options", check_fields=False)
    @classmethod
    def _options_are_strings(cls, v: dict | None) -> dict | None:
        if v is None:
            return v
        return {str(k): str(val) for k, val in v.items()}


class ConnectionCreate(_Fields):
    """What a user gives to save a connection. `schema` is the default schema."""

    name: str = _NAME
    kind: Kind
    usage: Usage = "both"
    host: str = Field(min_length=1, max_length=255)
    port: int | None = Field(default=None, ge=1, le=65535)
    database: str = Field(min_length=1, max_length=128)
    username: str = Field(min_length=1, max_length=128)
    password: str = Field(default="", max_length=1000, repr=False)
    schema_: str | None = Field(default=None, alias="schema", max_length=128)
    options: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _default_port(self) -> ConnectionCreate:
        if self.port is None:
            self.port = DEFAULT_PORTS[self.kind]
        return self


class ConnectionUpdate(_Fields):
    """A partial edit; a missing or null password keeps the stored one."""

    name: str | None = Field(default=None, min_length=1, max_length=100)
    kind: Kind | None = None
    usage: Usage | None = None
    host: str | None = Field(default=None, min_length=1, max_length=255)
    port: int | None = Field(default=None, ge=1, le=65535)
    database: str | None = Field(default=None, min_length=1, max_length=128)
    username: str | None = Field(default=None, min_length=1, max_length=128)
    password: str | None = Field(default=None, max_length=1000, repr=False)
    schema_: str | None = Field(default=None, alias="schema", max_length=128)
    options: dict[str, str] | None = None


class ConnectionDraft(_Fields):
    """Entered values to test before saving; name and usage do not matter to a test and are ignored.

    A missing (null) password with `connection_id` means "the stored password of that connection",
    as the edit form's empty password field does.
    """

    kind: Kind
    host: str = Field(min_length=1, max_length=255)
    port: int | None = Field(default=None, ge=1, le=65535)
    database: str = Field(min_length=1, max_length=128)
    username: str = Field(min_length=1, max_length=128)
    password: str | None = Field(default=None, max_length=1000, repr=False)
    schema_: str | None = Field(default=None, alias="schema", max_length=128)
    options: dict[str, str] = Field(default_factory=dict)
    connection_id: int | None = None


class DraftTestResult(BaseModel):
    """The outcome of testing entered values: nothing is stored."""

    ok: bool
    latency_ms: float | None = None
    server_version: str | None = None
    error_kind: str | None = None
    error: str | None = None


class ConnectionPublic(BaseModel):
    """A connection as shown to users: the password is write-only, only its presence shows."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    id: int
    name: str
    kind: str
    usage: str
    host: str
    port: int
    database: str
    username: str
    schema_: str | None = Field(default=None, alias="schema")
    options: dict[str, str]
    has_password: bool
    created_at: datetime
    updated_at: datetime
    last_test: ConnectionTestPublic | None = None


class ConnectionTestPublic(BaseModel):
    id: int
    tested_at: datetime
    ok: bool
    latency_ms: float | None
    server_version: str | None
    error_kind: str | None
    error: str | None


ConnectionPublic.model_rebuild()


def _public(c: Connection, last_test: ConnectionTest | None = None) -> ConnectionPublic:
    return ConnectionPublic(
        id=c.id,
        name=c.name,
        kind=c.kind,
        usage=c.usage,
        host=c.host,
        port=c.port,
        database=c.database,
        username=c.username,
        schema=c.schema_name,
        options=c.options or {},
        has_password=bool(c.password_encrypted),
        created_at=c.created_at,
        updated_at=c.updated_at,
        last_test=ConnectionTestPublic.model_validate(last_test, from_attributes=True) if last_test else None,
    )


def _load(session, connection_id: int) -> Connection:  # noqa: ANN001
    c = conn_db.get_connection(session=session, connection_id=connection_id)
    if c is None:
        raise NotFound(f"connection {connection_id} not found")
    return c


def _ensure_unique_name(session, name: str, own_id: int | None = None) -> None:  # noqa: ANN001
    other = conn_db.get_connection_by_name(session=session, name=name)
    if other is not None and other.id != own_id:
        raise Conflict(f"a connection named '{name}' already exists")


def list_connections(actor: Actor) -> list[ConnectionPublic]:
    """Every saved connection with its latest test."""
    require(actor, Action.read)
    with session_scope() as session:
        out = []
        for c in conn_db.list_connections(session=session):
            assert c.id is not None  # a stored connection
            last = conn_db.list_tests(session=session, connection_id=c.id, limit=1)
            out.append(_public(c, last[0] if last else None))
        return out


def get_connection(actor: Actor, connection_id: int) -> ConnectionPublic:
    """One connection with its latest test."""
    require(actor, Action.read)
    with session_scope() as session:
        c = _load(session, connection_id)
        last = conn_db.list_tests(session=session, connection_id=connection_id, limit=1)
        return _public(c, last[0] if last else None)


def create_connection(actor: Actor, data: ConnectionCreate) -> ConnectionPublic:
    """Save a new connection; the password is encrypted before it is stored."""
    require(actor, Action.manage_connections)
    with session_scope() as session:
        _ensure_unique_name(session, data.name)
        c = Connection(
            name=data.name,
            kind=data.kind,
            usage=data.usage,
            host=data.host,
            port=data.port or DEFAULT_PORTS[data.kind],
            database=data.database,
            username=data.username,
            schema_name=data.schema_ or None,
            options=dict(data.options),
            password_encrypted=encrypt_secret(data.password) if data.password else "",
        )
        c = conn_db.save_connection(session=session, connection=c)
        audit.log(
            actor, "connection.create", object_type="connection", object_id=c.id, target=c.name,
            after=audit.fields(c), session=session,
        )  # fmt: skip
        return _public(c)


def update_connection(actor: Actor, connection_id: int, data: ConnectionUpdate) -> ConnectionPublic:
    """Apply a partial edit; only the fields given change."""
    require(actor, Action.manage_connections)
    given = data.model_dump(exclude_unset=True, by_alias=False)
    with session_scope() as session:
        c = _load(session, connection_id)
        before = audit.fields(c)
        if given.get("name") and given["name"] != c.name:
            _ensure_unique_name(session, given["name"], own_id=c.id)
        password = given.pop("password", None)
        if "schema_" in given:
            c.schema_name = given.pop("schema_") or None
        for key, value in given.items():
            if value is not None:
                setattr(c, key, value)
        if password is not None:
            c.password_encrypted = encrypt_secret(password) if password else ""
        c.updated_at = utcnow()
        c = conn_db.save_connection(session=session, connection=c)
        audit.log(
            actor, "connection.update", object_type="connection", object_id=c.id, target=c.name,
            before=before, after=audit.fields(c), detail=",".join(sorted(k for k in data.model_fields_set)),
            session=session,
        )  # fmt: skip
        return _public(c)


def delete_connection(actor: Actor, connection_id: int) -> None:
    """Delete a connection and its test history."""
    require(actor, Action.manage_connections)
    with session_scope() as session:
        c = _load(session, connection_id)
        name, before = c.name, audit.fields(c)
        users = [p.name for p in pipelines_db.pipelines_using_connection(session=session, connection_id=connection_id)]
        if users:
            raise Conflict(f"connection '{name}' is used by pipeline(s) {', '.join(users)}; delete those first")
        conn_db.delete_connection(session=session, connection=c)
        audit.log(
            actor, "connection.delete", object_type="connection", object_id=connection_id, target=name,
            before=before, session=session,
        )  # fmt: skip


def spec_of(c: Connection) -> ConnectionSpec:
    """The connector spec of a saved connection, password decrypted in memory only."""
    return ConnectionSpec(
        kind=c.kind,
        host=c.host,
        port=c.port,
        database=c.database,
        username=c.username,
        password=decrypt_secret(c.password_encrypted) if c.password_encrypted else "",
        schema=c.schema_name,
        options=dict(c.options or {}),
        connect_timeout_s=get_settings().connect_timeout_s,
    )


def connector_for(actor: Actor, connection_id: int) -> Connector:
    """A connector for a saved connection (read permission is enough)."""
    require(actor, Action.read)
    with session_scope() as session:
        return get_connector(spec_of(_load(session, connection_id)))


def test_connection(actor: Actor, connection_id: int) -> ConnectionTestPublic:
    """Connect now, keep the result in the test history and return it (a failure is a result).

    It writes the test history, so it needs the right to manage connections: read-only means no writes.
    """
    require(actor, Action.manage_connections)
    connector = connector_for(actor, connection_id)
    try:
        result = connector.test()
        test = ConnectionTest(
            connection_id=connection_id,
            ok=True,
            latency_ms=round(result.latency_ms, 2),
            server_version=result.server_version,
        )
    except ConnectorError as exc:
        test = ConnectionTest(connection_id=connection_id, ok=False, error_kind=exc.kind, error=str(exc))
    with session_scope() as session:
        c = _load(session, connection_id)  # deleted while we were testing: do not record an orphan
        test = conn_db.add_test(session=session, test=test)
        audit.log(
            actor, "connection.test", object_type="connection", object_id=connection_id, target=c.name,
            outcome="ok" if test.ok else "failed", detail=test.error_kind or "", session=session,
        )  # fmt: skip
        return ConnectionTestPublic.model_validate(test, from_attributes=True)


test_connection.__dict__["__test__"] = False  # not a pytest test, despite the name (typed: no new attribute)


def _draft_spec(session, draft: ConnectionDraft) -> ConnectionSpec:  # noqa: ANN001
    password = draft.password
    if password is None and draft.connection_id is not None:
        stored = _load(session, draft.connection_id).password_encrypted
        password = decrypt_secret(stored) if stored else ""
    return ConnectionSpec(
        kind=draft.kind,
        host=draft.host,
        port=draft.port or DEFAULT_PORTS[draft.kind],
        database=draft.database,
        username=draft.username,
        password=password or "",
        schema=draft.schema_ or None,
        options=dict(draft.options),
        connect_timeout_s=get_settings().connect_timeout_s,
    )


def test_draft(actor: Actor, draft: ConnectionDraft) -> DraftTestResult:
    """Connect with entered values before they are saved; nothing is stored (a failure is a result).

    Only for those who may save connections: it is the form's Test button.
    """
    require(actor, Action.manage_connections)
    with session_scope() as session:
        spec = _draft_spec(session, draft)
    try:
        result = get_connector(spec).test()
    except ConnectorError as exc:
        return DraftTestResult(ok=False, error_kind=exc.kind, error=str(exc))
    return DraftTestResult(ok=True, latency_ms=round(result.latency_ms, 2), server_version=result.server_version)


test_draft.__dict__["__test__"] = False


def cdc_readiness(actor: Actor, connection_id: int, database: str | None = None) -> list[ReadinessItem]:
    """Whether the connection's server is ready for CDC, point by point with the fix (PostgreSQL)."""
    connector = connector_for(actor, connection_id)
    return connector.cdc_readiness(database or connector.spec.database)


def test_history(actor: Actor, connection_id: int, limit: int = 50) -> list[ConnectionTestPublic]:
    """The newest tests of a connection, newest first."""
    require(actor, Action.read)
    with session_scope() as session:
        _load(session, connection_id)
        rows = conn_db.list_tests(session=session, connection_id=connection_id, limit=limit)
        return [ConnectionTestPublic.model_validate(t, from_attributes=True) for t in rows]


test_history.__dict__["__test__"] = False


def list_databases(actor: Actor, connection_id: int) -> list[DatabaseInfo]:
    """Databases on the connection's server."""
    return connector_for(actor, connection_id).list_databases()


def list_schemas(actor: Actor, connection_id: int, database: str | None = None) -> list[SchemaInfo]:
    """Schemas of the chosen database (the connection's own database by default)."""
    connector = connector_for(actor, connection_id)
    return connector.list_schemas(database or connector.spec.database)


def list_tables(
    actor: Actor, connection_id: int, database: str | None = None, schema: str | None = None, exact: bool = False
) -> list[TableInfo]:
    """Tables of the chosen database and schema with row counts, sizes and PK flags."""
    connector = connector_for(actor, connection_id)
    return connector.list_tables(database or connector.spec.database, schema or _default_schema(connector), exact)


def table_detail(actor: Actor, connection_id: int, schema: str, table: str, database: str | None = None) -> TableDetail:
    """Columns, keys, foreign keys and indexes of one table."""
    connector = connector_for(actor, connection_id)
    return connector.table_detail(database or connector.spec.database, schema, table)


def count_rows(actor: Actor, connection_id: int, schema: str, table: str, database: str | None = None) -> int:
    """The exact row count of one table."""
    connector = connector_for(actor, connection_id)
    return connector.count_rows(database or connector.spec.database, schema, table)


def dependencies(
    actor: Actor, connection_id: int, tables: list[str], database: str | None = None, schema: str | None = None
) -> Dependencies:
    """A foreign-key load order of the chosen tables."""
    connector = connector_for(actor, connection_id)
    return connector.dependencies(database or connector.spec.database, schema or _default_schema(connector), tables)


def _default_schema(connector: Connector) -> str:
    return connector.spec.schema or ("dbo" if connector.spec.kind == "sqlserver" else "public")
