"""The type map between PostgreSQL and SQL Server, both directions, and its refusals."""

from __future__ import annotations

import pytest

from core.errors import ValidationFailed
from core.typemap import (
    POSTGRESQL,
    SQLSERVER,
    EnumType,
    PgUserType,
    guess_kind,
    map_type,
    normalize,
    parse_type,
)


@pytest.mark.parametrize(
    ("text", "base", "args", "dims"),
    [
        ("numeric(10,2)", "numeric", ["10", "2"], 0),
        ("character varying(20)[]", "character varying", ["20"], 1),
        ("timestamp(3) with time zone", "timestamp with time zone", ["3"], 0),
        ("integer[][]", "integer", [], 2),
        ("nvarchar(MAX)", "nvarchar", ["max"], 0),
        ("interval year to month", "interval year to month", [], 0),
        ('"char"', '"char"', [], 0),
    ],
)
def test_parse_type(text: str, base: str, args: list[str], dims: int) -> None:
    parsed = parse_type(text)
    assert (parsed.base, parsed.args, parsed.array_dims) == (base, args, dims)


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("bit", "boolean"),
        ("tinyint", "smallint"),
        ("smallint", "smallint"),
        ("int", "integer"),
        ("bigint", "bigint"),
        ("decimal(18,4)", "numeric(18,4)"),
        ("numeric(38,0)", "numeric(38,0)"),
        ("money", "numeric(19,4)"),
        ("smallmoney", "numeric(10,4)"),
        ("float", "double precision"),
        ("float(24)", "real"),
        ("real", "real"),
        ("date", "date"),
        ("time(7)", "time(6) without time zone"),
        ("time(3)", "time(3) without time zone"),
        ("datetime", "timestamp(3) without time zone"),
        ("smalldatetime", "timestamp(0) without time zone"),
        ("datetime2(7)", "timestamp(6) without time zone"),
        ("datetime2(2)", "timestamp(2) without time zone"),
        ("datetimeoffset(7)", "timestamp(6) with time zone"),
        ("char(10)", "character(10)"),
        ("nchar(3)", "character(3)"),
        ("varchar(20)", "character varying(20)"),
        ("nvarchar(50)", "character varying(50)"),
        ("nvarchar(max)", "text"),
        ("varchar(max)", "text"),
        ("text", "text"),
        ("ntext", "text"),
        ("binary(16)", "bytea"),
        ("varbinary(max)", "bytea"),
        ("image", "bytea"),
        ("rowversion", "bytea"),
        ("timestamp", "bytea"),
        ("uniqueidentifier", "uuid"),
        ("xml", "xml"),
    ],
)
def test_sqlserver_to_postgresql(source: str, target: str) -> None:
    assert map_type(source, SQLSERVER, POSTGRESQL, "dbo.t.c").sql == target


@pytest.mark.parametrize(
    ("source", "target", "as_text"),
    [
        ("smallint", "smallint", False),
        ("integer", "int", False),
        ("bigint", "bigint", False),
        ("numeric(10,2)", "decimal(10,2)", False),
        ("numeric", "decimal(38,10)", False),
        ("real", "real", False),
        ("double precision", "float", False),
        ("money", "money", False),
        ("boolean", "bit", False),
        ("text", "nvarchar(max)", False),
        ("character varying", "nvarchar(max)", False),
        ("character varying(20)", "nvarchar(20)", False),
        ("character varying(10000)", "nvarchar(max)", False),
        ("character(5)", "nchar(5)", False),
        ('"char"', "nchar(1)", False),
        ("name", "nvarchar(64)", False),
        ("uuid", "uniqueidentifier", False),
        ("bytea", "varbinary(max)", False),
        ("xml", "xml", False),
        ("date", "date", False),
        ("time without time zone", "time(6)", False),
        ("time(3) without time zone", "time(3)", False),
        ("timestamp without time zone", "datetime2(6)", False),
        ("timestamp(0) without time zone", "datetime2(0)", False),
        ("timestamp with time zone", "datetimeoffset(6)", False),
        ("timestamp(3) with time zone", "datetimeoffset(3)", False),
        ("json", "nvarchar(max)", True),
        ("jsonb", "nvarchar(max)", True),
        ("interval", "nvarchar(64)", True),
        ("inet", "nvarchar(64)", True),
        ("integer[]", "nvarchar(max)", True),
        ("text[]", "nvarchar(max)", True),
    ],
)
def test_postgresql_to_sqlserver(source: str, target: str, as_text: bool) -> None:
    mapped = map_type(source, POSTGRESQL, SQLSERVER, "public.t.c")
    assert (mapped.sql, mapped.cast_text) == (target, as_text)


@pytest.mark.parametrize(
    "text",
    ["integer", "numeric(20,6)", "character varying(20)", "timestamp(3) with time zone", "integer[]", "tsvector"],
)
def test_postgresql_to_postgresql_is_identity_for_builtins(text: str) -> None:
    mapped = map_type(text, POSTGRESQL, POSTGRESQL, "public.t.c")
    assert (mapped.sql, mapped.enum, mapped.binary_safe) == (text, None, True)


