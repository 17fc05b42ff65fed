"""No secret in any log line: for the whole test session, every log record of the app (INFO and up, from the
in-process app of the tests and from every `AppProcess` started) is kept, and at the end of the session the
logs are searched for the passwords and secrets the tests used. One found fails the run, naming where.

Secrets are the test suite's constants (admin and role passwords, the test clusters' password, the channel
secrets) plus any a test registers with `register_secret`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LOG = ROOT / "var" / "test-app.log"

_secrets: set[str] = set()
_logs: list[Path] = []
_handler: logging.Handler | None = None


def register_secret(value: str) -> None:
    """A secret no log of the run may contain (too short a value would match by chance: 6+ characters)."""
    if len(value) >= 6:
        _secrets.add(value)


def register_log(path: Path) -> None:
    """Another log file to search at the end (an app process's output)."""
    _logs.append(path)


def _known_secrets() -> set[str]:
    from tests import pgcluster
    from tests.api import test_channels_api
    from tests.conftest import ADMIN_PASSWORD

    found = {ADMIN_PASSWORD, pgcluster.PASSWORD, *(f"{role}-password-1" for role in ("viewer", "editor"))}
    found |= {test_channels_api.SECRET, test_channels_api.SLACK_TOKEN}
    found |= {test_channels_api.ROUTING_KEY, test_channels_api.MAIL_PASSWORD}
    return found


def pytest_configure(config: pytest.Config) -> None:
    global _handler
    LOG.parent.mkdir(parents=True, exist_ok=True)
    _handler = logging.FileHandler(LOG, mode="w", encoding="utf-8")
    _handler.setLevel(logging.INFO)
    _handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(_handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)


def leaks(paths: list[Path], secrets: set[str]) -> list[str]:
    """Each line of the files that contains one of the secrets, as 'file:line: which'."""
    found = []
    for path in paths:
        if not path.exists():
            continue
        with path.open(encoding="utf-8", errors="replace") as f:
            for number, line in enumerate(f, 1):
                for secret in secrets:
                    if secret in line:
                        found.append(f"{path}:{number}: contains the secret {secret[:2]}…")
    return found


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _handler is None:
        return
    _handler.flush()
    logging.getLogger().removeHandler(_handler)
    _handler.close()
    found = leaks([LOG, *_logs], _known_secrets() | _secrets)
    if found:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = "\nsecrets found in the app's logs:\n  " + "\n  ".join(found[:50])
        if reporter is not None:
            reporter.write_line(message, red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
