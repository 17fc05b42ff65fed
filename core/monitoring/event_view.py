"""How a logged change is shown: values with their column types, what changed, who may see the row.

Engines log values as the source's text output (PostgreSQL sends a boolean as "t", a number as
"42"); the events page and the API show them typed by the source table's column types.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from core import app_settings, connections
from core.errors import StudioError
from core.users import Actor
from data import pipelines as pipe_db
from data.db import session_scope

log = logging.getLogger(__name__)

WITHHELD_NOTE = (
    "Row data is withheld: your role may see which rows changed, not their values. "
    "An admin can allow viewers to see data in Settings."
)
REPLICA_IDENTITY_NOTE = (
    "The source sent no before image: with REPLICA IDENTITY DEFAULT PostgreSQL sends only the key of an "
    "updated or deleted row. For full before images run ALTER TABLE {table} REPLICA IDENTITY FULL on the source."
)
_INTS = ("smallint", "integer", "bigint", "int2", "int4", "int8", "int", "tinyint", "serial", "bigserial")
_FLOATS = ("real", "double precision", "float4", "float8", "float", "double")
_BOOLS = ("boolean", "bool", "bit")
_JSONS = ("json", "jsonb")
_BOOL_TEXT = {"t": True, "true": True, "1": True, "f": False, "false": False, "0": False}
_CACHE_S = 300.0  # column types of a table, kept a few minutes: a dialog should not reconnect each time
_types_cache: dict[tuple[int, str], tuple[float, dict[str, str]]] = {}
_lock = threading.Lock()


def _base_type(type_name: str) -> str:
    return type_name.lower().split("(")[0].strip()


def typed_value(value: Any, type_name: str | None) -> Any:
    """A text value as its column type: numbers as numbers, booleans, json as json; else unchanged."""
    if not isinstance(value, str) or not type_name:
        return value
    base = _base_type(type_name)
    try:
        if base in _INTS:
            return int(value)
        if base in _FLOATS:
            return float(value)
        if base in ("numeric", "decimal"):
            return _number(value)
        if base in _BOOLS:
            return _BOOL_TEXT.get(value.lower(), value)
        if base in _JSONS:
            return json.loads(value)
    except ValueError:  # a value the type does not parse (NaN, Infinity): show it as it came
        return value
    return value


def _number(text: str) -> int | float | str:
    # A numeric with more digits than a float holds stays text, so no digit is lost on the way.
    if sum(ch.isdigit() for ch in text) > 15:
        return text
    return int(text) if text.lstrip("-").isdigit() else float(text)


def typed_row(row: dict | None, types: dict[str, str]) -> dict | None:
    """Every value of a row typed by its column's type."""
    if row is None:
        return None
    return {name: typed_value(value, types.get(name)) for name, value in row.items()}


def changed_columns(before: dict | None, after: dict | None) -> list[str]:
    """The columns whose value differs between before and after (only columns both images carry)."""
    if not before or not after:
        return []
    return [name for name in after if name in before and before[name] != after[name]]


def before_note(op: str, before: dict | None, key: dict | None, table: str) -> str | None:
    """Why "before" is empty or holds only the key, for an update or delete; None when it is complete."""
    if op not in ("update", "delete"):
        return None
    if before and set(before) - set(key or {}):
        return None
    return REPLICA_IDENTITY_NOTE.format(table=table)


def _load_types(actor: Actor, pipeline_id: int, table: str) -> dict[str, str]:
    with session_scope() as session:
        p = pipe_db.get_pipeline(session=session, pipeline_id=pipeline_id)
        if p is None:
            return {}
        connection_id, database = p.source_connection_id, p.source_database
    schema, _, name = table.rpartition(".")
    detail = connections.table_detail(actor, connection_id, schema, name, database or None)
    return {c.name: c.type for c in detail.columns}


def column_types(actor: Actor, pipeline_id: int, table: str) -> dict[str, str]:
    """The source table's column types by name (cached); {} when the source cannot be asked now."""
    now = time.monotonic()
    with _lock:
        hit = _types_cache.get((pipeline_id, table))
    if hit and now - hit[0] < _CACHE_S:
        return hit[1]
    try:
        types = _load_types(actor, pipeline_id, table)
    except StudioError as exc:  # the source is down: values are shown as they came
        log.info("column types of %s for pipeline %s unavailable: %s", table, pipeline_id, exc)
        return {}
    with _lock:
        _types_cache[(pipeline_id, table)] = (now, types)
    return types


def can_see_data(actor: Actor) -> bool:
    """Whether this actor may see row values (admins and editors; viewers when an admin allows it)."""
    return app_settings.can_see_data(actor)
