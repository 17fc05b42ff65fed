"""One SQL Server side of a data check: a pyodbc session with the Reader interface the TableValidator uses.

The session is in autocommit (each statement outside `snapshot` commits on its own) with a query timeout of
STATEMENT_TIMEOUT_S. `snapshot` runs its queries in a SNAPSHOT transaction when the database allows it
(ALLOW_SNAPSHOT_ISOLATION ON): row versions, so the reads neither block the application's writes nor wait
for them, and see one committed state. It is opened with SET TRANSACTION ISOLATION LEVEL SNAPSHOT before
BEGIN TRANSACTION, because a transaction cannot switch to SNAPSHOT once it started under another level.
A database with only READ_COMMITTED_SNAPSHOT ON gives each statement its own committed snapshot, which is
enough: every snapshot block of the validator runs a single statement. A database with neither reads under
locks (shared locks taken and released while the scan moves, rows moved by concurrent updates missed or
read twice): fine for a pipeline that only loads (nothing changes), refused for one that streams, with the
ALTER DATABASE that fixes it (`SnapshotIsolationOff`).

Shape comes from the same catalog queries the connector's discovery uses (core.connectors.sqlserver); driver
errors leave translated by its translate_error. Sessions are opened by its odbc_connect, the seam the tests
replace.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from core.connectors import sqlserver as ss
from core.connectors.base import ConnectionSpec
from core.datacheck.engine import STATEMENT_TIMEOUT_S, db_lock
from core.datacheck.mssql import MssqlColumn, MssqlShape
from core.datacheck.portable import Norm
from core.datacheck.sql import Column
from core.errors import ObjectNotFound, StudioError

UTF8_CODE_PAGE = 65001
SESSION_SQL = "SET NOCOUNT ON; SET CONCAT_NULL_YIELDS_NULL ON"  # NULL + '.' must stay NULL in the value texts
# The database's row versioning, and whether this server knows UTF-8 collations (NULL before SQL Server 2019).
CAPABILITIES_SQL = """
SELECT d.snapshot_isolation_state, d.is_read_committed_snapshot_on,
       COLLATIONPROPERTY(N'Latin1_General_100_BIN2_UTF8', 'CodePage') AS utf8_code_page
FROM sys.databases AS d
WHERE d.database_id = DB_ID()
"""
SNAPSHOT_ON = 1  # sys.databases.snapshot_isolation_state: 0 off, 1 on, 2 and 3 in transition
BEGIN_SNAPSHOT_SQL = "SET TRANSACTION ISOLATION LEVEL SNAPSHOT; BEGIN TRANSACTION"
END_SNAPSHOT_SQL = "IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION; SET TRANSACTION ISOLATION LEVEL READ COMMITTED"


class SnapshotIsolationOff(StudioError):
    """The database cannot give consistent reads that leave writers alone, and changes are flowing."""


class MssqlReader:
    """One SQL Server side's session for a data check (read only, query timeout)."""

    kind = "sqlserver"

    def __init__(self, spec: ConnectionSpec, *, is_source: bool, streaming: bool = True) -> None:
        self.spec = spec
        self.is_source = is_source
        self.lock = db_lock(spec)
        self.conn = ss.odbc_connect(spec, autocommit=True)
        try:
            self.conn.timeout = STATEMENT_TIMEOUT_S
            self._run(SESSION_SQL)
            found = self.query(CAPABILITIES_SQL)
            state, rcsi, code_page = found[0] if found else (0, 0, None)
            self.utf8 = code_page is not None and int(code_page) == UTF8_CODE_PAGE
            self.isolation = self._isolation(int(state or 0), bool(rcsi), streaming)
        except BaseException:
            self.conn.close()
            raise

    def _isolation(self, state: int, rcsi: bool, streaming: bool) -> str:
        if state == SNAPSHOT_ON:
            return "SNAPSHOT"
        if rcsi:
            return "READ COMMITTED SNAPSHOT"
        if streaming:
            db = self.spec.database
            raise SnapshotIsolationOff(
                f"SQL Server database {db} does not allow snapshot isolation: validating while changes flow "
                "needs it, so that the check neither blocks the application's writes nor reads half of them; "
                f"run ALTER DATABASE {ss.quote_ident(db)} SET ALLOW_SNAPSHOT_ISOLATION ON "
                "(READ_COMMITTED_SNAPSHOT ON serves too) and check again"
            )
        return "READ COMMITTED"

    def close(self) -> None:
        self.conn.close()

    def _cursor_run(self, statement: str, params: Sequence[Any], fetch: bool) -> list[tuple]:
        with self.lock:
            cur = self.conn.cursor()
            try:
                if params:
                    cur.execute(statement, *params)
                else:
                    cur.execute(statement)
                return [tuple(r) for r in cur.fetchall()] if fetch else []
            except Exception as exc:
                raise ss.translate_error(exc, self.spec) from None
            finally:
                cur.close()

    def _run(self, statement: str) -> None:
        self._cursor_run(statement, (), fetch=False)

    def query(self, statement: Any, params: list | tuple = ()) -> list[tuple]:
        """The rows of one T-SQL statement (`?` parameters)."""
        return self._cursor_run(str(statement), list(params), fetch=True)

    def done(self) -> None:
        """Nothing to end: outside `snapshot` every statement committed on its own (autocommit)."""

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """A SNAPSHOT transaction when the database allows it (else each statement's own, see the module)."""
        if self.isolation != "SNAPSHOT":
            yield
            return
        self._run(BEGIN_SNAPSHOT_SQL)
        try:
            yield
        finally:
            self._run(END_SNAPSHOT_SQL)

    def shape(self, schema: str, table: str) -> tuple[list[Column], list[str]]:
        """The table's columns (types as discovery renders them) and primary key columns in key order."""
        try:
            found = self.query(ss.TABLE_ID_SQL, (schema, table))
            if not found:
                raise ObjectNotFound(f"table {schema}.{table} does not exist in database {self.spec.database}")
            object_id = int(found[0][0])
            columns: list[Column] = [
                MssqlColumn(name, ss.render_type(type_name, max_length, precision, scale))
                for name, type_name, max_length, precision, scale, *_rest in self.query(ss.COLUMNS_SQL, (object_id,))
            ]
            key = [column for _name, _unique, primary, column in self.query(ss.INDEXES_SQL, (object_id,)) if primary]
        except StudioError as exc:
            side = "source" if self.is_source else "target"
            raise StudioError(f"the {side} table {schema}.{table} cannot be read: {exc}") from None
        return columns, key

    def table_shape(
        self, table: tuple[str, str], key: Sequence[Column], columns: Sequence[Column], norms: tuple[Norm, ...] | None
    ) -> MssqlShape:
        """The queries of this side (SQL Server always renders the portable normal form)."""
        if norms is None:
            raise StudioError("a SQL Server side is compared in the portable normal form only")
        return MssqlShape(
            table[0], table[1], tuple(map(_as_mssql, key)), tuple(map(_as_mssql, columns)), norms, utf8=self.utf8
        )


def _as_mssql(column: Column) -> MssqlColumn:
    return column if isinstance(column, MssqlColumn) else MssqlColumn(column.name, column.type)
