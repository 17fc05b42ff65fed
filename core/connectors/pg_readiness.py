"""The CDC readiness checklist of a PostgreSQL server: each point with ok / warning / failing and its fix.

The same checks as `core.cdc.pg_source.check_wal_level` (which refuses to start a pipeline), but as a
list of findings for a person, good ones included, plus the points that only warn.
"""

from __future__ import annotations

from typing import Any

from core.connectors.base import ReadinessItem

OK, WARNING, FAILING = "ok", "warning", "failing"
MAX_LISTED_TABLES = 10

SETTINGS_SQL = """
SELECT current_setting('wal_level'),
       r.rolreplication OR r.rolsuper OR coalesce(pg_has_role(r.oid,
           (SELECT oid FROM pg_roles WHERE rolname = 'rds_replication'), 'member'), false),
       current_setting('max_replication_slots')::int,
       (SELECT count(*) FROM pg_replication_slots),
       current_setting('max_wal_senders')::int,
       (SELECT count(*) FROM pg_stat_replication),
       current_setting('max_slot_wal_keep_size', true)
FROM pg_roles r WHERE r.rolname = current_user
"""

# Tables (partition roots, not their partitions) without a primary key, and their replica identity:
# FULL or USING INDEX still lets updates and deletes be captured.
NO_PK_SQL = """
SELECT n.nspname, c.relname, c.relreplident
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%%' AND n.nspname NOT LIKE 'pg\\_temp\\_%%'
  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'p')
ORDER BY 1, 2
"""


def wal_level_item(wal_level: str) -> ReadinessItem:
    """wal_level must be logical for logical decoding."""
    if wal_level == "logical":
        return ReadinessItem("wal_level", "wal_level", OK, "wal_level is logical")
    return ReadinessItem(
        "wal_level",
        "wal_level",
        FAILING,
        f"wal_level is '{wal_level}': changes cannot be decoded",
        "ALTER SYSTEM SET wal_level = logical; then restart the server "
        "(on managed services: the logical replication parameter, e.g. rds.logical_replication = 1)",
    )


def replication_item(username: str, may_replicate: bool) -> ReadinessItem:
    """The user needs the REPLICATION attribute (or superuser, or rds_replication) to stream changes."""
    label = "REPLICATION attribute"
    if may_replicate:
        return ReadinessItem("replication", label, OK, f"user {username} may replicate")
    return ReadinessItem(
        "replication",
        label,
        FAILING,
        f"user {username} has no REPLICATION attribute",
        f'ALTER ROLE "{username}" WITH REPLICATION; (on Amazon RDS: GRANT rds_replication TO "{username}";)',
    )


def slots_item(max_slots: int, used: int) -> ReadinessItem:
    """Each pipeline needs one free replication slot."""
    label = "Replication slots"
    free = max(max_slots - used, 0)
    if free > 0:
        return ReadinessItem("slots", label, OK, f"{free} of {max_slots} free ({used} in use)")
    found = "max_replication_slots is 0" if max_slots == 0 else f"all {max_slots} slots are in use"
    return ReadinessItem(
        "slots",
        label,
        FAILING,
        found,
        "ALTER SYSTEM SET max_replication_slots = <pipelines + 2>; and restart the server, "
        "or drop unused slots: SELECT pg_drop_replication_slot('<name>');",
    )


def senders_item(max_senders: int, used: int) -> ReadinessItem:
    """Each running pipeline holds one WAL sender."""
    label = "WAL senders"
    free = max(max_senders - used, 0)
    if free > 0:
        return ReadinessItem("wal_senders", label, OK, f"{free} of {max_senders} free ({used} in use)")
    found = "max_wal_senders is 0" if max_senders == 0 else f"all {max_senders} WAL senders are in use"
    return ReadinessItem(
        "wal_senders",
        label,
        FAILING,
        found,
        "ALTER SYSTEM SET max_wal_senders = <pipelines + replicas + 2>; and restart the server, "
        "or stop another replication client",
    )


def wal_keep_item(setting: str | None) -> ReadinessItem:
    """Without max_slot_wal_keep_size a stopped pipeline's slot can hold WAL until the disk is full."""
    label = "max_slot_wal_keep_size"
    if setting is None:
        return ReadinessItem(
            "slot_wal_keep",
            label,
            WARNING,
            "not available (PostgreSQL before 13): a stopped pipeline's slot keeps WAL without limit",
            "watch the retained WAL of stopped pipelines and drop slots no longer needed",
        )
    if setting.strip() == "-1":
        return ReadinessItem(
            "slot_wal_keep",
            label,
            WARNING,
            "unlimited (-1): a stopped pipeline's slot keeps WAL until the disk is full",
            "ALTER SYSTEM SET max_slot_wal_keep_size = '50GB'; SELECT pg_reload_conf(); "
            "(a slot further behind is invalidated and its pipeline must load again)",
        )
    return ReadinessItem(
        "slot_wal_keep", label, OK, f"{setting}: a slot further behind is invalidated instead of filling the disk"
    )


def primary_keys_item(rows: list[tuple[str, str, str]]) -> ReadinessItem:
    """Tables without a primary key (and without a replica identity) cannot have updates/deletes captured."""
    label = "Tables without a primary key"
    bare = [f"{s}.{t}" for s, t, ident in rows if ident in ("d", "n")]
    covered = len(rows) - len(bare)
    if not bare:
        found = "every table has a primary key"
        if covered:
            found = f"{covered} without a primary key use REPLICA IDENTITY FULL or an index"
        return ReadinessItem("primary_keys", label, OK, found)
    more = len(bare) - MAX_LISTED_TABLES
    listed = ", ".join(bare[:MAX_LISTED_TABLES]) + (f" and {more} more" if more > 0 else "")
    return ReadinessItem(
        "primary_keys",
        label,
        WARNING,
        f"{len(bare)} table(s) without a primary key or replica identity: {listed}",
        "ALTER TABLE <table> ADD PRIMARY KEY (<columns>); or, to capture whole rows, "
        "ALTER TABLE <table> REPLICA IDENTITY FULL; (until then updates and deletes on them cannot be replicated)",
    )


def readiness(cur: Any, username: str) -> list[ReadinessItem]:
    """Every point of the checklist, read with one cursor on the connection's database."""
    cur.execute(SETTINGS_SQL)
    wal_level, may_replicate, max_slots, used_slots, max_senders, senders, keep = cur.fetchone()
    cur.execute(NO_PK_SQL, ())
    no_pk = cur.fetchall()
    return [
        wal_level_item(wal_level),
        replication_item(username, bool(may_replicate)),
        slots_item(int(max_slots), int(used_slots)),
        senders_item(int(max_senders), int(senders)),
        wal_keep_item(keep),
        primary_keys_item(no_pk),
    ]