def test_enum_is_created_in_the_target_and_arrays_of_it_are_not_binary_safe() -> None:
    mood = PgUserType(kind="enum", schema="shop", name="mood", labels=("sad", "ok"))
    mapped = map_type("shop.mood", POSTGRESQL, POSTGRESQL, "shop.t.m", mood)
    assert mapped.enum == EnumType("mood", ("sad", "ok")) and mapped.display == "mood" and mapped.binary_safe
    arr = PgUserType(kind="enum", schema="shop", name="mood", labels=("sad", "ok"), array_dims=1)
    mapped = map_type("shop.mood[]", POSTGRESQL, POSTGRESQL, "shop.t.m", arr)
    assert mapped.display == "mood[]" and mapped.array_dims == 1 and not mapped.binary_safe
    assert map_type("shop.mood", POSTGRESQL, SQLSERVER, "shop.t.m", mood).sql == "nvarchar(64)"


def test_domain_becomes_its_base_type() -> None:
    domain = PgUserType(kind="domain", schema="public", name="positive", base_type="numeric(10,2)")
    assert map_type("positive", POSTGRESQL, POSTGRESQL, "public.t.c", domain).sql == "numeric(10,2)"
    assert map_type("positive", POSTGRESQL, SQLSERVER, "public.t.c", domain).sql == "decimal(10,2)"


@pytest.mark.parametrize(
    ("text", "source", "target", "user"),
    [
        ("sql_variant", SQLSERVER, POSTGRESQL, None),
        ("geography", SQLSERVER, POSTGRESQL, None),
        ("hierarchyid", SQLSERVER, POSTGRESQL, None),
        ("tsvector", POSTGRESQL, SQLSERVER, None),
        ("time with time zone", POSTGRESQL, SQLSERVER, None),
        ("point", POSTGRESQL, SQLSERVER, None),
        ("numeric(50,2)", POSTGRESQL, SQLSERVER, None),
        ("address", POSTGRESQL, POSTGRESQL, PgUserType(kind="composite", schema="public", name="address")),
        ("floatrange", POSTGRESQL, SQLSERVER, PgUserType(kind="range", schema="public", name="floatrange")),
    ],
)
def test_unknown_types_are_refused_naming_table_column_and_type(
    text: str, source: str, target: str, user: PgUserType | None
) -> None:
    with pytest.raises(ValidationFailed) as info:
        map_type(text, source, target, "sales.orders.shape", user)
    assert info.value.field == "sales.orders.shape"
    assert "sales.orders.shape" in str(info.value) and f"'{text}'" in str(info.value)


def test_guess_kind_and_normalize() -> None:
    assert guess_kind(["int", "nvarchar(50)"]) == SQLSERVER
    assert guess_kind(["integer", "character varying(5)", "mood"]) == POSTGRESQL
    assert normalize('"Copy".mood[]') == normalize("mood[]") == "mood[]"
    assert normalize("numeric(10, 2)") == "numeric(10,2)"


def test_domain_is_created_on_postgresql_targets_over_its_mapped_base() -> None:
    mood = PgUserType(kind="enum", schema="shop", name="mood", labels=("sad", "ok"))
    inner = PgUserType(
        kind="domain",
        schema="shop",
        name="Größe",
        base_type="bigint",
        not_null=True,
        default="1",
        checks=(("positiv", "CHECK ((VALUE > 0))"),),
    )
    outer = PgUserType(kind="domain", schema="shop", name="klein", base_type='shop."Größe"', base=inner)
    mapped = map_type("klein", POSTGRESQL, POSTGRESQL, "shop.t.k", outer)
    assert mapped.display == "klein" and mapped.sql == "bigint" and mapped.binary_safe
    assert [t.name for t in mapped.user_types()] == ["Größe", "klein"]
    assert mapped.domain.base.domain.checks == (("positiv", "CHECK ((VALUE > 0))"),)
    assert mapped.domain.base.domain.not_null and mapped.domain.base.domain.default == "1"
    over_enum = PgUserType(kind="domain", schema="shop", name="laune", base_type="shop.mood", base=mood, array_dims=1)
    mapped = map_type("laune[]", POSTGRESQL, POSTGRESQL, "shop.t.l", over_enum)
    assert mapped.display == "laune[]" and not mapped.binary_safe
    assert mapped.user_types() == [EnumType("mood", ("sad", "ok")), mapped.domain]
    assert map_type("laune[]", POSTGRESQL, SQLSERVER, "shop.t.l", over_enum).sql == "nvarchar(max)"


def test_extension_types_are_kept_only_when_the_target_has_them() -> None:
    ltree = PgUserType(kind="base", schema="public", name="ltree")
    fallback = map_type("ltree", POSTGRESQL, POSTGRESQL, "public.t.p", ltree)
    assert (fallback.sql, fallback.cast_text, fallback.binary_safe) == ("text", True, False)
    assert fallback.fallback == "ltree is not a type of the target database"
    arr = PgUserType(kind="base", schema="public", name="ltree", array_dims=1)
    assert map_type("ltree[]", POSTGRESQL, POSTGRESQL, "public.t.p", arr).sql == "text[]"
    kept = map_type("ltree", POSTGRESQL, POSTGRESQL, "public.t.p", ltree, frozenset({("public", "ltree")}))
    assert (kept.ident, kept.display, kept.cast_text, kept.binary_safe, kept.fallback) == (
        ("public", "ltree"),
        "ltree",
        False,
        True,
        "",
    )
    other_schema = map_type("ltree", POSTGRESQL, POSTGRESQL, "public.t.p", ltree, frozenset({("ext", "ltree")}))
    assert other_schema.cast_text
