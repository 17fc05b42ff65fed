"""The end-of-run secret search finds a secret in a log line (and only there)."""

from __future__ import annotations

from pathlib import Path

from tests.secretscan import leaks


def test_a_logged_secret_is_found(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("started\nconnecting with password=Pw-Leaked-123 to db\nstopped\n")
    found = leaks([log, tmp_path / "missing.log"], {"Pw-Leaked-123", "Never-Logged-9"})
    assert found == [f"{log}:2: contains the secret Pw…"]
