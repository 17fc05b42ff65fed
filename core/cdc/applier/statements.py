"""The SQL the applier runs for one target table, composed with psycopg2.sql and cached per shape.

Every table gets one session-lifetime TEMP staging table with the target's column types (so COPY
parses each value once, and the set-based statements convert nothing) plus a group column that
says which statement a staged row belongs to. No NOT NULL or CHECK constraints are copied to
it: partial rows stage NULLs for unsent columns, and constraints fire on the target itself.
"""

from __future__ import annotations

from typing import Any

from psycopg2 import sql

from core.cdc.applier.catalog import TargetTable

DELETE_GROUP = 0
USE_MERGE = True  # off: INSERT ... ON CONFLICT everywhere (always so before PostgreSQL 15)


def group_column(table: TargetTable) -> str:
    """The staging table's group column, named so it cannot clash with a target column."""
    name = "__cdc_group"
    while name in table.types:
        name += "_"
    return name


def staging_name(table: TargetTable) -> str:
    return f"cdc_stage_{table.oid}"


class Statements:
    """SQL strings for one target table (rendered once per shape with the connection's quoting)."""

    def __init__(self, table: TargetTable, conn: Any) -> None:
        self.table = table
        self._conn = conn
        # MERGE (PostgreSQL 15+) joins staging to target and skips ON CONFLICT's speculative
        # insertion: measured 15-25% faster for updates here. It assumes no one else inserts the
        # same keys meanwhile (a clash fails the batch, which then retries whole).
        self.merge = USE_MERGE and conn.server_version >= 150000
        self.target = sql.Identifier(table.schema, table.name)
        self.stage = sql.Identifier(staging_name(table))
        self.group = group_column(table)
        self._groups: dict[tuple[str, tuple[str, ...]], int] = {}
        self._cache: dict[Any, str] = {}

    def _render(self, key: Any, build: Any) -> str:
        text = self._cache.get(key)
        if text is None:
            text = self._cache[key] = build().as_string(self._conn)
        return text

    def group_id(self, kind: str, columns: tuple[str, ...]) -> int:
        """A stable small number per (statement kind, column list); 0 is the deletes."""
        if kind == "delete":
            return DELETE_GROUP
        return self._groups.setdefault((kind, columns), len(self._groups) + 1)

    def create_stage(self) -> str:
        """A TEMP copy of the target's column types, emptied by every commit."""

        def build() -> sql.Composed:
            cols = sql.SQL(", ").join(map(sql.Identifier, self.table.columns))
            return sql.SQL(
                "CREATE TEMP TABLE {stage} ON COMMIT DELETE ROWS AS SELECT {cols}, NULL::integer AS {group} "
                "FROM {target} WITH NO DATA"
            ).format(stage=self.stage, cols=cols, group=sql.Identifier(self.group), target=self.target)

        return self._render("create", build)

    def clear_stage(self) -> str:
        """Empty the staging table inside a transaction (between the parts of one large source transaction)."""
        return self._render("clear", lambda: sql.SQL("TRUNCATE pg_temp.{}").format(self.stage))

    def drop_stage(self) -> str:
        return self._render("drop", lambda: sql.SQL("DROP TABLE IF EXISTS pg_temp.{}").format(self.stage))

    def copy(self, columns: tuple[str, ...]) -> str:
        """COPY ... FROM STDIN into the staging table for one column list plus the group column."""

        def build() -> sql.Composed:
            cols = sql.SQL(", ").join(map(sql.Identifier, (*columns, self.group)))
            return sql.SQL("COPY {stage} ({cols}) FROM STDIN").format(stage=self.stage, cols=cols)

        return self._render(("copy", columns), build)

    def copy_into_target(self, columns: tuple[str, ...]) -> str:
        """COPY ... FROM STDIN straight into the target table (new rows only; see PgApplier)."""

        def build() -> sql.Composed:
            cols = sql.SQL(", ").join(map(sql.Identifier, columns))
            return sql.SQL("COPY {target} ({cols}) FROM STDIN").format(target=self.target, cols=cols)

        return self._render(("copy_target", columns), build)

    def truncate(self) -> str:
        return self._render("truncate", lambda: sql.SQL("TRUNCATE {}").format(self.target))

    def _key_match(self) -> sql.Composed:
        return sql.SQL(" AND ").join(
            sql.SQL("t.{c} = s.{c}").format(c=sql.Identifier(c)) for c in self.table.primary_key
        )

    def delete(self) -> str:
        """Delete the target rows whose keys are staged in the delete group."""

        def build() -> sql.Composed:
            return sql.SQL("DELETE FROM {target} AS t USING {stage} AS s WHERE s.{group} = {g} AND {match}").format(
                target=self.target,
                stage=self.stage,
                group=sql.Identifier(self.group),
                g=sql.Literal(DELETE_GROUP),
                match=self._key_match(),
            )

        return self._render("delete", build)

    def upsert(self, columns: tuple[str, ...]) -> str:
        """INSERT the staged rows of one column list; rows whose key exists get just those columns overwritten."""
        if self.merge:
            return self._render(("merge", columns), lambda: self._merge(columns))

        def build() -> sql.Composed:
            pk = self.table.primary_key
            rest = [c for c in columns if c not in pk]
            action = (
                sql.SQL("DO UPDATE SET ")
                + sql.SQL(", ").join(sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in rest)
                if rest
                else sql.SQL("DO NOTHING")
            )
            cols = sql.SQL(", ").join(map(sql.Identifier, columns))
            overriding = sql.SQL(" OVERRIDING SYSTEM VALUE") if self.table.identity_always else sql.SQL("")
            return sql.SQL(
                "INSERT INTO {target} ({cols}){overriding} SELECT {cols} FROM {stage} WHERE {group} = {g} "
                "ON CONFLICT ({pk}) {action}"
            ).format(
                target=self.target,
                cols=cols,
                overriding=overriding,
                stage=self.stage,
                group=sql.Identifier(self.group),
                g=sql.Literal(self.group_id("upsert", columns)),
                pk=sql.SQL(", ").join(map(sql.Identifier, pk)),
                action=action,
            )

        return self._render(("upsert", columns), build)

    def _merge(self, columns: tuple[str, ...]) -> sql.Composed:
        rest = [c for c in columns if c not in self.table.primary_key]
        matched = (
            sql.SQL("UPDATE SET ")
            + sql.SQL(", ").join(sql.SQL("{c} = s.{c}").format(c=sql.Identifier(c)) for c in rest)
            if rest
            else sql.SQL("DO NOTHING")
        )
        overriding = sql.SQL(" OVERRIDING SYSTEM VALUE") if self.table.identity_always else sql.SQL("")
        text = (
            "MERGE INTO {target} AS t USING (SELECT {cols} FROM {stage} WHERE {group} = {g}) AS s ON {match} "
            "WHEN MATCHED THEN {matched} WHEN NOT MATCHED THEN INSERT ({cols}){overriding} VALUES ({values})"
        )
        return sql.SQL(text).format(
            target=self.target,
            cols=sql.SQL(", ").join(map(sql.Identifier, columns)),
            stage=self.stage,
            group=sql.Identifier(self.group),
            g=sql.Literal(self.group_id("upsert", columns)),
            match=self._key_match(),
            matched=matched,
            overriding=overriding,
            values=sql.SQL(", ").join(sql.SQL("s.{}").format(sql.Identifier(c)) for c in columns),
        )

    def update(self, columns: tuple[str, ...]) -> str | None:
        """UPDATE existing target rows with the sent columns only (the rest keep their values)."""
        rest = [c for c in columns if c not in self.table.primary_key]
        if not rest:
            return None

        def build() -> sql.Composed:
            sets = sql.SQL(", ").join(sql.SQL("{c} = s.{c}").format(c=sql.Identifier(c)) for c in rest)
            text = "UPDATE {target} AS t SET {sets} FROM {stage} AS s WHERE s.{group} = {g} AND {match}"
            return sql.SQL(text).format(
                target=self.target,
                sets=sets,
                stage=self.stage,
                group=sql.Identifier(self.group),
                g=sql.Literal(self.group_id("update", columns)),
                match=self._key_match(),
            )

        return self._render(("update", columns), build)

    def lookup(self, columns: tuple[str, ...]) -> str:
        """Read some columns of one target row as text, by key (for moved keys with unsent columns)."""

        def build() -> sql.Composed:
            cols = sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c)) for c in columns)
            match = sql.SQL(" AND ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c in self.table.primary_key)
            return sql.SQL("SELECT {cols} FROM {target} WHERE {match}").format(
                cols=cols, target=self.target, match=match
            )

        return self._render(("lookup", columns), build)
