"""Debezium SQL Server change messages (JSON, without schemas): values as PostgreSQL text.

The SQL Server connector is configured (core/kafka/debezium.py, `sqlserver_source_config`) with
decimal.handling.mode=string, time.precision.mode=adaptive and binary.handling.mode=hex. Without
schemas in the messages, the meaning of a number comes from the source column's type as the
SQL Server catalog names it (core/connectors/sqlserver.py `render_type`: 'datetime2(7)',
'time(3)', 'decimal(18,4)', 'nvarchar(50)', 'varbinary(max)', ...): one converter per column.

What each type arrives as (Debezium SQL Server connector documentation, "Data type mappings"):
- bit: boolean; tinyint, smallint, int, bigint: JSON integers; real, float: JSON numbers.
- decimal, numeric, money, smallmoney: strings (decimal.handling.mode=string).
- char, varchar, text, nchar, nvarchar, ntext, xml: strings; uniqueidentifier: a string.
- binary, varbinary, image, rowversion: hex strings (binary.handling.mode=hex).
- date: days since 1970-01-01 (io.debezium.time.Date).
- time(0..3): milliseconds past midnight (Time); time(4..6): microseconds (MicroTime);
  time(7): nanoseconds (NanoTime).
- datetime, smalldatetime, datetime2(0..3): milliseconds since the epoch (Timestamp);
  datetime2(4..6): microseconds (MicroTimestamp); datetime2(7): nanoseconds (NanoTimestamp).
  No time zone: the wall-clock value read as UTC.
- datetimeoffset: an ISO-8601 string in UTC (io.debezium.time.ZonedTimestamp).

Every converter returns text PostgreSQL reads into the mapped column type (core/typemap.py):
fractions finer than PostgreSQL's microsecond (time(7), datetime2(7), datetimeoffset(7)) are
kept in the text and PostgreSQL rounds them, as it does for the embedded engine's values.
"""

from __future__ import annotations

import re
from typing import Any

from core.kafka.values import Converter, _bool, _date, _float, _text, _timestamptz, _ymd, civil_from_days

_NS_PER_DAY = 86_400 * 10**9
_UNIT_NS = {"ms": 10**6, "us": 10**3, "ns": 1}
_TYPE = re.compile(r"\s*([a-z_][a-z0-9_ ]*?)\s*(?:\(\s*([^)]*)\))?\s*")


def _clock(ns: int) -> str:
    """hh:mm:ss[.fraction] of nanoseconds past midnight (trailing zeros of the fraction dropped)."""
    seconds, frac = divmod(ns, 10**9)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    out = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    if frac:
        out += "." + f"{frac:09d}".rstrip("0")
    return out


def _time(unit: str) -> Converter:
    """time(n): milliseconds, microseconds or nanoseconds past midnight, by the column's precision."""
    factor = _UNIT_NS[unit]

    def convert(v: Any) -> str:
        if isinstance(v, str):
            return v
        return _clock(int(v) * factor)

    return convert


def _timestamp(unit: str) -> Converter:
    """datetime/smalldatetime/datetime2(n): time since the epoch in ms, µs or ns, by the column's type."""
    factor = _UNIT_NS[unit]

    def convert(v: Any) -> str:
        if isinstance(v, str):
            return v
        days, ns = divmod(int(v) * factor, _NS_PER_DAY)
        text, era = _ymd(*civil_from_days(days))
        return f"{text} {_clock(ns)}{era}"

    return convert


def _uuid(v: Any) -> str:
    """uniqueidentifier arrives as text (SQL Server writes it upper-case); PostgreSQL prints uuids lower-case."""
    return v.lower() if isinstance(v, str) else _text(v)


def _hex(v: Any) -> str:
    """binary/varbinary/image/rowversion arrive as hex text (binary.handling.mode=hex): bytea's hex form."""
    return "\\x" + v if isinstance(v, str) else "\\x" + bytes(v).hex()


def _precision(args: str | None, default: int) -> int:
    if args and args.strip().isdigit():
        return int(args)
    return default


def _unit(precision: int) -> str:
    return "ms" if precision <= 3 else "us" if precision <= 6 else "ns"


_SIMPLE: dict[str, Converter] = {
    "bit": _bool,
    "real": _float,
    "float": _float,
    "date": _date,
    "datetime": _timestamp("ms"),
    "smalldatetime": _timestamp("ms"),
    "datetimeoffset": _timestamptz,
    "uniqueidentifier": _uuid,
    "binary": _hex,
    "varbinary": _hex,
    "image": _hex,
    "rowversion": _hex,
    "timestamp": _hex,  # SQL Server's `timestamp` is rowversion, not a date
}


def converter_for(mssql_type: str) -> Converter:
    """How a Debezium JSON value of a SQL Server column of this type becomes its PostgreSQL text.

    `mssql_type` is the catalog's type text ('datetime2(7)', 'time(3)', 'varbinary(max)'); types
    not named here (integers, decimal/numeric/money as strings, character types, xml) arrive as
    text PostgreSQL reads back as it is.
    """
    m = _TYPE.fullmatch(mssql_type.lower())
    if m is None:
        return _text
    base, args = m.group(1), m.group(2)
    if base == "datetime2":
        return _timestamp(_unit(_precision(args, 7)))
    if base == "time":
        return _time(_unit(_precision(args, 7)))
    return _SIMPLE.get(base, _text)
