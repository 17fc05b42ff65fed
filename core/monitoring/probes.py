"""What the health checks read from the outside: databases reachable, the replication slot, Kafka Connect.

Every probe is short and bounded: a connect with the connection's timeout, a statement timeout on
the one query, an HTTP timeout on Kafka Connect. Probes raise the project's errors (ConnectorError,
KafkaConnectError); the checks turn them into results.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import psycopg2

from core.cdc import pg_source
from core.config import Settings
from core.connectors import get_connector, postgres
from core.connectors.base import ConnectionSpec
from core.kafka.connect_client import ConnectorStatus, KafkaConnectClient

APPLICATION_NAME = "cdc-studio-health"
STATEMENT_TIMEOUT_MS = 5000
CONNECT_TIMEOUT_S = 5.0


@dataclass
class SlotProbe:
    """The slot as the source server sees it, and the server's WAL position (ints, bytes)."""

    current_lsn: int
    max_slot_wal_keep_size: int | None  # bytes; None = unlimited (-1)
    present: bool
    active: bool | None = None
    wal_status: str | None = None  # reserved | extended | unreserved | lost
    safe_wal_size: int | None = None  # bytes until the slot would be lost (None: no limit)
    restart_lsn: int | None = None
    confirmed_lsn: int | None = None
    retained_wal_bytes: int | None = None
    lag_bytes: int | None = None


def reachable(spec: ConnectionSpec) -> float:
    """Connect and run SELECT 1 (the connection's connect timeout); the round trip in ms."""
    return get_connector(spec).test().latency_ms


_SLOT_SQL = (
    "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint, "
    "(SELECT setting::bigint * CASE unit WHEN 'MB' THEN 1048576 WHEN 'kB' THEN 1024 ELSE 1 END "
    " FROM pg_settings WHERE name = 'max_slot_wal_keep_size'), "
    "s.slot_name IS NOT NULL, s.active, s.wal_status, s.safe_wal_size, "
    "pg_wal_lsn_diff(s.restart_lsn, '0/0')::bigint, pg_wal_lsn_diff(s.confirmed_flush_lsn, '0/0')::bigint, "
    "pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn)::bigint, "
    "pg_wal_lsn_diff(pg_current_wal_lsn(), s.confirmed_flush_lsn)::bigint "
    "FROM (SELECT 1) one LEFT JOIN pg_replication_slots s ON s.slot_name = %s"
)


def slot(spec: ConnectionSpec, slot_name: str) -> SlotProbe:
    """The slot's state (present or not), wal_status, safe_wal_size, retained WAL and positions."""
    conn = postgres.connect(
        spec, application_name=APPLICATION_NAME, session_sql=f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}"
    )
    try:
        with conn.cursor() as cur:
            cur.execute(_SLOT_SQL, (slot_name,))
            row: Any = cur.fetchone()
    except psycopg2.Error as exc:  # driver errors leave as the project's
        raise postgres.translate_error(exc, spec) from None
    finally:
        conn.close()
    current, keep, present, active, wal_status, safe, restart, confirmed, retained, lag = row
    return SlotProbe(
        current_lsn=int(current),
        max_slot_wal_keep_size=None if keep is None or keep < 0 else int(keep),
        present=bool(present),
        active=active,
        wal_status=wal_status,
        safe_wal_size=None if safe is None else int(safe),
        restart_lsn=restart,
        confirmed_lsn=confirmed,
        retained_wal_bytes=retained,
        lag_bytes=lag,
    )


def emit_heartbeat(spec: ConnectionSpec) -> int:
    """Write a heartbeat message into the source's WAL (see core.cdc.pg_source.emit_heartbeat); its LSN."""
    return pg_source.emit_heartbeat(spec)


def connect_status(settings: Settings, connector: str) -> tuple[float, ConnectorStatus]:
    """Kafka Connect answers (round trip in ms) and the connector's status with its tasks."""
    started = time.perf_counter()
    with KafkaConnectClient.from_settings(settings, timeout_s=CONNECT_TIMEOUT_S, retries_on_rebalance=0) as client:
        client.server_info()
        latency_ms = (time.perf_counter() - started) * 1000
        return latency_ms, client.status(connector)
