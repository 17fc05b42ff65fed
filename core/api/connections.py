"""Connections, their tests and discovery. Handlers are sync: FastAPI runs them in worker threads."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Response

from core import connections as svc
from core.api.deps import current_actor
from core.connections import (
    ConnectionCreate,
    ConnectionDraft,
    ConnectionPublic,
    ConnectionTestPublic,
    ConnectionUpdate,
    DraftTestResult,
)
from core.connectors.base import DatabaseInfo, Dependencies, ReadinessItem, SchemaInfo, TableDetail, TableInfo
from core.users import Actor

router = APIRouter(prefix="/connections", tags=["connections"])


@router.get("", response_model=list[ConnectionPublic])
def list_connections(actor: Actor = Depends(current_actor)) -> list[ConnectionPublic]:
    """Every saved connection (passwords are never returned)."""
    return svc.list_connections(actor)


@router.post("", response_model=ConnectionPublic, status_code=201)
def create_connection(body: ConnectionCreate, actor: Actor = Depends(current_actor)) -> ConnectionPublic:
    """Save a connection; the password is encrypted at rest and write-only."""
    return svc.create_connection(actor, body)


@router.post("/test", response_model=DraftTestResult)
def test_draft(body: ConnectionDraft, actor: Actor = Depends(current_actor)) -> DraftTestResult:
    """Test entered values before saving; nothing is stored (connection_id without a password: the stored one)."""
    return svc.test_draft(actor, body)


@router.get("/{connection_id}", response_model=ConnectionPublic)
def get_connection(connection_id: int, actor: Actor = Depends(current_actor)) -> ConnectionPublic:
    """One connection."""
    return svc.get_connection(actor, connection_id)


@router.put("/{connection_id}", response_model=ConnectionPublic)
def update_connection(
    connection_id: int, body: ConnectionUpdate, actor: Actor = Depends(current_actor)
) -> ConnectionPublic:
    """Edit a connection; fields left out (and a null password) keep their value."""
    return svc.update_connection(actor, connection_id, body)


@router.delete("/{connection_id}", status_code=204)
def delete_connection(connection_id: int, actor: Actor = Depends(current_actor)) -> Response:
    """Delete a connection and its test history."""
    svc.delete_connection(actor, connection_id)
    return Response(status_code=204)


@router.post("/{connection_id}/test", response_model=ConnectionTestPublic)
def test_connection(connection_id: int, actor: Actor = Depends(current_actor)) -> ConnectionTestPublic:
    """Connect now; the result (ok or the reason) is kept in the history."""
    return svc.test_connection(actor, connection_id)


@router.get("/{connection_id}/tests", response_model=list[ConnectionTestPublic])
def test_history(
    connection_id: int, limit: int = Query(50, ge=1, le=200), actor: Actor = Depends(current_actor)
) -> list[ConnectionTestPublic]:
    """Past tests, newest first."""
    return svc.test_history(actor, connection_id, limit)


@router.get("/{connection_id}/readiness", response_model=list[ReadinessItem])
def readiness(
    connection_id: int, database: str | None = None, actor: Actor = Depends(current_actor)
) -> list[ReadinessItem]:
    """The CDC readiness checklist (PostgreSQL): each point ok / warning / failing with its fix."""
    return svc.cdc_readiness(actor, connection_id, database)


@router.get("/{connection_id}/databases", response_model=list[DatabaseInfo])
def databases(connection_id: int, actor: Actor = Depends(current_actor)) -> list[DatabaseInfo]:
    """Databases on the server."""
    return svc.list_databases(actor, connection_id)


@router.get("/{connection_id}/schemas", response_model=list[SchemaInfo])
def schemas(connection_id: int, database: str | None = None, actor: Actor = Depends(current_actor)) -> list[SchemaInfo]:
    """Schemas of a database (the connection's own by default)."""
    return svc.list_schemas(actor, connection_id, database)


@router.get("/{connection_id}/tables", response_model=list[TableInfo])
def tables(
    connection_id: int,
    database: str | None = None,
    schema: str | None = None,
    exact: bool = False,
    actor: Actor = Depends(current_actor),
) -> list[TableInfo]:
    """Tables with row counts (catalog estimates, or exact with exact=true), sizes and PK flags."""
    return svc.list_tables(actor, connection_id, database, schema, exact)


@router.get("/{connection_id}/tables/{schema}/{table}", response_model=TableDetail)
def table_detail(
    connection_id: int, schema: str, table: str, database: str | None = None, actor: Actor = Depends(current_actor)
) -> TableDetail:
    """Columns, primary key, foreign keys (both directions) and indexes."""
    return svc.table_detail(actor, connection_id, schema, table, database)


@router.get("/{connection_id}/tables/{schema}/{table}/count")
def exact_count(
    connection_id: int, schema: str, table: str, database: str | None = None, actor: Actor = Depends(current_actor)
) -> dict:
    """The exact row count of one table."""
    return {"schema": schema, "name": table, "row_count": svc.count_rows(actor, connection_id, schema, table, database)}


@router.get("/{connection_id}/dependencies", response_model=Dependencies)
def dependencies(
    connection_id: int,
    tables: str = Query(..., description="comma-separated table names"),
    database: str | None = None,
    schema: str | None = None,
    actor: Actor = Depends(current_actor),
) -> Dependencies:
    """A load order of the chosen tables from their foreign keys (parents first)."""
    names = [t.strip() for t in tables.split(",") if t.strip()]
    return svc.dependencies(actor, connection_id, names, database, schema)
