"""Database connectors behind one interface; `get_connector` picks the implementation by kind."""

from __future__ import annotations

from core.connectors.base import ConnectionSpec, Connector
from core.connectors.postgres import PostgresConnector
from core.connectors.sqlserver import SqlServerConnector
from core.errors import ValidationFailed

KINDS = ("postgresql", "sqlserver")
DEFAULT_PORTS = {"postgresql": 5432, "sqlserver": 1433}


def get_connector(spec: ConnectionSpec) -> Connector:
    """The connector for the spec's kind (pyodbc itself is loaded only when a SQL Server session opens)."""
    if spec.kind == "postgresql":
        return PostgresConnector(spec)
    if spec.kind == "sqlserver":
        return SqlServerConnector(spec)
    raise ValidationFailed("kind", f"unknown connection kind '{spec.kind}' (expected one of {', '.join(KINDS)})")
