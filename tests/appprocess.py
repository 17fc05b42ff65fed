"""The app as a real process (for the browser smoke test and crash tests)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.pgcluster import free_port
from tests.secretscan import register_log

ROOT = Path(__file__).resolve().parents[1]


class AppProcess:
    """`python app.py` on a free port with its own data dir; start/kill/terminate it at will."""

    def __init__(self, data_dir: Path, log_path: Path, **extra_env: str) -> None:
        self.extra_env = extra_env  # e.g. CDC_STUDIO_METRICS_SAMPLE_S="1"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CDC_STUDIO_", "NICEGUI_", "PYTEST_"))}
        env.pop("DATABASE_URL", None)
        env.update(
            CDC_STUDIO_PORT=str(self.port),
            CDC_STUDIO_DATA_DIR=str(self.data_dir),
            CDC_STUDIO_ADMIN_EMAIL=ADMIN_EMAIL,
            CDC_STUDIO_ADMIN_PASSWORD=ADMIN_PASSWORD,
        )
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 60) -> None:
        register_log(self.log_path)  # searched for secrets at the end of the run (tests/secretscan.py)
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it open
        self.process = subprocess.Popen(
            [sys.executable, "app.py"], cwd=ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the app exited with code {self.process.returncode}; see {self.log_path}")
            try:
                if httpx.get(f"{self.base}/api/v1/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise TimeoutError(f"{self.base}/api/v1/health did not answer within {timeout} s")

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no flushing — a crash."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def token(self) -> dict[str, str]:
        r = httpx.post(f"{self.base}/api/v1/auth/token", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
        return {"Authorization": f"Bearer {r.json()['access_token']}"}
