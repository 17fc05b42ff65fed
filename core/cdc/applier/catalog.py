"""What the applier needs to know about one target table, read from the target's catalog."""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from psycopg2.extensions import cursor as PgCursor

from core.errors import ObjectNotFound, StudioError, ValidationFailed

_RELATION_SQL = """
SELECT c.oid, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s
"""
_COLUMNS_SQL = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attgenerated <> '', a.attidentity = 'a'
FROM pg_attribute a WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
"""
_PRIMARY_KEY_SQL = """
SELECT a.attname FROM pg_constraint con
CROSS JOIN unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
WHERE con.conrelid = %s AND con.contype = 'p' ORDER BY k.ord
"""


class SchemaMismatch(StudioError):
    """A change does not fit its target table (new source column, missing key column, unmapped table).

    The pipeline decides: evolve the target and `PgApplier.refresh()`, or stop in ERROR with this message.
    """

    def __init__(self, message: str, *, table: tuple[str, str] | None = None, columns: list[str] | None = None):
        super().__init__(message)
        self.table = table
        self.columns = columns or []


def qualified(schema: str, table: str) -> str:
    """schema.table as people read it in messages, quoted the way PostgreSQL would need it."""
    return f"{_quote(schema)}.{_quote(table)}"


def _quote(name: str) -> str:
    plain = name.isidentifier() and name == name.lower() and name.isascii()
    return name if plain else '"' + name.replace('"', '""') + '"'


@dataclass
class TargetTable:
    """A target table: writable columns in order, their types, the primary key."""

    schema: str
    name: str
    oid: int
    columns: tuple[str, ...]  # insertable columns (generated columns left out), in table order
    types: dict[str, str]
    primary_key: tuple[str, ...]
    ignored: frozenset[str] = frozenset()  # generated columns on the target: values sent for them are dropped
    identity_always: bool = False  # GENERATED ALWAYS AS IDENTITY: inserts need OVERRIDING SYSTEM VALUE
    lenient: bool = False  # values of columns it lacks are dropped instead of refused (schema drift `ignore`)
    colset: frozenset[str] = field(init=False)
    key_of: Any = field(init=False, repr=False)  # row dict -> key (str for one key column, tuple for several)
    values_of: Any = field(init=False, repr=False)  # full row dict -> tuple of values in column order
    cache: dict[Any, Any] = field(default_factory=dict, repr=False)  # composed SQL per statement shape

    def __post_init__(self) -> None:
        self.colset = frozenset(self.columns)
        self.key_of = itemgetter(*self.primary_key)
        getter = itemgetter(*self.columns)
        self.values_of = getter if len(self.columns) > 1 else (lambda row: (getter(row),))

    @property
    def label(self) -> str:
        return qualified(self.schema, self.name)

    def key_values(self, key: Any) -> tuple[str | None, ...]:
        """A key as returned by `key_of`, always as a tuple in primary-key order."""
        return key if len(self.primary_key) > 1 else (key,)


def load_table(cur: PgCursor, schema: str, name: str, lenient: bool = False) -> TargetTable:
    """Read one target table's columns and primary key; refuse a missing table or one without a key."""
    label = qualified(schema, name)
    cur.execute(_RELATION_SQL, (schema, name))
    row = cur.fetchone()
    if row is None:
        raise ObjectNotFound(f"target table {label} does not exist")
    oid, relkind = row
    if relkind not in ("r", "p"):
        raise ValidationFailed("tables", f"target {label} is not a table (relkind {relkind!r}); CDC applies to tables")
    cur.execute(_COLUMNS_SQL, (oid,))
    cols = cur.fetchall()
    cur.execute(_PRIMARY_KEY_SQL, (oid,))
    pk = tuple(r[0] for r in cur.fetchall())
    if not pk:
        raise ValidationFailed(
            "tables",
            f"target table {label} has no primary key; CDC needs a key to apply updates and deletes "
            f"(add one: ALTER TABLE {label} ADD PRIMARY KEY (...))",
        )
    return TargetTable(
        schema=schema,
        name=name,
        oid=oid,
        columns=tuple(c[0] for c in cols if not c[2]),
        types={c[0]: c[1] for c in cols},
        primary_key=pk,
        ignored=frozenset(c[0] for c in cols if c[2]),
        identity_always=any(c[3] for c in cols),
        lenient=lenient,
    )
