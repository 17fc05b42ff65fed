"""The container image, built and run: the CI check of the Dockerfile without a container runtime.

scripts/container-build builds the image with podman (base from scripts/container-base: debootstrap, cached), and
scripts/container-run runs its filesystem by chroot as the image's user with a data folder at /data. Through the
API: health, login, a connection to the host's PostgreSQL, a full load; then stop, start again, and the state
(pipeline, connections, run history, login, the stored secret key) survived in the data folder.
Needs root (mount, chroot): skipped otherwise. As root, a missing podman fails the test (CI must run it).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.pgcluster import PgCluster, free_port

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "localhost/cdc-studio:test"
IMAGE_UID = 10001


def _sh(cmd: list[str], log: Path, timeout: float) -> str:
    """Run a command; its output goes to `log`; a failure fails the test with the log's tail."""
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    log.write_text(r.stdout + r.stderr)
    if r.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {r.returncode}:\n{(r.stdout + r.stderr)[-3000:]}", pytrace=False)
    return r.stdout


class ImageRun:
    """scripts/container-run of the image on a free port with one data folder; stop() sends SIGTERM."""

    def __init__(self, data_dir: Path, log_path: Path) -> None:
        self.data_dir, self.log_path = data_dir, log_path
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 90) -> None:
        env = {"CDC_STUDIO_PORT": str(self.port), "CDC_STUDIO_CONNECT_TIMEOUT": "5"}
        env |= {"CDC_STUDIO_ADMIN_EMAIL": ADMIN_EMAIL, "CDC_STUDIO_ADMIN_PASSWORD": ADMIN_PASSWORD}
        args = [a for k, v in env.items() for a in ("-e", f"{k}={v}")]
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it open
        self.process = subprocess.Popen(
            ["scripts/container-run", "--data", str(self.data_dir), *args, IMAGE],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the image exited with {self.process.returncode}:\n{self.log()}", pytrace=False)
            try:
                if httpx.get(f"{self.base}/api/v1/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        pytest.fail(f"/api/v1/health did not answer within {timeout} s:\n{self.log()}", pytrace=False)

    def stop(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def login(self) -> dict[str, str]:
        r = httpx.post(f"{self.base}/api/v1/auth/token", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture
def image(tmp_path: Path) -> str:
    """The image, built by the scripts (base image made or reused from var/cache/container)."""
    if os.geteuid() != 0:
        pytest.skip("the image check mounts and chroots the image's filesystem: it needs root (CI runs as root)")
    if shutil.which("podman") is None or shutil.which("debootstrap") is None:
        pytest.fail("podman and debootstrap are missing: scripts/setup-system installs them", pytrace=False)
    _sh(["scripts/container-build", IMAGE], tmp_path / "build.log", timeout=1200)
    return IMAGE


@pytest.fixture
def runs(tmp_path: Path) -> Iterator[list[ImageRun]]:
    started: list[ImageRun] = []
    yield started
    for run in started:
        run.stop()


def _check_image_contents(tmp_path: Path) -> list[str]:
    """The image's user and config, and a final layer without build tools, caches or the build's CA secret.

    Returns the healthcheck's command.
    """
    inspect = json.loads(_sh(["podman", "image", "inspect", IMAGE], tmp_path / "inspect.log", 60))[0]
    config = inspect["Config"]
    assert config["User"] == f"{IMAGE_UID}:{IMAGE_UID}" and "CDC_STUDIO_DATA_DIR=/data" in config["Env"], config
    assert inspect["Healthcheck"]["Test"][:2] == ["CMD", "python"], inspect["Healthcheck"]
    ctr = _sh(["podman", "create", "--no-healthcheck", IMAGE], tmp_path / "create.log", 60).strip()
    try:
        root = Path(_sh(["podman", "mount", ctr], tmp_path / "mount.log", 60).strip())
        unwanted = ("usr/bin/gcc", "usr/bin/cc", "opt/venv/bin/pip", "run/secrets/pipcert", "root/.cache")
        assert [p for p in unwanted if (root / p).exists()] == []
        assert list((root / "var/lib/apt/lists").glob("*")) == []
        assert (root / "data").stat().st_uid == IMAGE_UID
    finally:
        subprocess.run(["podman", "rm", "-f", ctr], capture_output=True)
    return inspect["Healthcheck"]["Test"][1:]


def _seed(pg: PgCluster, db: str) -> None:
    conn = pg.connect(db)
    with conn.cursor() as cur:
        cur.execute("CREATE SCHEMA shop")
        cur.execute("CREATE TABLE shop.orders (id bigint PRIMARY KEY, amount numeric(12,2), note text)")
        cur.execute("INSERT INTO shop.orders SELECT g, g * 1.5, 'n' || g FROM generate_series(1, 3000) g")
    conn.close()


def _connections(run: ImageRun, headers: dict[str, str], pg: PgCluster, source: str, target: str) -> list[int]:
    ids = []
    for name, db, usage in (("src", source, "source"), ("tgt", target, "target")):
        body = {"name": name, "kind": "postgresql", "usage": usage, "host": pg.host, "port": pg.port}
        body |= {"database": db, "username": pg.user, "password": pg.password}
        r = httpx.post(f"{run.base}/api/v1/connections", headers=headers, json=body)
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    return ids


def _full_load(run: ImageRun, headers: dict[str, str], src: int, tgt: int) -> int:
    body = {"name": "container load", "source_connection_id": src, "target_connection_id": tgt}
    body |= {"source_schema": "shop", "target_schema": "shop_copy", "tables": ["orders"], "mode": "FULL_LOAD_ONLY"}
    r = httpx.post(f"{run.base}/api/v1/pipelines", headers=headers, json=body | {"auto_create": True})
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    r = httpx.post(f"{run.base}/api/v1/pipelines/{pid}/start", headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + 120
    while (status := httpx.get(f"{run.base}/api/v1/pipelines/{pid}/status", headers=headers).json())["state"] not in {
        "STOPPED",
        "ERROR",
    }:
        assert time.monotonic() < deadline, status
        time.sleep(0.5)
    assert status["state"] == "STOPPED" and status["full_load_status"] == "COMPLETED", status
    return pid


def _mounted(path: Path) -> bool:
    return any(str(path) in line for line in Path("/proc/self/mountinfo").read_text().splitlines())


def test_the_image_runs_a_full_load_and_keeps_its_state_across_a_restart(
    image, runs, tmp_path, pg: PgCluster, pg_db: str, target_db: str
) -> None:
    healthcheck = _check_image_contents(tmp_path)
    _seed(pg, pg_db)
    data = tmp_path / "data"
    first = ImageRun(data, tmp_path / "run1.log")
    runs.append(first)
    first.start()
    # The image's HEALTHCHECK (python, no curl) passes against the running app (host network, same port).
    hc = ["scripts/container-run", "--data", str(tmp_path / "hc"), "-e", f"CDC_STUDIO_PORT={first.port}", IMAGE]
    _sh([*hc, *healthcheck], tmp_path / "healthcheck.log", timeout=60)
    admin = first.login()
    src, tgt = _connections(first, admin, pg, pg_db, target_db)
    pid = _full_load(first, admin, src, tgt)
    conn = pg.connect(target_db)
    with conn.cursor() as cur:
        cur.execute("SELECT count(*), sum(amount) FROM shop_copy.orders")
        assert cur.fetchone() == (3000, sum(g * 1.5 for g in range(1, 3001)))
    conn.close()
    assert first.stop() is not None
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{first.base}/api/v1/health", timeout=2)
    assert not _mounted(data), "container-run left the data folder mounted"
    assert {p.stat().st_uid for p in data.iterdir()} == {IMAGE_UID}, "the app did not run as the image's user"

    second = ImageRun(data, tmp_path / "run2.log")
    runs.append(second)
    second.start()
    admin = second.login()
    conns = httpx.get(f"{second.base}/api/v1/connections", headers=admin).json()
    assert sorted((c["id"], c["name"]) for c in conns) == [(src, "src"), (tgt, "tgt")]
    # The stored password decrypts with the secret key kept in the data folder: the connection still works.
    test = httpx.post(f"{second.base}/api/v1/connections/{src}/test", headers=admin, timeout=30).json()
    assert test["ok"] is True, test
    status = httpx.get(f"{second.base}/api/v1/pipelines/{pid}/status", headers=admin).json()
    assert status["state"] == "STOPPED" and status["full_load_status"] == "COMPLETED", status
    history = httpx.get(f"{second.base}/api/v1/pipelines/{pid}/runs", headers=admin).json()
    assert [(r["run_type"], r["status"], r["rows_processed"]) for r in history] == [("FULL_LOAD", "COMPLETED", 3000)]
