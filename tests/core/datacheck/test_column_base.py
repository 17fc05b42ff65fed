"""A column's base type drops its modifiers wherever they stand: a timestamp with a precision is still normalized
to UTC (it used to be read as a plain `timestamp` and compared as the session's local text)."""

from core.datacheck.sql import Column, normalized


def test_modifiers_are_dropped_wherever_they_stand() -> None:
    assert Column("t", "timestamp(3) with time zone").base == "timestamp with time zone"
    assert Column("t", "timestamp(0) without time zone").base == "timestamp without time zone"
    assert Column("n", "numeric(12,2)").base == "numeric"
    assert Column("v", "character varying(20)").base == "character varying"
    assert Column("a", "integer[]").base == "integer[]"


def test_a_timestamp_with_precision_is_compared_in_utc() -> None:
    sql = normalized(Column("t", "timestamp(3) with time zone"), 150000)
    text = "".join(getattr(part, "string", "") for part in sql.seq)  # type: ignore[attr-defined]
    assert "AT TIME ZONE 'UTC'" in text, sql
