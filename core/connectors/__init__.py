"""Database connectors behind one interface; `get_connector` picks the implementation by kind."""

from __future__ import annotations

from core.connectors.base import ConnectionSpec, Connector
from core.errors import ValidationFailed

KINDS = ("postgresql", "sqlserver")
DEFAULT_PORTS = {"postgresql": 5432, "sqlserver": 1433}


def get_connector(spec: ConnectionSpec) -> Connector:
    """The connector for the spec's kind (drivers are imported only when used)."""
    if spec.kind == "postgresql":
        from core.connectors.postgres import PostgresConnector

        return PostgresConnector(spec)
    if spec.kind == "sqlserver":
        from core.connectors.sqlserver import SqlServerConnector

        return SqlServerConnector(spec)
    raise ValidationFailed("kind", f"unknown connection kind '{spec.kind}' (expected one of {', '.join(KINDS)})")
