"""Debezium change messages (JSON, without schemas) as the engine's ChangeEvents.

The connector is configured so every value arrives in a form that can be turned back into the
PostgreSQL text of the source value (core/kafka/debezium.py): decimal.handling.mode=string,
time.precision.mode=adaptive_time_microseconds, binary.handling.mode=hex,
interval.handling.mode=string, hstore.handling.mode=json. Without schemas in the messages, the
meaning of a number (days? microseconds? milliseconds?) comes from the source column's type
(`format_type` text from the source catalog): one converter per column, built once per table.

Every converter returns the PostgreSQL text that, COPYed into a column of the source type, gives
the source value. Dates and timestamps are computed here on the proleptic Gregorian calendar
(PostgreSQL's), so BC values and years past 9999 come out right (Python's `date` stops at 1..9999).

What Debezium 3.6 itself loses, measured on Debezium 3.6.3 / PostgreSQL 15 (nothing here can
bring it back; tests/core/test_debezium_values.py (LOSSY) and tests/kafka/test_kafka_types.py
assert what arrives instead):
- time with time zone arrives normalized to UTC ('13:45:56+02' -> '11:45:56Z'; '24:00:00+00' -> '00:00:00Z').
- enum arrays with a NULL element, and numeric arrays holding NaN/Infinity, arrive as null.
- multi-dimensional arrays arrive as a list of nulls (int) or as Java object names (text);
  array lower bounds ('[0:1]={5,6}') are dropped.
- arrays of date/timestamp/timestamptz lose BC (and shift pre-1582 values by the Julian
  calendar); arrays of time are cut to milliseconds and '24:00:00' becomes '00:00:00'.
- bit varying loses its leading zero bits (the value arrives as the bytes of a BitSet).
- timestamps past 294247-01-10 overflow Debezium's microseconds (garbage the target refuses).
- an interval with 2^31 hours or more fails the connector task (pgjdbc's PGInterval).
- columns of types without a Debezium converter (interval[], money[], composite types) are
  left out of the messages altogether; domains arrive as their base type.
- the TOAST placeholder is a plain string: a text value equal to it reads as "unchanged".
"""

from __future__ import annotations

import base64
import json
import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from core.cdc.events import ChangeEvent, normalize_op

log = logging.getLogger(__name__)

UNAVAILABLE = "__debezium_unavailable_value"  # Debezium's placeholder for an unchanged TOASTed value (any type)
NEW_KEY_HEADER = "__debezium.newkey"  # on the delete half of a primary-key change
OLD_KEY_HEADER = "__debezium.oldkey"  # on the create half of a primary-key change

Converter = Callable[[Any], str]
_NONE: frozenset[str] = frozenset()

_US_PER_DAY = 86_400_000_000


class UnknownColumns(Exception):
    """A message names columns the app does not know for its table (a new source column)."""

    def __init__(self, schema: str, table: str, columns: list[str]) -> None:
        super().__init__(f"{schema}.{table}: unknown column(s) {', '.join(columns)}")
        self.schema, self.table, self.columns = schema, table, columns


# -- scalars ----------------------------------------------------------------------------------


def _text(v: Any) -> str:
    t = type(v)
    if t is str:
        return v
    if t is int:
        return str(v)
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
    """real / double precision: JSON numbers (shortest round-trip text), NaN and ±Infinity as strings."""
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


_NUMERIC_SPECIAL = {"NAN": "NaN", "POSITIVE_INFINITY": "Infinity", "NEGATIVE_INFINITY": "-Infinity"}


def _numeric(v: Any) -> str:
    """numeric arrives as a plain decimal string (never exponent form), NaN as 'NAN'."""
    if isinstance(v, str):
        return _NUMERIC_SPECIAL.get(v, v)
    return _text(v)


def _bytea(v: Any) -> str:
    return "\\x" + v if isinstance(v, str) else "\\x" + bytes(v).hex()


