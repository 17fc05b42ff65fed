"""Column type mapping between database kinds.

Types come in as discovery writes them: PostgreSQL's `format_type` output (`numeric(10,2)`,
`character varying(20)`, `timestamp(3) with time zone`, `integer[]`) and SQL Server's rendered
names (`nvarchar(50)`, `datetime2(7)`, `varbinary(max)`). `map_type` returns the target's type.

Equivalences (documented choices, not guesses):

SQL Server -> PostgreSQL
    bit boolean · tinyint/smallint smallint · int integer · bigint bigint
    decimal/numeric(p,s) numeric(p,s) · money numeric(19,4) · smallmoney numeric(10,4)
    float double precision (float(n<=24) real) · real real
    date date · time(n) time(min(n,6)) · datetime timestamp(3) · smalldatetime timestamp(0)
    datetime2(n) timestamp(min(n,6)) · datetimeoffset(n) timestamp(min(n,6)) with time zone
    char/nchar(n) character(n) · varchar/nvarchar(n) character varying(n) · (max), text, ntext text
    binary/varbinary/image/rowversion/timestamp bytea · uniqueidentifier uuid · xml xml
    anything else (sql_variant, geography, geometry, hierarchyid, CLR types) is refused.

PostgreSQL -> SQL Server
    smallint/integer/bigint smallint/int/bigint · numeric(p,s) decimal(p,s) (p <= 38)
    numeric without precision decimal(38,10) (fallback: SQL Server has no unconstrained decimal)
    real real · double precision float · money money · boolean bit · uuid uniqueidentifier
    text, character varying nvarchar(max) · character varying(n) nvarchar(n) (n > 4000: max)
    character(n) nchar(n) · "char" nchar(1) · name nvarchar(64) · bytea varbinary(max) · xml xml
    date date · time(n) time(n) · timestamp(n) datetime2(n) · timestamptz(n) datetimeoffset(n)
    Fallbacks read as their PostgreSQL text form (`cast_text`): json, jsonb, arrays nvarchar(max);
    interval nvarchar(64); inet, cidr nvarchar(64); macaddr, macaddr8 nvarchar(32); enums nvarchar(64).
    anything else (time with time zone, bit strings, geometric, range, tsvector, composite ...) is refused.

PostgreSQL -> PostgreSQL is the identity for built-in types (arrays, ranges and multiranges,
tsvector, money, bit strings, xml, network, geometric, interval, json ... all keep their type and
their exact values). User types are resolved by the engine from the catalog (`PgUserType`):
    enums are created in the target schema with the same labels in the same order;
    domains are created in the target schema with the same name, base type (a domain over a
    domain creates both), NOT NULL, DEFAULT and CHECK constraints (`DomainType`);
    arrays of enums and domains are arrays of the created types;
    an extension's base type (ltree, cube, citext ...) keeps its type when the target has a type of
    that schema and name (`target_types`), otherwise it becomes `text` (arrays: `text[]`) holding
    the value's text form, and `TargetType.fallback` says so (a warning, not an error);
    composite, user-defined range and pseudo types are refused (ValidationFailed naming the column):
    their fields would need types created recursively, and a text copy would silently lose them.
SQL Server -> SQL Server is the identity.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from core.errors import ValidationFailed

POSTGRESQL = "postgresql"
SQLSERVER = "sqlserver"

_ARRAY_RE = re.compile(r"(\[\d*\])+$")
_ARGS_RE = re.compile(r"\(([^)]*)\)")


@dataclass(frozen=True)
class EnumType:
    """An enum to create in the target schema (PostgreSQL targets)."""

    name: str
    labels: tuple[str, ...]


@dataclass(frozen=True)
class PgUserType:
    """A PostgreSQL type outside pg_catalog, as the engine resolved it from the source catalog.

    kind: enum | domain | base (an extension's type) | composite | range | multirange | pseudo.
    `base` is the domain's resolved base type (None when it is a built-in, then `base_type` says it).
    Domains also carry their NOT NULL, DEFAULT expression and CHECK constraints (name, definition).
    """

    kind: str
    schema: str
    name: str
    labels: tuple[str, ...] = ()
    base_type: str | None = None
    base: PgUserType | None = None
    array_dims: int = 0
    not_null: bool = False
    default: str | None = None
    checks: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class DomainType:
    """A domain to create in the target schema (PostgreSQL targets): same name, base type and constraints."""

    name: str
    base: TargetType
    not_null: bool = False
    default: str | None = None
    checks: tuple[tuple[str, str], ...] = ()  # (constraint name, pg_get_constraintdef text)
    source_schema: str = ""


@dataclass(frozen=True)
class TargetType:
    """A mapped type: `sql` is DDL text, except for enums, domains and kept extension types (`ident`), which
    DDL renders as identifiers in the target schema (for domains `sql` is the base type's text)."""

    sql: str
    enum: EnumType | None = None
    array_dims: int = 0
    cast_text: bool = False  # read the source column as text (values have no native equivalent)
    binary_safe: bool = True  # PostgreSQL binary COPY can carry it between databases (no type oids inside)
    domain: DomainType | None = None
    ident: tuple[str, str] | None = None  # an extension type that exists on the target under (schema, name)
    fallback: str = ""  # why the values are carried as text (a warning for people), empty when they are not

    @property
    def display(self) -> str:
        """The type as people (and format_type, without schema) write it."""
        if self.enum:
            return self.enum.name + "[]" * self.array_dims
        if self.domain:
            return self.domain.name + "[]" * self.array_dims
        return self.sql

    def user_types(self) -> list[EnumType | DomainType]:
        """The enums and domains this type needs on the target, the ones others depend on first."""
        if self.enum:
            return [self.enum]
        if self.domain:
            return [*self.domain.base.user_types(), self.domain]
        return []


@dataclass(frozen=True)
class ParsedType:
    base: str
    args: list[str] = field(default_factory=list)
    array_dims: int = 0


def parse_type(text: str) -> ParsedType:
    """Split `numeric(10,2)[]`-like text into base name (lower case), arguments and array depth."""
    raw = text.strip()
    dims = 0
    match = _ARRAY_RE.search(raw)
    if match:
        dims = match.group(0).count("[")
        raw = raw[: match.start()]
    args: list[str] = []
    found = _ARGS_RE.search(raw)
    if found:
        args = [a.strip().lower() for a in found.group(1).split(",") if a.strip()]
        raw = raw[: found.start()] + " " + raw[found.end() :]
    return ParsedType(base=" ".join(raw.lower().split()), args=args, array_dims=dims)


def unknown_type(where: str, type_text: str, source_kind: str, target_kind: str, why: str = "") -> ValidationFailed:
    """The error for a column whose type cannot be carried over."""
    reason = why or f"it has no {target_kind} equivalent in the type map"
    return ValidationFailed(
        where,
        f"column {where} has {source_kind} type '{type_text}' and cannot be created in {target_kind}: {reason}; "
        "change the column type or create the target table yourself (auto-create off)",
    )


def map_type(
    type_text: str,
    source_kind: str,
    target_kind: str,
    where: str = "column",
    user_type: PgUserType | None = None,
    target_types: frozenset | None = None,
) -> TargetType:
    """The target type for a source column type; ValidationFailed naming `where` (table.column) if none.

    `target_types`: the (schema, name) of the user types the PostgreSQL target has; an extension type
    it lacks (or all, when None) is carried as text.
    """
    pair = (source_kind, target_kind)
    if pair == (POSTGRESQL, POSTGRESQL):
        return _pg_to_pg(type_text, where, user_type, target_types)
    if pair == (SQLSERVER, POSTGRESQL):
        return _mssql_to_pg(type_text, where)
    if pair == (POSTGRESQL, SQLSERVER):
        return _pg_to_mssql(type_text, where, user_type)
    if pair == (SQLSERVER, SQLSERVER):
        return TargetType(sql=type_text)
    raise ValidationFailed("kind", f"no type map from {source_kind} to {target_kind}")


# ------------------------------------------------------------------ PostgreSQL -> PostgreSQL


def _pg_to_pg(type_text: str, where: str, user: PgUserType | None, target_types: frozenset | None) -> TargetType:
    if user is None:
        return TargetType(sql=type_text)
    dims = user.array_dims
    if user.kind == "enum":
        return TargetType(
            sql=user.name + "[]" * dims, enum=EnumType(user.name, user.labels), array_dims=dims, binary_safe=dims == 0
        )
    if user.kind == "domain":
        return _pg_domain(user, where, target_types)
    if user.kind == "base":
        if target_types is not None and (user.schema, user.name) in target_types:
            return TargetType(sql=type_text, ident=(user.schema, user.name), array_dims=dims, binary_safe=dims == 0)
        return TargetType(
            sql="text" + "[]" * dims,
            array_dims=dims,
            cast_text=True,
            binary_safe=False,
            fallback=f"{type_text} is not a type of the target database",
        )
    raise unknown_type(
        where, type_text, POSTGRESQL, POSTGRESQL, f"user-defined {user.kind} types are not created by auto-create"
    )


def _pg_domain(user: PgUserType, where: str, target_types: frozenset | None) -> TargetType:
    """A domain created on the target over its (mapped) base type; arrays of it carry its oid, so text COPY."""
    inner = _pg_to_pg(user.base_type or "", where, user.base, target_types)
    domain = DomainType(user.name, inner, user.not_null, user.default, user.checks, user.schema)
    dims = user.array_dims
    sql_text = inner.sql + "[]" * dims
    return TargetType(
        sql=sql_text,
        domain=domain,
        array_dims=dims,
        cast_text=inner.cast_text,
        binary_safe=inner.binary_safe and dims == 0,
        fallback=inner.fallback,
    )


# ------------------------------------------------------------------ SQL Server -> PostgreSQL

_MSSQL_FIXED = {
    "bit": "boolean",
    "tinyint": "smallint",
    "smallint": "smallint",
    "int": "integer",
    "bigint": "bigint",
    "money": "numeric(19,4)",
    "smallmoney": "numeric(10,4)",
    "real": "real",
    "date": "date",
    "datetime": "timestamp(3) without time zone",
    "smalldatetime": "timestamp(0) without time zone",
    "text": "text",
    "ntext": "text",
    "binary": "bytea",
    "varbinary": "bytea",
    "image": "bytea",
    "rowversion": "bytea",
    "timestamp": "bytea",
    "uniqueidentifier": "uuid",
    "xml": "xml",
    "sysname": "character varying(128)",
}


def _precision(args: list[str], default: int, cap: int = 6) -> int:
    """A fractional-seconds precision argument, capped at PostgreSQL's maximum."""
    return min(int(args[0]), cap) if args and args[0].isdigit() else min(default, cap)


def _mssql_to_pg(type_text: str, where: str) -> TargetType:
    p = parse_type(type_text)
    if p.array_dims:
        raise unknown_type(where, type_text, SQLSERVER, POSTGRESQL)
    base, args = p.base, p.args
    if base in ("decimal", "numeric"):
        return TargetType(sql=f"numeric({args[0]},{args[1] if len(args) > 1 else 0})" if args else "numeric(18,0)")
    if base == "float":
        return TargetType(sql="real" if args and args[0].isdigit() and int(args[0]) <= 24 else "double precision")
    if base == "time":
        return TargetType(sql=f"time({_precision(args, 7)}) without time zone")
    if base == "datetime2":
        return TargetType(sql=f"timestamp({_precision(args, 7)}) without time zone")
    if base == "datetimeoffset":
        return TargetType(sql=f"timestamp({_precision(args, 7)}) with time zone")
    if base in ("char", "nchar", "varchar", "nvarchar"):
        return TargetType(sql=_mssql_string(base, args))
    if base in _MSSQL_FIXED:
        return TargetType(sql=_MSSQL_FIXED[base])
    raise unknown_type(where, type_text, SQLSERVER, POSTGRESQL)


def _mssql_string(base: str, args: list[str]) -> str:
    length = args[0] if args else "1"
    if length == "max":
        return "text"
    return f"character({length})" if base.endswith("char") and "var" not in base else f"character varying({length})"


# ------------------------------------------------------------------ PostgreSQL -> SQL Server

_PG_FIXED = {
    "smallint": "smallint",
    "integer": "int",
    "bigint": "bigint",
    "real": "real",
    "double precision": "float",
    "money": "money",
    "boolean": "bit",
    "uuid": "uniqueidentifier",
    "text": "nvarchar(max)",
    "bpchar": "nvarchar(max)",
    '"char"': "nchar(1)",
    "name": "nvarchar(64)",
    "bytea": "varbinary(max)",
    "xml": "xml",
    "date": "date",
}
_PG_AS_TEXT = {
    "json": "nvarchar(max)",
    "jsonb": "nvarchar(max)",
    "inet": "nvarchar(64)",
    "cidr": "nvarchar(64)",
    "macaddr": "nvarchar(32)",
    "macaddr8": "nvarchar(32)",
}
_MSSQL_MAX_PRECISION = 38
_MSSQL_MAX_CHARS = 4000


def _pg_to_mssql(type_text: str, where: str, user: PgUserType | None) -> TargetType:
    if user is not None:
        return _pg_user_to_mssql(type_text, where, user)
    p = parse_type(type_text)
    if p.array_dims:
        return TargetType(sql="nvarchar(max)", cast_text=True)
    base, args = p.base, p.args
    if base in _PG_FIXED:
        return TargetType(sql=_PG_FIXED[base])
    if base in _PG_AS_TEXT:
        return TargetType(sql=_PG_AS_TEXT[base], cast_text=True)
    if base.startswith("interval"):
        return TargetType(sql="nvarchar(64)", cast_text=True)
    if base == "numeric":
        return TargetType(sql=_mssql_decimal(type_text, where, args))
    if base in ("character varying", "character"):
        return TargetType(sql=_mssql_nstring(base, args))
    temporal = _mssql_temporal(base, args)
    if temporal:
        return TargetType(sql=temporal)
    raise unknown_type(where, type_text, POSTGRESQL, SQLSERVER)


def _pg_user_to_mssql(type_text: str, where: str, user: PgUserType) -> TargetType:
    if user.array_dims:
        return TargetType(sql="nvarchar(max)", cast_text=True)
    if user.kind == "enum":
        return TargetType(sql="nvarchar(64)", cast_text=True)  # enum labels are at most 63 bytes
    if user.kind == "domain":
        return _pg_to_mssql(user.base_type or "", where, user.base)
    raise unknown_type(where, type_text, POSTGRESQL, SQLSERVER, f"user-defined {user.kind} types have no equivalent")


def _mssql_decimal(type_text: str, where: str, args: list[str]) -> str:
    if not args:
        return "decimal(38,10)"
    precision, scale = int(args[0]), int(args[1]) if len(args) > 1 else 0
    if precision > _MSSQL_MAX_PRECISION or scale < 0:
        raise unknown_type(where, type_text, POSTGRESQL, SQLSERVER, "SQL Server decimals hold at most 38 digits")
    return f"decimal({precision},{scale})"


def _mssql_nstring(base: str, args: list[str]) -> str:
    if not args or int(args[0]) > _MSSQL_MAX_CHARS:
        return "nvarchar(max)"
    return f"nchar({args[0]})" if base == "character" else f"nvarchar({args[0]})"


def _mssql_temporal(base: str, args: list[str]) -> str | None:
    digits = args[0] if args else "6"
    if base in ("time", "time without time zone"):
        return f"time({digits})"
    if base in ("timestamp", "timestamp without time zone"):
        return f"datetime2({digits})"
    if base == "timestamp with time zone":
        return f"datetimeoffset({digits})"
    return None


# ------------------------------------------------------------------ comparing types

_SQLSERVER_ONLY = {
    "int",
    "bit",
    "tinyint",
    "nvarchar",
    "varchar",
    "nchar",
    "char",
    "datetime",
    "datetime2",
    "smalldatetime",
    "datetimeoffset",
    "uniqueidentifier",
    "float",
    "decimal",
    "varbinary",
    "binary",
    "image",
    "ntext",
    "smallmoney",
    "rowversion",
    "sql_variant",
    "hierarchyid",
    "geography",
    "geometry",
    "time",
}


def guess_kind(type_texts: list[str]) -> str:
    """The database kind that wrote these type names (SQL Server names differ from format_type's)."""
    for text in type_texts:
        p = parse_type(text)
        if p.base in _SQLSERVER_ONLY and not p.array_dims:
            return SQLSERVER
    return POSTGRESQL


def normalize(type_text: str) -> str:
    """A type for comparison: lower case, no quotes or spaces, schema qualification dropped."""
    text = type_text.strip().lower().replace('"', "")
    dims = ""
    match = _ARRAY_RE.search(text)
    if match:
        dims, text = "[]" * match.group(0).count("["), text[: match.start()]
    if "." in text and "(" not in text:
        text = text.rsplit(".", 1)[1]
    return "".join(text.split()) + dims
