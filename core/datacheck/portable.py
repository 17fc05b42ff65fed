"""The portable normal form of a data check between SQL Server and PostgreSQL, and its Python reference.

PostgreSQL -> PostgreSQL checks hash `ROW(...)::text` with hashtextextended (core.datacheck.sql), which SQL
Server cannot compute. Between SQL Server and PostgreSQL both sides instead render every compared value as
the same text, a row as the same UTF-8 bytes, and hash those bytes with SHA-256 (SQL Server: HASHBYTES, see
core.datacheck.mssql; PostgreSQL: sha256, the portable expressions of core.datacheck.sql). This module is
where that text is defined: `pair` chooses a column pair's `Norm` from the SQL Server type and the
PostgreSQL type (the type map's target, or whatever the target table has), and `value_text`, `hash_text`,
`row_text`, `row_hash` and `segment_checksum` are the reference that the tests hold the PostgreSQL
expressions to on a real server, and that says what the T-SQL must produce.

Values per kind (NULL is always NULL, never an empty string):
  int          decimal digits, `-` for negatives
  bool         `true` | `false` (bit 1 / 0)
  decimal      plain notation without trailing fractional zeros and without a bare `.`; zero is `0`
               (decimal, numeric, money and smallmoney alike: 12.3400 -> 12.34, 100.00 -> 100)
  float4/8     compared rows: the number as text (compared with a relative tolerance, core.datacheck.compare);
               row hash and keys: the IEEE 754 bits, big-endian, lower hex (float4 when either side is real)
  date         YYYY-MM-DD
  time         HH:MM:SS.ffffff
  timestamp    YYYY-MM-DDTHH:MM:SS.ffffff (datetime, smalldatetime, datetime2)
  timestamptz  the UTC instant of a datetimeoffset, as timestamp
  uuid         lower-case 8-4-4-4-12
  bytes        lower hex without a prefix
  text         the characters; trailing spaces dropped when either side is fixed-length (char, nchar, character)
Fractions of seconds always show six digits, at the lower precision of the two sides: the value is first cut
to whole microseconds (the embedded engine reads SQL Server through pyodbc, which truncates 100 ns digits:
datetime2(7) 05.1234567 is written as 05.123456), then rounded half up to `precision` digits when that is
below six (as PostgreSQL rounds what it is given). datetime values are taken as SQL Server shows them,
milliseconds rounded from its 1/300 s ticks (CAST(x AS datetime2(3))), which is what the target holds.

Row text: for each compared column, in order, the value with `\\` doubled and `|` written `\\|` (NULL as
`\\N`), then `|`. Row hash: SHA-256 of the row text's UTF-8 bytes. Segment checksum: the row count, the sum
of the rows' first four hash bytes read as a signed big-endian 32-bit integer, and the same sum of bytes five
to eight (signed, so that sums of up to 2^32 rows fit a bigint on both sides).

Edges that cannot be made equal, and what happens:
- The cut to microseconds is the embedded engine's (pyodbc); the Kafka engine's Debezium values keep the
  100 ns digit and PostgreSQL rounds it. Data checks run on the embedded engine only (core.datachecks).
- Rounding to fewer than six digits (only a target the user made with a lower precision): PostgreSQL rounds
  half away from 2000-01-01, so a tie before 2000 (exactly .5 of the last kept digit) rounds down there and
  up here; a time rounded past 23:59:59 is 24:00:00 in PostgreSQL. Such a row shows as a difference.
- Text that PostgreSQL cannot hold (NUL characters, unpaired UTF-16 surrogates) never arrives on the
  target; SQL Server's UTF-8 conversion writes '?' for an unpaired surrogate. Such a row shows as a difference.
- Key order is UTF-8 byte order on both sides only where both produce UTF-8: a PostgreSQL target whose
  server encoding is not UTF8 orders text keys in its own encoding's bytes, and SQL Server before 2019 in
  UTF-16 code units (core.datacheck.mssql). A key sorted differently lands in different segments on the two
  sides, reads as missing in one and extra in the other, and the recheck by key (equality, no order) clears it.
"""

from __future__ import annotations

import hashlib
import re
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from core.errors import StudioError
from core.typemap import parse_type

KINDS = (
    "int",
    "bool",
    "decimal",
    "float4",
    "float8",
    "date",
    "time",
    "timestamp",
    "timestamptz",
    "uuid",
    "bytes",
    "text",
)
TEMPORAL = ("time", "timestamp", "timestamptz")
NULL_TEXT = "\\N"
SEPARATOR = "|"