def _hstore(v: Any) -> str:
    """hstore arrives as JSON text (hstore.handling.mode=json): back to hstore's own text."""
    pairs = json.loads(v) if isinstance(v, str) else v

    def quote(x: str) -> str:
        return '"' + x.replace("\\", "\\\\").replace('"', '\\"') + '"'

    return ", ".join(f"{quote(k)}=>{'NULL' if x is None else quote(str(x))}" for k, x in pairs.items())


def _point(v: Any) -> str:
    """point arrives as {"x": .., "y": .., "wkb": .., "srid": ..}."""
    if isinstance(v, Mapping):
        return f"({_float(v['x'])},{_float(v['y'])})"
    return _text(v)


def _bits(length: int | None) -> Converter:
    """bit(n) arrives as the base64 bytes of a Java BitSet (little-endian, leading zeros dropped).

    With the column's length n the bit string is exact; for bit varying (length None) the leading
    zero bits are lost in the message and the shortest bit string of the value is all there is.
    """

    def convert(v: Any) -> str:
        if not isinstance(v, str):
            return _text(v)
        value = int.from_bytes(base64.b64decode(v), "little")
        if length is None:
            return format(value, "b") if value else ""
        return format(value, f"0{length}b")

    return convert


# -- dates and times --------------------------------------------------------------------------

# Debezium's sentinels for PostgreSQL's infinite dates and timestamps (measured on Debezium 3.6).
# Dates inside arrays take another path (java.sql.Date): their sentinels are other numbers, all
# far outside PostgreSQL's date range, so they cannot be a real date.
_DATE_INFINITY = {-2147472692: "infinity", -2147472691: "-infinity", -622191234: "infinity", -625821272: "-infinity"}
# timestamp(0..3) sends them in milliseconds. The positive one is also the number of a real timestamp
# (294247-01-10 04:00:25.2), which would read as infinity; the negative one is before 4713 BC.
_TS_INFINITY = {9223372036825200000: "infinity", -9223372036832400000: "-infinity"}
_TS_MS_INFINITY = {9223372036825200: "infinity", -9223372036832400: "-infinity"}
_ISO_TIMESTAMP = re.compile(r"([+-]?\d{4,})-(\d{2})-(\d{2})T(\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}(?::?\d{2}){0,2})?")
_ISO_TIME = re.compile(r"(\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}(?::?\d{2}){0,2})?")


def civil_from_days(days: int) -> tuple[int, int, int]:
    """(year, month, day) of a day count since 1970-01-01 on the proleptic Gregorian calendar.

    Astronomical years: 0 is 1 BC, -1 is 2 BC (H. Hinnant's algorithm, exact for any integer).
    """
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, day


def _ymd(year: int, month: int, day: int) -> tuple[str, str]:
    """PostgreSQL's date text and era suffix ('' or ' BC') of an astronomical year."""
    if year <= 0:
        return f"{1 - year:04d}-{month:02d}-{day:02d}", " BC"
    return f"{year:04d}-{month:02d}-{day:02d}", ""


def _fraction(digits: str) -> str:
    """'.500000' -> '.5', '.000000' -> '' (PostgreSQL's own output drops trailing zeros)."""
    digits = digits.rstrip("0")
    return digits if digits != "." else ""


def _clock(micros: int) -> str:
    seconds, us = divmod(micros, 1_000_000)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    out = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return out + _fraction(f".{us:06d}") if us else out


def _date(v: Any) -> str:
    """date arrives as days since 1970-01-01 (proleptic Gregorian; BC and year 5874897 included)."""
    if isinstance(v, str):
        return v
    days = int(v)
    special = _DATE_INFINITY.get(days)
    if special:
        return special
    text, era = _ymd(*civil_from_days(days))
    return text + era


def _time(v: Any) -> str:
    """time(0..6) arrives as microseconds since midnight (86400000000 is 24:00:00)."""
    if isinstance(v, str):
        return v
    return _clock(int(v))


