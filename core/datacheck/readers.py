"""Opening one side of a data check: the reader of the connection's kind."""

from __future__ import annotations

from core.connectors.base import ConnectionSpec
from core.datacheck.engine import Reader, SideReader
from core.datacheck.mssql_reader import MssqlReader


def open_reader(spec: ConnectionSpec, *, is_source: bool, streaming: bool) -> SideReader:
    """A session on `spec` for a data check: SQL Server's for kind 'sqlserver', PostgreSQL's otherwise.

    `streaming`: changes may flow while the check reads (a CDC pipeline); a SQL Server database must then
    allow snapshot isolation (core.datacheck.mssql_reader).
    """
    if spec.kind == "sqlserver":
        return MssqlReader(spec, is_source=is_source, streaming=streaming)
    return Reader(spec, is_source=is_source)