_MSSQL_KINDS = {
    "bit": "bool",
    "tinyint": "int",
    "smallint": "int",
    "int": "int",
    "bigint": "int",
    "decimal": "decimal",
    "numeric": "decimal",
    "money": "decimal",
    "smallmoney": "decimal",
    "float": "float8",
    "real": "float4",
    "date": "date",
    "time": "time",
    "datetime": "timestamp",
    "smalldatetime": "timestamp",
    "datetime2": "timestamp",
    "datetimeoffset": "timestamptz",
    "uniqueidentifier": "uuid",
    "binary": "bytes",
    "varbinary": "bytes",
    "image": "bytes",
    "timestamp": "bytes",  # rowversion, as sys.types names it
    "rowversion": "bytes",
}
_MSSQL_FIXED_PRECISION = {"datetime": 3, "smalldatetime": 0}
_FIXED_TEXT = ("char", "nchar", "character", "bpchar")


@dataclass(frozen=True)
class Norm:
    """How one compared column pair is rendered on both sides."""

    kind: str  # one of KINDS
    precision: int = 6  # fractional digits of seconds kept (time, timestamp, timestamptz)
    trim: bool = False  # text: trailing spaces dropped


def mssql_precision(type_text: str) -> int:
    """Fractional-second digits of a SQL Server temporal type (datetime2(7) -> 7, datetime -> 3, date -> 0)."""
    p = parse_type(type_text)
    if p.base in _MSSQL_FIXED_PRECISION:
        return _MSSQL_FIXED_PRECISION[p.base]
    if p.base in ("datetime2", "datetimeoffset", "time"):
        return int(p.args[0]) if p.args and p.args[0].isdigit() else 7
    return 0


def pg_precision(type_text: str) -> int:
    """Fractional-second digits of a PostgreSQL type (`timestamp(3) without time zone` -> 3, no typmod -> 6)."""
    p = parse_type(type_text)
    return int(p.args[0]) if p.args and p.args[0].isdigit() else 6


def pair(mssql_type: str, pg_type: str) -> Norm:
    """The Norm of a SQL Server column compared with a PostgreSQL column (types as the catalogs write them)."""
    m, g = parse_type(mssql_type), parse_type(pg_type)
    kind = _MSSQL_KINDS.get(m.base, "text")
    if kind in ("float4", "float8"):
        kind = "float4" if "real" in (m.base, g.base) else "float8"
    if kind in TEMPORAL:
        return Norm(kind, precision=min(mssql_precision(mssql_type), 6, pg_precision(pg_type)))
    if kind == "text":
        return Norm(kind, trim=m.base in _FIXED_TEXT or g.base in _FIXED_TEXT)
    return Norm(kind)


def pair_columns(
    source_types: Sequence[str], target_types: Sequence[str], source_kind: str, target_kind: str
) -> tuple[Norm, ...] | None:
    """The Norms of the compared columns in order; None when both sides are PostgreSQL (its own fast path)."""
    kinds = (source_kind, target_kind)
    if kinds == ("postgresql", "postgresql"):
        return None
    if kinds == ("sqlserver", "postgresql"):
        return tuple(pair(s, t) for s, t in zip(source_types, target_types, strict=True))
    if kinds == ("postgresql", "sqlserver"):
        return tuple(pair(t, s) for s, t in zip(source_types, target_types, strict=True))
    raise StudioError(f"data checks do not compare {source_kind} with {target_kind}")


# ------------------------------------------------------------------ the reference


_TEMPORAL_RE = re.compile(
    r"^\s*(?:(\d{4})-(\d{2})-(\d{2})[ T])?(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,7}))?\s*(?:([+-])(\d{2}):?(\d{2})|Z)?\s*$"
)


def _instant(value: Any) -> tuple[datetime, int, int]:
    """A temporal value as (wall clock to the second, 100 ns ticks of the fraction, offset in minutes).

    Text takes SQL Server's literal forms, `2024-01-02 03:04:05.1234567 +01:00` or `03:04:05.1234567`, for
    the 100 ns digit Python's datetime cannot hold.
    """
    if isinstance(value, datetime):
        offset = value.utcoffset()
        minutes = int(offset.total_seconds()) // 60 if offset is not None else 0
        return value.replace(microsecond=0, tzinfo=None), value.microsecond * 10, minutes
    if isinstance(value, time):
        return datetime(2000, 1, 1, value.hour, value.minute, value.second), value.microsecond * 10, 0
    found = _TEMPORAL_RE.match(str(value))
    if not found:
        raise ValueError(f"not a temporal literal: {value!r}")
    y, mo, d, h, mi, s, frac, sign, oh, om = found.groups()
    wall = datetime(int(y or 2000), int(mo or 1), int(d or 1), int(h), int(mi), int(s))
    ticks = int((frac or "").ljust(7, "0"))
    minutes = (int(oh) * 60 + int(om)) * (-1 if sign == "-" else 1) if sign else 0
    return wall, ticks, minutes