def _timestamp(unit_us: int) -> Converter:
    """timestamp(0..3) arrives as milliseconds since the epoch, timestamp(4..6) as microseconds."""
    sentinels = _TS_INFINITY if unit_us == 1 else _TS_MS_INFINITY

    def convert(v: Any) -> str:
        if isinstance(v, str):
            return v
        special = sentinels.get(int(v))
        if special:
            return special
        days, micros = divmod(int(v) * unit_us, _US_PER_DAY)
        text, era = _ymd(*civil_from_days(days))
        return f"{text} {_clock(micros)}{era}"

    return convert


def _zone(zone: str | None) -> str:
    return "+00" if zone in (None, "Z") else zone


def _timestamptz(v: Any) -> str:
    """timestamptz arrives as ISO text in UTC: '2024-02-29T11:45:56.123456Z', '0000-01-01T..Z' (1 BC),
    '-4712-01-01T..Z' (4713 BC), '+294276-12-31T..Z'; PostgreSQL reads neither year 0 nor signed years."""
    if not isinstance(v, str):
        return _text(v)
    if len(v) >= 20 and v[4] == "-" and v[10] == "T" and v[-1] == "Z" and v[0] in "0123456789" and v[:4] != "0000":
        clock = v[11:-1]  # years 0001-9999 in UTC, the common case: no regex
        if "." in clock:
            clock = clock.rstrip("0").rstrip(".")
        return f"{v[:10]} {clock}+00"
    m = _ISO_TIMESTAMP.fullmatch(v)
    if m is None:
        return v  # 'infinity', '-infinity'
    year, month, day, clock, fraction, zone = m.groups()
    text, era = _ymd(int(year), int(month), int(day))
    return f"{text} {clock}{_fraction(fraction or '')}{_zone(zone)}{era}"


def _timetz(v: Any) -> str:
    """timetz arrives as ISO text normalized to UTC ('11:45:56.123456Z'): the source's offset is gone."""
    if not isinstance(v, str):
        return _text(v)
    m = _ISO_TIME.fullmatch(v)
    if m is None:
        return v
    clock, fraction, zone = m.groups()
    return f"{clock}{_fraction(fraction or '')}{_zone(zone)}"


# -- arrays -----------------------------------------------------------------------------------


def _array(element: Converter) -> Converter:
    """Arrays arrive as JSON lists of the element type's values; every element is quoted."""

    def item(x: Any) -> str:
        if x is None:
            return "NULL"
        if isinstance(x, list):
            return literal(x)
        s = element(x)
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

    def literal(values: list) -> str:
        return "{" + ",".join([item(x) for x in values]) + "}"

    def convert(v: Any) -> str:
        if isinstance(v, str):
            return v
        return literal(v)

    return convert


# -- dispatch by the source column's type -----------------------------------------------------

_DATETIME_TYPE = re.compile(r"(timestamptz|timestamp|timetz|time)(?:\s*\((\d+)\))?(?:\s+(with|without)\s+time\s+zone)?")
_NUMERIC_TYPE = re.compile(r"(?:numeric|decimal)(?:\s*\(.*\))?")
_BIT_TYPE = re.compile(r"bit(?:\s*\((\d+)\))?")
_VARBIT_TYPE = re.compile(r"(?:bit varying|varbit)(?:\s*\(\d+\))?")
_SIMPLE: dict[str, Converter] = {
    "boolean": _bool,
    "bool": _bool,
    "real": _float,
    "float4": _float,
    "double precision": _float,
    "float8": _float,
    "date": _date,
    "bytea": _bytea,
    "hstore": _hstore,
    "point": _point,
}


