"""No secret in a websocket message or a page (#14): headless Chromium records every websocket frame the app
sends while a person opens the pages that show secret-holding objects (a connection and its edit form, a
channel and its edit form, the audit trail), and none holds the database password or the channel's secrets."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.appprocess import AppProcess
from tests.pgcluster import PgCluster
from tests.secretscan import register_secret
from tests.ui.test_browser_journey import _driver, _login
from tests.ui.test_connections import CHROMEDRIVER, CHROMIUM

HOOK_SECRET = "Hook-Signing-7720"
SLACK_TOKEN = "T000-B000-SlackTok9911"


def _frames(driver) -> list[str]:  # noqa: ANN001
    """The payloads of the websocket frames received since the last call."""
    payloads = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.webSocketFrameReceived":
            payloads.append(message["params"]["response"]["payloadData"])
    return payloads


@pytest.mark.browser
def test_no_secret_reaches_the_browser(pg: PgCluster, pg_db: str, tmp_path: Path) -> None:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("chromium and chromedriver are not installed (scripts/setup-system installs them)")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    for secret in (HOOK_SECRET, SLACK_TOKEN):
        register_secret(secret)
    secrets = (pg.password, HOOK_SECRET, SLACK_TOKEN)
    app = AppProcess(tmp_path / "data", tmp_path / "app.log")
    app.start()
    driver = _driver(frames=True)
    try:
        body = {"name": "shop", "kind": "postgresql", "host": pg.host, "port": pg.port, "database": pg_db}
        body |= {"username": pg.user, "password": pg.password}
        cid = httpx.post(f"{app.base}/api/v1/connections", headers=app.token(), json=body).json()["id"]
        for channel in (
            {"name": "hook", "kind": "webhook", "config": {"url": "http://127.0.0.1:9/h", "secret": HOOK_SECRET}},
            {
                "name": "chat",
                "kind": "slack",
                "config": {"webhook_url": f"https://hooks.example/services/{SLACK_TOKEN}"},
            },
        ):
            r = httpx.post(f"{app.base}/api/v1/channels", headers=app.token(), json=channel)
            assert r.status_code == 201, r.text

        wait = WebDriverWait(driver, 30)
        _login(driver, app.base)
        seen: list[str] = []

        # the connection, and its edit form (the password field stays empty: it is write-only)
        driver.get(f"{app.base}/connections/{cid}")
        wait.until(ec.visibility_of_element_located((By.XPATH, "//*[normalize-space()='CDC readiness']")))
        driver.find_element(By.XPATH, "//button[.//*[normalize-space()='Edit']]").click()
        wait.until(ec.visibility_of_element_located((By.XPATH, "//button[.//*[normalize-space()='Save']]")))
        seen += [driver.page_source] + _frames(driver)

        # the channels, and each one's edit form
        driver.get(f"{app.base}/alerts")
        wait.until(ec.element_to_be_clickable((By.XPATH, "//*[normalize-space()='Channels']"))).click()
        for name in ("hook", "chat"):
            card = f"//div[contains(@class,'q-card')][.//*[normalize-space()='{name}']]"
            wait.until(
                ec.element_to_be_clickable((By.XPATH, f"{card}//button[.//i[normalize-space()='edit']]"))
            ).click()
            wait.until(ec.visibility_of_element_located((By.XPATH, "//button[.//*[normalize-space()='Save']]")))
            seen += [driver.page_source] + _frames(driver)
            driver.find_element(By.XPATH, "//button[.//*[normalize-space()='Cancel']]").click()

        # the audit trail of all of it
        driver.get(f"{app.base}/audit")
        wait.until(ec.visibility_of_element_located((By.XPATH, "//td[normalize-space()='channel.create']")))
        seen += [driver.page_source] + _frames(driver)

        frames = [s for s in seen if s.startswith("4")]  # socket.io messages (the rest are pages)
        assert len(frames) > 10 and any("hooks.example" in f or "shop" in f for f in seen), "nothing was recorded"
        for secret in secrets:
            leaked = [s[:300] for s in seen if secret in s]
            assert not leaked, f"a secret reached the browser: {leaked}"
    finally:
        driver.quit()
        app.terminate()
    assert "Traceback" not in (tmp_path / "app.log").read_text(errors="replace")
