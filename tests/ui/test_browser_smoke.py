"""One real-browser smoke test: the app as a process, headless Chromium, login, the connections page."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.appprocess import AppProcess
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.fixture
def running_app(tmp_path: Path) -> Iterator[str]:
    """The app started as its own process on a free port; its base URL."""
    app = AppProcess(tmp_path / "data", tmp_path / "app.log")
    try:
        app.start()
        yield app.base
    finally:
        app.terminate()


@pytest.mark.browser
def test_login_and_connections_page_in_chromium(running_app: str, tmp_path: Path) -> None:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("chromium and chromedriver are not installed (scripts/setup-system installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        "--window-size=1400,900",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        wait = WebDriverWait(driver, 20)
        driver.get(f"{running_app}/login")
        email = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "input[type=text]")))
        email.send_keys(ADMIN_EMAIL)
        driver.find_element(By.CSS_SELECTOR, "input[type=password]").send_keys(ADMIN_PASSWORD)
        driver.find_element(By.XPATH, "//button[.//*[normalize-space()='Log in']]").click()
        wait.until(ec.presence_of_element_located((By.XPATH, f"//*[contains(text(), '{ADMIN_EMAIL} (admin)')]")))

        driver.get(f"{running_app}/connections")
        wait.until(ec.presence_of_element_located((By.XPATH, "//*[normalize-space()='New connection']")))
        assert "Connections" in driver.find_element(By.TAG_NAME, "body").text
        assert driver.title == "Connections · CDC Studio"
        driver.save_screenshot(str(tmp_path / "connections.png"))

        # the connection dialog opens and closes again without leaving anything behind
        driver.find_element(By.XPATH, "//button[.//*[normalize-space()='New connection']]").click()
        wait.until(ec.visibility_of_element_located((By.XPATH, "//*[normalize-space()='Save']")))
        driver.find_element(By.XPATH, "//button[.//*[normalize-space()='Cancel']]").click()
        wait.until(ec.invisibility_of_element_located((By.XPATH, "//*[normalize-space()='Save']")))

        severe = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        assert severe == [], severe
    finally:
        driver.quit()
    app_log = (tmp_path / "app.log").read_text(errors="replace")
    assert "Traceback" not in app_log, app_log