def converter_for(pg_type: str) -> Converter:
    """How a Debezium JSON value of a PostgreSQL column of this type becomes its PostgreSQL text.

    `pg_type` is `format_type()` text ('timestamp(3) without time zone', '"Shop".mood[]', ...);
    the usual short spellings ('timestamptz', 'int[]', 'float8') are understood too. Types not
    named here (integers, text types, uuid, json, jsonb, inet, money, interval in ISO form,
    ranges, enums, ...) arrive as text PostgreSQL reads back as it is.
    """
    t = pg_type.strip()
    if t.endswith("[]"):
        return _array(converter_for(t[:-2]))
    lowered = t.lower()
    simple = _SIMPLE.get(lowered) or (_hstore if lowered.endswith(".hstore") else None)
    if simple is not None:
        return simple
    m = _DATETIME_TYPE.fullmatch(lowered)
    if m:
        base, precision, zone = m.groups()
        with_zone = base in ("timestamptz", "timetz") or zone == "with"
        if base.startswith("timestamp"):
            if with_zone:
                return _timestamptz
            return _timestamp(1000) if precision is not None and int(precision) <= 3 else _timestamp(1)
        return _timetz if with_zone else _time
    if _NUMERIC_TYPE.fullmatch(lowered):
        return _numeric
    m = _BIT_TYPE.fullmatch(lowered)
    if m:
        return _bits(int(m.group(1) or 1))
    if _VARBIT_TYPE.fullmatch(lowered):
        return _bits(None)
    return _text


# -- envelopes --------------------------------------------------------------------------------


def _convert_row(
    row: Mapping[str, Any] | None, converters: Mapping[str, Converter]
) -> tuple[dict[str, str | None] | None, frozenset[str]]:
    if row is None:
        return None, _NONE
    out: dict[str, str | None] = {}
    unchanged = None
    get = converters.get
    for name, value in row.items():
        if value is None:
            out[name] = None
            continue
        t = type(value)
        # the TOAST placeholder: text, bytea, json(b) ...; arrays carry it as their one element
        if (t is str and value == UNAVAILABLE) or (t is list and len(value) == 1 and value[0] == UNAVAILABLE):
            if unchanged is None:
                unchanged = []
            unchanged.append(name)
        else:
            out[name] = get(name, _text)(value)
    return out, (frozenset(unchanged) if unchanged else _NONE)


def _header_map(headers: Mapping[str, Any] | Iterable[tuple[str, Any]] | None) -> dict[str, Any]:
    """Kafka message headers (confluent-kafka's list of (name, bytes) pairs, or a mapping) by name."""
    if not headers:
        return {}
    pairs = headers if type(headers) is list else headers.items() if isinstance(headers, Mapping) else headers
    out = {}
    for name, value in pairs:
        if name in (NEW_KEY_HEADER, OLD_KEY_HEADER) and value is not None:
            # Debezium writes these headers with raw control characters inside strings (a key "a<LF>b")
            text = value.decode() if isinstance(value, bytes | bytearray) else value
            out[name] = json.loads(text, strict=False)
    return out