def _reduced(value: Any, precision: int, to_utc: bool) -> datetime:
    """The value cut to microseconds, rounded half up to `precision` digits, in UTC when asked."""
    wall, ticks, offset = _instant(value)
    micro = ticks // 10
    if precision < 6:
        unit = 10 ** (6 - precision)
        whole, rest = divmod(micro, unit)
        micro = (whole + (1 if 2 * rest >= unit else 0)) * unit
    moment = wall + timedelta(microseconds=micro)
    return moment - timedelta(minutes=offset) if to_utc else moment


def _clock(moment: datetime) -> str:
    return f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}.{moment.microsecond:06d}"


def _day(moment: date) -> str:
    return f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"


def _decimal(value: Any) -> str:
    number = Decimal(value)
    if number == 0:
        return "0"
    text = format(number, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _float(value: Any) -> str:
    return repr(float(value))


def _bool(value: Any) -> str:
    return "true" if value else "false"


def _date(value: Any) -> str:
    if isinstance(value, datetime):
        value = value.date()
    return _day(value if isinstance(value, date) else date.fromisoformat(str(value)))


def _time(value: Any, norm: Norm) -> str:
    return _clock(_reduced(value, norm.precision, False))


def _timestamp(value: Any, norm: Norm) -> str:
    moment = _reduced(value, norm.precision, norm.kind == "timestamptz")
    return f"{_day(moment)}T{_clock(moment)}"


def _uuid(value: Any) -> str:
    return str(value).lower()


def _bytes(value: Any) -> str:
    return bytes(value).hex()


_VALUES: dict[str, Callable[[Any, Norm], str]] = {
    "int": lambda v, n: str(int(v)),
    "bool": lambda v, n: _bool(v),
    "decimal": lambda v, n: _decimal(v),
    "float4": lambda v, n: _float(v),
    "float8": lambda v, n: _float(v),
    "date": lambda v, n: _date(v),
    "time": _time,
    "timestamp": _timestamp,
    "timestamptz": _timestamp,
    "uuid": lambda v, n: _uuid(v),
    "bytes": lambda v, n: _bytes(v),
    "text": lambda v, n: str(v).rstrip(" ") if n.trim else str(v),
}


def value_text(norm: Norm, value: Any) -> str | None:
    """A value as compared rows show it (None for NULL); `value` as SQL Server holds it (see `_instant`)."""
    return None if value is None else _VALUES[norm.kind](value, norm)


def float_bits(norm: Norm, value: Any) -> str:
    """A float as its IEEE 754 bits, big-endian lower hex: 8 digits for float4, 16 for float8."""
    return struct.pack(">f" if norm.kind == "float4" else ">d", float(value)).hex()


def hash_text(norm: Norm, value: Any) -> str | None:
    """A value as it enters the row text (floats as their bits, everything else as `value_text`)."""
    if value is None:
        return None
    if norm.kind in ("float4", "float8"):
        return float_bits(norm, value)
    return value_text(norm, value)


def escaped(text: str | None) -> str:
    """One field of the row text (without its separator)."""
    if text is None:
        return NULL_TEXT
    return text.replace("\\", "\\\\").replace(SEPARATOR, "\\" + SEPARATOR)


def row_text(texts: Iterable[str | None]) -> str:
    """The row text of a row's hash texts."""
    return "".join(escaped(t) + SEPARATOR for t in texts)


def row_hash(texts: Iterable[str | None]) -> bytes:
    """SHA-256 of the row text's UTF-8 bytes."""
    return hashlib.sha256(row_text(texts).encode("utf-8")).digest()


def hash_halves(digest: bytes) -> tuple[int, int]:
    """Bytes 1-4 and 5-8 of a row hash as signed big-endian 32-bit integers (what the segment sums add)."""
    first, second = struct.unpack(">ii", digest[:8])
    return first, second


def segment_checksum(rows: Iterable[Iterable[str | None]]) -> tuple[int, int, int]:
    """(count, sum of first halves, sum of second halves) over the rows' hash texts."""
    count = first = second = 0
    for texts in rows:
        a, b = hash_halves(row_hash(texts))
        count, first, second = count + 1, first + a, second + b
    return count, first, second
