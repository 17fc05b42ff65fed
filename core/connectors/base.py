"""The one small interface every database kind implements, and the shapes discovery returns.

Implementations are synchronous (drivers block); callers run them off the event loop. Every
driver exception is translated into a `core.errors.ConnectorError` subclass before it leaves.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class ConnectionSpec:
    """Everything needed to open a session; the password is plain text only in memory."""

    kind: str
    host: str
    port: int
    database: str
    username: str
    password: str = field(repr=False, default="")
    schema: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    connect_timeout_s: int = 5


@dataclass
class TestResult:
    server_version: str
    latency_ms: float


@dataclass
class DatabaseInfo:
    name: str
    size_bytes: int | None = None


@dataclass
class SchemaInfo:
    name: str
    table_count: int = 0
    row_count: int = 0  # estimated rows of its tables (0 where the server does not say)
    size_bytes: int = 0  # storage of its tables and their indexes (0 where the server does not say)


@dataclass
class TableInfo:
    schema: str
    name: str
    row_count: int
    size_bytes: int
    has_primary_key: bool
    row_count_exact: bool = False


@dataclass
class ColumnInfo:
    name: str
    type: str
    nullable: bool
    default: str | None = None
    position: int = 0


@dataclass
class ForeignKeyInfo:
    """`schema.table(columns)` references `referenced_schema.referenced_table(referenced_columns)`."""

    name: str
    schema: str
    table: str
    columns: list[str]
    referenced_schema: str
    referenced_table: str
    referenced_columns: list[str]


@dataclass
class IndexInfo:
    name: str
    columns: list[str]
    unique: bool
    primary: bool = False


@dataclass
class ReadinessItem:
    """One point of a CDC readiness checklist: what was checked, what was found, and the fix."""

    key: str  # wal_level | replication | slots | wal_senders | slot_wal_keep | primary_keys
    label: str
    status: str  # ok | warning | failing
    found: str
    fix: str = ""


@dataclass
class TableDetail:
    schema: str
    name: str
    columns: list[ColumnInfo]
    primary_key: list[str]
    foreign_keys: list[ForeignKeyInfo]
    referenced_by: list[ForeignKeyInfo]
    indexes: list[IndexInfo]
    row_count: int = 0
    size_bytes: int = 0


@dataclass
class Dependencies:
    """A load order for chosen tables: parents before children; `levels` can load in parallel."""

    order: list[str]
    levels: list[list[str]]
    edges: list[dict[str, str]]
    cycles: list[list[str]]


def load_order(tables: list[str], fks: list[ForeignKeyInfo]) -> Dependencies:
    """Order `tables` so every table comes after the tables it references (Kahn's algorithm).

    Only edges between chosen tables count; self-references are ignored; tables caught in a
    cycle are reported in `cycles` and appended last (a full load then needs deferred checks).
    """
    chosen = list(dict.fromkeys(tables))
    chosen_set = set(chosen)
    parents: dict[str, set[str]] = {t: set() for t in chosen}
    edges: list[dict[str, str]] = []
    for fk in fks:
        child, parent = fk.table, fk.referenced_table
        if child in chosen_set and parent in chosen_set and child != parent:
            if parent not in parents[child]:
                edges.append({"table": child, "references": parent, "constraint": fk.name})
            parents[child].add(parent)
    remaining = {t: set(p) for t, p in parents.items()}
    levels: list[list[str]] = []
    while remaining:
        ready = sorted(t for t, p in remaining.items() if not p)
        if not ready:
            break
        levels.append(ready)
        for t in ready:
            del remaining[t]
        for p in remaining.values():
            p.difference_update(ready)
    cycles = _cycles(remaining) if remaining else []
    order = [t for level in levels for t in level] + sorted(remaining)
    if remaining:
        levels.append(sorted(remaining))
    return Dependencies(order=order, levels=levels, edges=edges, cycles=cycles)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one table (Tarjan), for the report."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


class Connector(ABC):
    """A database kind. One instance per spec; every call opens what it needs and closes it."""

    kind: ClassVar[str]
    default_port: ClassVar[int]

    def __init__(self, spec: ConnectionSpec) -> None:
        self.spec = spec

    @abstractmethod
    def test(self) -> TestResult:
        """Connect, run a trivial query, report the server version and round-trip time."""

    @abstractmethod
    def list_databases(self) -> list[DatabaseInfo]:
        """Databases on the server the login can see."""

    @abstractmethod
    def list_schemas(self, database: str) -> list[SchemaInfo]:
        """User schemas in `database` (system schemas left out)."""

    @abstractmethod
    def list_tables(self, database: str, schema: str, exact: bool = False) -> list[TableInfo]:
        """Tables of a schema with row counts (catalog estimate, or exact), size and PK flag."""

    @abstractmethod
    def count_rows(self, database: str, schema: str, table: str) -> int:
        """The exact row count of one table."""

    @abstractmethod
    def table_detail(self, database: str, schema: str, table: str) -> TableDetail:
        """Columns, primary key, foreign keys both ways and indexes of one table."""

    @abstractmethod
    def foreign_keys(self, database: str, schema: str) -> list[ForeignKeyInfo]:
        """Every foreign key whose referencing table lives in `schema`."""

    def dependencies(self, database: str, schema: str, tables: list[str]) -> Dependencies:
        """A foreign-key load order of the chosen tables of one schema."""
        fks = [
            fk for fk in self.foreign_keys(database, schema) if fk.schema == schema and fk.referenced_schema == schema
        ]
        return load_order(tables, fks)

    def cdc_readiness(self, database: str) -> list[ReadinessItem]:
        """Whether the server is ready for CDC, point by point (empty: no checklist for this kind)."""
        return []

    def describe(self) -> dict[str, Any]:
        """The spec without its password, for logs and messages."""
        s = self.spec
        return {"kind": s.kind, "host": s.host, "port": s.port, "database": s.database, "username": s.username}