class TableConverter:
    """Turns one source table's Debezium envelopes into ChangeEvents.

    A primary-key change reaches Kafka as a delete of the old key, a tombstone and a create of
    the new key (all with one `source.lsn`); the create carries the TOAST placeholder for
    unchanged TOASTed columns, which an insert cannot keep. So the create becomes an update from
    the old key (the applier then takes those columns from the target row at the old key):
    with the message headers the delete is dropped and the create names the old key
    (`__debezium.oldkey`); without them the old key is the delete just before at the same LSN
    (then the delete is applied too, and the old row is found only when both are in one batch:
    pass the headers to be independent of batching).
    """

    def __init__(
        self,
        schema: str,
        table: str,
        column_types: Mapping[str, str],
        key: list[str],
        types: Callable[[str], Converter] | None = None,
    ) -> None:
        """`types` picks a column's converter from its source type text: `converter_for` (PostgreSQL
        sources) unless given, e.g. core.kafka.mssql_values.converter_for for SQL Server sources."""
        self.schema, self.table, self.key = schema, table, list(key)
        self.columns = dict(column_types)
        pick = types or converter_for
        self.converters = {name: pick(t) for name, t in column_types.items()}
        self._deleted: tuple[Any, dict[str, str | None], dict[str, str | None] | None] | None = None
        self._warned: frozenset[str] = frozenset()
        self._last_ms: int | None = None
        self._last_time: datetime | None = None

    def event(
        self,
        envelope: Mapping[str, Any],
        position: int,
        headers: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None,
    ) -> ChangeEvent | None:
        """The ChangeEvent of one envelope; None for the delete half of a key change when `headers` tell it."""
        op = normalize_op(envelope["op"])
        source = envelope.get("source") or {}
        commit_time = self._commit_time(source.get("ts_ms") or envelope.get("ts_ms"))
        xid = source.get("txId")
        deleted, self._deleted = self._deleted, None
        if op == "truncate":
            return ChangeEvent("truncate", self.schema, self.table, None, None, None, position, commit_time, xid)
        raw_before, raw_after = envelope.get("before"), envelope.get("after")
        present = raw_after or raw_before or {}
        if not present.keys() <= self.columns.keys():  # one set check per message; the list only when it fails
            raise UnknownColumns(self.schema, self.table, [c for c in present if c not in self.columns])
        if raw_after is not None and len(raw_after) != len(self.columns):
            self._warn_missing(raw_after)
        moved = _header_map(headers)
        if op == "delete" and NEW_KEY_HEADER in moved:
            return None  # the create that follows (with __debezium.oldkey) carries the whole key change
        before, _ = _convert_row(raw_before, self.converters)
        after, unchanged = _convert_row(raw_after, self.converters)
        lsn = source.get("lsn")
        if op == "insert":
            if OLD_KEY_HEADER in moved:
                old_key, _ = _convert_row(moved[OLD_KEY_HEADER], self.converters)
                return self._moved(old_key or {}, old_key, after, unchanged, position, commit_time, xid)
            if deleted is not None and lsn is not None and deleted[0] == lsn:
                return self._moved(deleted[1], deleted[2], after, unchanged, position, commit_time, xid)
        keyed = before if op == "delete" or (before and all(before.get(k) is not None for k in self.key)) else after
        if keyed is None or any(k not in keyed for k in self.key):
            raise ValueError(f"{self.schema}.{self.table}: a {op} message without its primary key {self.key}")
        key = {k: keyed[k] for k in self.key}
        if op == "delete":
            self._deleted = (lsn, key, before)
        return ChangeEvent(op, self.schema, self.table, key, before, after, position, commit_time, xid, unchanged)

    def _moved(
        self,
        old_key: Mapping[str, str | None],
        before: dict[str, str | None] | None,
        after: dict[str, str | None] | None,
        unchanged: frozenset[str],
        position: int,
        commit_time: datetime | None,
        xid: Any,
    ) -> ChangeEvent:
        if any(k not in old_key for k in self.key):
            raise ValueError(f"{self.schema}.{self.table}: a key change without the old primary key {self.key}")
        key = {k: old_key[k] for k in self.key}
        return ChangeEvent("update", self.schema, self.table, key, before, after, position, commit_time, xid, unchanged)

    def _commit_time(self, ms: int | None) -> datetime | None:
        """The commit time of a message; the events of one transaction share it, so it is made once."""
        if ms is None:
            return None
        if ms != self._last_ms:
            self._last_ms, self._last_time = ms, datetime.fromtimestamp(ms / 1000, UTC)
        return self._last_time

    def _warn_missing(self, row: Mapping[str, Any]) -> None:
        missing = frozenset(self.columns) - row.keys()
        if missing and missing != self._warned:
            self._warned = missing
            log.warning(
                "%s.%s: Debezium leaves column(s) %s out of its messages (a type it has no converter "
                "for); the target keeps NULL/default or the old value there",
                self.schema,
                self.table,
                ", ".join(sorted(missing)),
            )
