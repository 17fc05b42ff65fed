"""The applied source position per pipeline, kept on the TARGET next to the rows it describes.

The applier writes the offset in the same transaction as the changes, so after a crash the
target says exactly which source position it has: nothing is lost and nothing applied twice.
`source` names the stream: 'postgres' for a PostgreSQL slot (position = commit LSN as int),
'mssql' for SQL Server, 'kafka:<topic>:<partition>' for one Kafka partition (position = offset).
"""

from __future__ import annotations

from psycopg2.extensions import connection as PgConnection
from psycopg2.extensions import cursor as PgCursor

SCHEMA = "cdc_studio"
TABLE = "offsets"
DEFAULT_SOURCE = "postgres"

_EXISTS_SQL = "SELECT to_regclass('cdc_studio.offsets') IS NOT NULL"
_SCHEMA_EXISTS_SQL = "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'cdc_studio')"
_CREATE_SCHEMA_SQL = "CREATE SCHEMA IF NOT EXISTS cdc_studio"
_CREATE_TABLE_SQL = """
CREATE TABLE IF NOT EXISTS cdc_studio.offsets (
    pipeline_id bigint NOT NULL,
    source text NOT NULL,
    position numeric(25, 0) NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline_id, source)
)
"""
_READ_SQL = "SELECT position FROM cdc_studio.offsets WHERE pipeline_id = %s AND source = %s"
_WRITE_SQL = """
INSERT INTO cdc_studio.offsets AS o (pipeline_id, source, position, updated_at)
VALUES (%s, %s, %s, clock_timestamp())
ON CONFLICT (pipeline_id, source) DO UPDATE SET position = EXCLUDED.position, updated_at = EXCLUDED.updated_at
"""
_DELETE_SQL = "DELETE FROM cdc_studio.offsets WHERE pipeline_id = %s"
_READ_PREFIX_SQL = "SELECT source, position FROM cdc_studio.offsets WHERE pipeline_id = %s AND left(source, %s) = %s"


_POSITION_TYPE_SQL = (
    "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
    "WHERE attrelid = 'cdc_studio.offsets'::regclass AND attname = 'position'"
)
# SQL Server LSNs are 80-bit numbers: positions are numeric (tables made by earlier versions had bigint).
_WIDEN_SQL = "ALTER TABLE cdc_studio.offsets ALTER COLUMN position TYPE numeric(25, 0)"


def _scalar(cur: PgCursor) -> object:
    """The first column of the next row (None without one)."""
    row = cur.fetchone()
    return None if row is None else row[0]


def ensure_offsets_table(cur: PgCursor) -> None:
    """Create schema cdc_studio and its offsets table when missing (checks first: needs no rights if present)."""
    cur.execute(_EXISTS_SQL)
    if _scalar(cur):
        cur.execute(_POSITION_TYPE_SQL)
        if _scalar(cur) == "bigint":
            cur.execute(_WIDEN_SQL)
        return
    cur.execute(_SCHEMA_EXISTS_SQL)
    if not _scalar(cur):
        cur.execute(_CREATE_SCHEMA_SQL)
    cur.execute(_CREATE_TABLE_SQL)


def read_offset(conn: PgConnection, pipeline_id: int, source: str = DEFAULT_SOURCE) -> int | None:
    """The last applied position of a pipeline's stream, or None (nothing applied, or no offsets table)."""
    with conn.cursor() as cur:
        cur.execute(_EXISTS_SQL)
        if not _scalar(cur):
            return None
        cur.execute(_READ_SQL, (pipeline_id, source))
        row = cur.fetchone()
    return None if row is None else int(row[0])


def read_offsets(cur: PgCursor, pipeline_id: int, prefix: str) -> dict[str, int]:
    """Every stored position of a pipeline whose stream name starts with `prefix` ({} without an offsets table)."""
    cur.execute(_EXISTS_SQL)
    if not _scalar(cur):
        return {}
    cur.execute(_READ_PREFIX_SQL, (pipeline_id, len(prefix), prefix))
    return {name: int(position) for name, position in cur.fetchall()}


def read_offset_for_update(cur: PgCursor, pipeline_id: int, source: str = DEFAULT_SOURCE) -> int | None:
    """The stored position, row-locked until the transaction ends (one applier per stream at a time)."""
    cur.execute(_READ_SQL + " FOR UPDATE", (pipeline_id, source))
    row = cur.fetchone()
    return None if row is None else int(row[0])


def write_offset(cur: PgCursor, pipeline_id: int, position: int, source: str = DEFAULT_SOURCE) -> None:
    """Upsert the applied position; call it inside the transaction that applies the changes."""
    cur.execute(_WRITE_SQL, (pipeline_id, source, int(position)))


def delete_offsets(cur: PgCursor, pipeline_id: int) -> None:
    """Forget every stream position of a pipeline (when the pipeline is deleted or reset)."""
    cur.execute(_EXISTS_SQL)
    if _scalar(cur):
        cur.execute(_DELETE_SQL, (pipeline_id,))
