"""Resync rows: write the source's current version of some keys onto the target, ordered against the stream.

In one target transaction: the target rows of the keys are locked first (FOR UPDATE), then the source rows
are read (the newest committed), then the target rows are deleted and the source's inserted. Whatever the
pipeline applied before the lock came from a source commit older than this read, so nothing newer is
overwritten; what it applies after waits for the lock and comes after, in commit order. A row changed
again meanwhile ends with its newest value. Values travel as their text and are cast to the target
column's type.
"""

from __future__ import annotations

from typing import Any

from psycopg2 import sql

from core.connectors.base import ConnectionSpec
from core.connectors.postgres import connect, translate_error
from core.datacheck.engine import NoPrimaryKey, Reader
from core.errors import StudioError, ValidationFailed

CHUNK = 500


def resync_rows(
    source: ConnectionSpec,
    target: ConnectionSpec,
    source_table: tuple[str, str],
    target_table: tuple[str, str],
    keys: list[dict[str, Any]],
) -> int:
    """Make the target rows of `keys` ({column: value}) equal the source's now; the number of keys written."""
    if not keys:
        return 0
    if (source.kind, target.kind) != ("postgresql", "postgresql"):
        raise ValidationFailed(
            "mode", "resyncing single rows works between PostgreSQL databases only for now; reload the table instead"
        )
    src = Reader(source, is_source=True)
    tgt = Reader(target, is_source=False)
    try:
        src_cols, key = src.shape(*source_table)
        tgt_cols, _ = tgt.shape(*target_table)
    finally:
        src.close()
        tgt.close()
    if not key:
        raise NoPrimaryKey(f"{source_table[0]}.{source_table[1]} has no primary key")
    on_target = {c.name: c for c in tgt_cols}
    columns = [c.name for c in src_cols if c.name in on_target]
    if any(k not in on_target for k in key):
        raise StudioError("the target table lacks key columns of the source")
    done = 0
    for start in range(0, len(keys), CHUNK):
        chunk = [tuple(k[c] for c in key) for k in keys[start : start + CHUNK]]
        done += _chunk(source, target, source_table, target_table, key, columns, on_target, chunk)
    return done


def _chunk(
    source: ConnectionSpec,
    target: ConnectionSpec,
    source_table: tuple[str, str],
    target_table: tuple[str, str],
    key: list[str],
    columns: list[str],
    on_target: dict,
    chunk: list[tuple],
) -> int:
    key_cols = sql.SQL(", ").join(sql.Identifier(k) for k in key)
    src_name, tgt_name = sql.Identifier(*source_table), sql.Identifier(*target_table)
    texts = sql.SQL(", ").join(sql.SQL("({})::text").format(sql.Identifier(c)) for c in columns)
    marks = sql.SQL(", ").join(
        sql.SQL("%s::{}").format(sql.SQL(on_target[c].type)) for c in columns
    )  # format_type() text: a valid type name to cast to
    insert = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        tgt_name, sql.SQL(", ").join(sql.Identifier(c) for c in columns), marks
    )
    conn = connect(target, application_name="cdc_studio_resync", autocommit=False)
    try:
        with conn.cursor() as cur:
            where = sql.SQL("WHERE ({}) IN %s").format(key_cols)
            cur.execute(sql.SQL("SELECT 1 FROM {} {} FOR UPDATE").format(tgt_name, where), [tuple(chunk)])
            rows = _source_rows(source, sql.SQL("SELECT {} FROM {} {}").format(texts, src_name, where), chunk)
            cur.execute(sql.SQL("DELETE FROM {} {}").format(tgt_name, where), [tuple(chunk)])
            for row in rows:
                cur.execute(insert, list(row))
        conn.commit()
    except StudioError:
        conn.rollback()
        raise
    except Exception as exc:
        conn.rollback()
        raise translate_error(exc, target) from None
    finally:
        conn.close()
    return len(chunk)


def _source_rows(source: ConnectionSpec, query: sql.Composable, chunk: list[tuple]) -> list[tuple]:
    """The source rows of the keys as they are now (the newest committed)."""
    conn = connect(source, application_name="cdc_studio_resync")
    try:
        with conn.cursor() as cur:
            cur.execute(query, [tuple(chunk)])
            return cur.fetchall()
    except Exception as exc:
        raise translate_error(exc, source) from None
    finally:
        conn.close()
