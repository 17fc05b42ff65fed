"""Debezium change messages (JSON, without schemas) as the engine's ChangeEvents.

The connector is configured so every value arrives in a form that can be turned back into the
PostgreSQL text of the source value without loss (core/kafka/debezium.py):
decimal.handling.mode=string, time.precision.mode=adaptive_time_microseconds,
binary.handling.mode=hex, interval.handling.mode=string. Without schemas in the messages, the
meaning of a number (days? microseconds? milliseconds?) comes from the source column's type,
which the app reads from the source catalog: one converter per column, built once per table.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from core.cdc.events import ChangeEvent, normalize_op

UNAVAILABLE = "__debezium_unavailable_value"  # Debezium's placeholder for an unchanged TOASTed value
UNAVAILABLE_HEX = UNAVAILABLE.encode().hex()
_EPOCH_DATE = date(1970, 1, 1)
_EPOCH = datetime(1970, 1, 1)
_PRECISION = re.compile(r"\((\d+)\)")

Converter = Callable[[Any], str | None]


class UnknownColumns(Exception):
    """A message names columns the app does not know for its table (a new source column)."""

    def __init__(self, schema: str, table: str, columns: list[str]) -> None:
        super().__init__(f"{schema}.{table}: unknown column(s) {', '.join(columns)}")
        self.schema, self.table, self.columns = schema, table, columns


def _text(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "t" if v else "f"
    if isinstance(v, float):
        return _float(v)
    if isinstance(v, dict | list):
        return json.dumps(v, ensure_ascii=False, separators=(",", ":"))
    return str(v)


def _float(v: Any) -> str:
    if isinstance(v, str):  # Jackson writes NaN/Infinity as strings
        return v
    f = float(v)
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "Infinity" if f > 0 else "-Infinity"
    return repr(f) if isinstance(v, float) else str(v)


def _bool(v: Any) -> str:
    if isinstance(v, str):
        return "t" if v.lower() in ("t", "true", "1") else "f"
    return "t" if v else "f"


# Debezium's sentinels for PostgreSQL's infinite dates and timestamps (measured on Debezium 3.6).
_DATE_INFINITY = {-2147472692: "infinity", -2147472691: "-infinity"}
_TS_INFINITY = {9223372036825200000: "infinity", -9223372036832400000: "-infinity"}
_NUMERIC_SPECIAL = {"NAN": "NaN", "POSITIVE_INFINITY": "Infinity", "NEGATIVE_INFINITY": "-Infinity"}


def _numeric(v: Any) -> str:
    if isinstance(v, str):
        return _NUMERIC_SPECIAL.get(v, v)
    return _text(v)


def _date(v: Any) -> str:
    if isinstance(v, str):
        return v
    special = _DATE_INFINITY.get(int(v))
    if special:
        return special
    return (_EPOCH_DATE + timedelta(days=int(v))).isoformat()


def _time_micros(v: Any) -> str:
    if isinstance(v, str):
        return v
    micros = int(v)
    seconds, us = divmod(micros, 1_000_000)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    out = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{out}.{us:06d}" if us else out


def _timestamp(unit_us: int) -> Converter:
    def convert(v: Any) -> str:
        if isinstance(v, str):
            return v
        special = _TS_INFINITY.get(int(v))
        if special:
            return special
        return (_EPOCH + timedelta(microseconds=int(v) * unit_us)).isoformat(sep=" ")

    return convert


def _hstore(v: Any) -> str:
    """hstore arrives as JSON text (hstore.handling.mode=json): back to hstore's own text."""
    pairs = json.loads(v) if isinstance(v, str) else v

    def quote(x: str) -> str:
        return '"' + x.replace("\\", "\\\\").replace('"', '\\"') + '"'

    return ", ".join(f"{quote(k)}=>{'NULL' if x is None else quote(str(x))}" for k, x in pairs.items())


def _bytea(v: Any) -> str:
    return "\\x" + v if isinstance(v, str) else "\\x" + bytes(v).hex()


def _array(element: Converter) -> Converter:
    def item(x: Any) -> str:
        if x is None:
            return "NULL"
        if isinstance(x, list):
            return literal(x)
        s = element(x)
        if s is None:
            return "NULL"
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

    def literal(values: list) -> str:
        return "{" + ",".join(item(x) for x in values) + "}"

    def convert(v: Any) -> str:
        if isinstance(v, str):
            return v
        return literal(v)

    return convert


def converter_for(pg_type: str) -> Converter:
    """How a Debezium JSON value of a PostgreSQL column of this type becomes its PostgreSQL text."""
    t = pg_type.strip().lower()
    if t.endswith("[]"):
        return _array(converter_for(pg_type.strip()[:-2]))
    base = t.split("(")[0].strip()
    if base in ("boolean", "bool"):
        return _bool
    if base in ("real", "double precision", "float4", "float8"):
        return _float
    if base == "date":
        return _date
    if base.startswith("time") and "with time zone" not in t and not base.startswith("timestamp"):
        return _time_micros
    if base.startswith("timestamp") and "with time zone" not in t:
        m = _PRECISION.search(t)
        precision = int(m.group(1)) if m else 6
        return _timestamp(1000) if precision <= 3 else _timestamp(1)
    if base == "bytea":
        return _bytea
    if base in ("numeric", "decimal"):
        return _numeric
    if base.endswith("hstore"):
        return _hstore
    return _text


def _convert_row(
    row: Mapping[str, Any] | None, converters: Mapping[str, Converter]
) -> tuple[dict[str, str | None] | None, frozenset[str]]:
    if row is None:
        return None, frozenset()
    out: dict[str, str | None] = {}
    unchanged = []
    for name, value in row.items():
        if value is None:
            out[name] = None
            continue
        if value == UNAVAILABLE or value == UNAVAILABLE_HEX or value == [UNAVAILABLE]:
            unchanged.append(name)
            continue
        out[name] = converters.get(name, _text)(value)
    return out, frozenset(unchanged)


class TableConverter:
    """Turns one source table's Debezium envelopes into ChangeEvents."""

    def __init__(self, schema: str, table: str, column_types: Mapping[str, str], key: list[str]) -> None:
        self.schema, self.table, self.key = schema, table, list(key)
        self.columns = dict(column_types)
        self.converters = {name: converter_for(t) for name, t in column_types.items()}

    def event(self, envelope: Mapping[str, Any], position: int) -> ChangeEvent:
        op = normalize_op(envelope["op"])
        source = envelope.get("source") or {}
        ms = source.get("ts_ms") or envelope.get("ts_ms")
        commit_time = datetime.fromtimestamp(ms / 1000, UTC) if ms is not None else None
        if op == "truncate":
            return ChangeEvent(
                "truncate", self.schema, self.table, None, None, None, position, commit_time, source.get("txId")
            )
        raw_before, raw_after = envelope.get("before"), envelope.get("after")
        unknown = [c for c in (raw_after or raw_before or {}) if c not in self.columns]
        if unknown:
            raise UnknownColumns(self.schema, self.table, unknown)
        before, _ = _convert_row(raw_before, self.converters)
        after, unchanged = _convert_row(raw_after, self.converters)
        keyed = before if op == "delete" or (before and all(before.get(k) is not None for k in self.key)) else after
        if keyed is None or any(k not in keyed for k in self.key):
            raise ValueError(f"{self.schema}.{self.table}: a {op} message without its primary key {self.key}")
        key = {k: keyed[k] for k in self.key}
        return ChangeEvent(
            op, self.schema, self.table, key, before, after, position, commit_time, source.get("txId"), unchanged
        )
