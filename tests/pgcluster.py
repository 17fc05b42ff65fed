"""Throwaway PostgreSQL clusters for tests and benchmarks.

PostgreSQL refuses to run as root, so when we are root the cluster runs as the unprivileged
`postgres` user. Each cluster gets a free port chosen at run time, password (SCRAM) auth over
TCP so wrong-password paths are real, and `wal_level=logical` for CDC.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2

SUPERUSER = "postgres"
PASSWORD = "s3cret-Pw!"


def _pg_bin(name: str) -> str:
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} is not installed (apt-get install postgresql)")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_pg_user(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


@dataclass
class PgCluster:
    """A running cluster; `dsn(db)` gives a libpq connection string for one database."""

    host: str = "127.0.0.1"
    port: int = 0
    user: str = SUPERUSER
    password: str = PASSWORD
    datadir: Path = field(default_factory=Path)
    _root: Path = field(default_factory=Path)

    @classmethod
    def start(cls, extra_conf: dict[str, str] | None = None) -> PgCluster:
        root = Path(tempfile.mkdtemp(prefix="cdcstudio-pg-"))
        root.chmod(0o755)
        datadir = root / "data"
        pwfile = root / "pw"
        pwfile.write_text(PASSWORD)
        if os.geteuid() == 0:
            pg = pwd.getpwnam("postgres")
            os.chown(root, pg.pw_uid, pg.pw_gid)
            os.chown(pwfile, pg.pw_uid, pg.pw_gid)
        subprocess.run(
            _as_pg_user(
                [
                    _pg_bin("initdb"),
                    "-D",
                    str(datadir),
                    "-U",
                    SUPERUSER,
                    "--pwfile",
                    str(pwfile),
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ]
            ),
            check=True,
            capture_output=True,
        )
        port = free_port()
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(port),
            "unix_socket_directories": f"'{root}'",
            "wal_level": "logical",
            "max_wal_senders": "20",
            "max_replication_slots": "20",
            "max_connections": "200",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "shared_buffers": "128MB",
            "autovacuum": "off",
        }
        conf.update(extra_conf or {})
        with open(datadir / "postgresql.conf", "a") as f:
            for k, v in conf.items():
                f.write(f"{k} = {v}\n")
        with open(datadir / "pg_hba.conf", "a") as f:
            f.write("host replication all 127.0.0.1/32 scram-sha-256\n")
        subprocess.run(
            _as_pg_user([_pg_bin("pg_ctl"), "-D", str(datadir), "-l", str(root / "log"), "-w", "-t", "60", "start"]),
            check=True,
            capture_output=True,
        )
        cluster = cls(port=port, datadir=datadir, _root=root)
        cluster._wait()
        return cluster

    def _wait(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg2.connect(self.dsn("postgres")).close()
                return
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host={self.host} port={self.port} user={self.user} password={self.password} dbname={dbname}"

    def connect(self, dbname: str = "postgres", autocommit: bool = True):  # noqa: ANN201
        conn = psycopg2.connect(self.dsn(dbname))
        conn.autocommit = autocommit
        return conn

    def create_database(self, name: str) -> None:
        conn = self.connect()
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        conn.close()

    def drop_database(self, name: str) -> None:
        """Drop a database, first removing replication slots a failed test may have left in it."""
        conn = self.connect()
        with conn.cursor() as cur:
            for _ in range(50):
                cur.execute("SELECT slot_name, active_pid FROM pg_replication_slots WHERE database = %s", (name,))
                found = cur.fetchall()
                if not found:
                    break
                for slot, pid in found:
                    if pid:
                        cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
                    else:
                        cur.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
                time.sleep(0.1)
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()

    def stop(self) -> None:
        subprocess.run(
            _as_pg_user([_pg_bin("pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(self._root, ignore_errors=True)
