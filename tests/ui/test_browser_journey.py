"""What a person sees along the journey, in headless Chromium on the app as a process: the API docs
with no internet, the events page with a filter, the dashboard with two pipelines (screenshots kept
under var/screenshots/ and asserted on what they show)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.test_cdc_crash import sql, wait_until
from tests.appprocess import AppProcess
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.pgcluster import PgCluster
from tests.ui.test_browser_smoke import CHROMEDRIVER, CHROMIUM

SHOTS = Path("var/screenshots")  # kept after the run for people to look at
OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"  # every outside host unreachable


def _driver(*extra: str, tz: str | None = None, frames: bool = False, size: str = "1440,900"):  # noqa: ANN202
    """Headless Chromium, a selenium WebDriver at `size` (`frames`: its performance log also records websocket
    frames)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("chromium and chromedriver are not installed (scripts/setup-system installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        f"--window-size={size}",
        *extra,
    ):
        options.add_argument(arg)
    logs = {"browser": "ALL", "performance": "ALL"} if frames else {"browser": "ALL"}
    options.set_capability("goog:loggingPrefs", logs)
    env = {**os.environ, "TZ": tz} if tz else None  # the browser's own time zone
    return webdriver.Chrome(service=Service(CHROMEDRIVER, env=env), options=options)


@pytest.fixture
def running_app(tmp_path: Path) -> Iterator[AppProcess]:
    """The app started as its own process on a free port."""
    app = AppProcess(tmp_path / "data", tmp_path / "app.log")
    try:
        app.start()
        yield app
    finally:
        app.terminate()


def _login(driver, base: str) -> None:  # noqa: ANN001
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, 30)
    driver.get(f"{base}/login")
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "input[type=text]"))).send_keys(ADMIN_EMAIL)
    driver.find_element(By.CSS_SELECTOR, "input[type=password]").send_keys(ADMIN_PASSWORD)
    driver.find_element(By.XPATH, "//button[.//*[normalize-space()='Log in']]").click()
    wait.until(ec.presence_of_element_located((By.XPATH, f"//*[contains(text(), '{ADMIN_EMAIL} (admin)')]")))


@pytest.mark.browser
def test_swagger_ui_and_redoc_render_our_operations_without_internet(running_app: AppProcess) -> None:
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    SHOTS.mkdir(parents=True, exist_ok=True)
    driver = _driver(OFFLINE)
    try:
        wait = WebDriverWait(driver, 30)
        with pytest.raises(WebDriverException, match="ERR_NAME_NOT_RESOLVED"):  # no outside host is reachable
            driver.get("https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js")

        driver.get(f"{running_app.base}/docs")
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".swagger-ui .opblock")))
        body = driver.find_element(By.TAG_NAME, "body").text
        assert "CDC Studio API" in body
        assert "/api/v1/pipelines" in body and "/api/v1/monitoring/events" in body
        assert len(driver.find_elements(By.CSS_SELECTOR, ".opblock")) > 20  # every operation drawn
        driver.save_screenshot(str(SHOTS / "docs-offline.png"))

        driver.get(f"{running_app.base}/redoc")
        wait.until(ec.presence_of_element_located((By.XPATH, "//*[contains(text(), 'CDC Studio API')]")))
        wait.until(ec.presence_of_element_located((By.XPATH, "//*[contains(text(), '/api/v1/pipelines')]")))
        driver.save_screenshot(str(SHOTS / "redoc-offline.png"))
    finally:
        driver.quit()


BODY_CLASS = "return document.body ? document.body.className : ''"
EVENTS_JS = """
return [...document.querySelectorAll("[data-testid='events-table'] tbody tr")].map(tr => {
  const when = tr.children[0].querySelector('span');
  return {op: tr.children[3].innerText.trim(), table: tr.children[2].innerText.trim(),
          when: when ? when.innerText : '', when_title: when ? when.title : ''};
});
"""
GLANCE_JS = """
return [...document.querySelectorAll("[data-testid='pipelines-glance'] tbody tr")].map(tr => {
  const badge = tr.querySelector('.q-badge[data-state]'), last = tr.children[5].querySelector('span');
  return {name: tr.children[0].innerText.trim(), state: badge && badge.innerText.trim(),
          badge: badge ? badge.className : '', last: last ? last.innerText : '', last_title: last ? last.title : ''};
});
"""


def _two_pipelines(app: AppProcess, pg: PgCluster, source: str, target: str) -> dict[str, int]:
    """Connections to the source and target and two FULL_LOAD_AND_CDC pipelines, started and running."""
    h = app.token()
    ids = []
    for name, db, usage in (("shop source", source, "source"), ("shop target", target, "target")):
        body = {"name": name, "kind": "postgresql", "usage": usage, "host": pg.host, "port": pg.port}
        body |= {"database": db, "username": pg.user, "password": pg.password}
        r = httpx.post(f"{app.base}/api/v1/connections", headers=h, json=body)
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
        tested = httpx.post(f"{app.base}/api/v1/connections/{ids[-1]}/test", headers=h, timeout=30)
        assert tested.status_code == 200 and tested.json()["ok"], tested.text
    pids = {}
    for name, table in (("orders-sync", "orders"), ("customers-sync", "customers")):
        body = {
            "name": name,
            "source_connection_id": ids[0],
            "target_connection_id": ids[1],
            "mode": "FULL_LOAD_AND_CDC",
        }
        body |= {"source_schema": "shop", "target_schema": "shop", "tables": [table]}
        r = httpx.post(f"{app.base}/api/v1/pipelines", headers=h, json=body, timeout=30)
        assert r.status_code == 201, r.text
        pids[name] = r.json()["id"]
        assert httpx.post(f"{app.base}/api/v1/pipelines/{pids[name]}/start", headers=h, timeout=30).status_code == 200
    for pid in pids.values():
        wait_until(
            lambda pid=pid: httpx.get(f"{app.base}/api/v1/pipelines/{pid}", headers=h).json()["cdc_status"] == "RUNNING"
        )
    return pids


def _events_logged(app: AppProcess, op: str, n: int) -> bool:
    r = httpx.get(f"{app.base}/api/v1/monitoring/events", headers=app.token(), params={"op": op, "limit": 100})
    return len(r.json()) >= n


@pytest.mark.browser
def test_events_with_a_filter_and_the_dashboard_with_two_pipelines(pg: PgCluster, pg_db: str, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    target = pg_db + "_tgt"
    pg.create_database(target)
    sql(
        pg,
        pg_db,
        "CREATE SCHEMA shop; CREATE TABLE shop.orders (id int PRIMARY KEY, status text, total numeric(10,2));"
        "CREATE TABLE shop.customers (id int PRIMARY KEY, name text, vip boolean);"
        "INSERT INTO shop.orders SELECT g, 'new', g * 1.5 FROM generate_series(1, 20) g;"
        "INSERT INTO shop.customers SELECT g, 'customer ' || g, false FROM generate_series(1, 5) g",
    )
    SHOTS.mkdir(parents=True, exist_ok=True)
    app = AppProcess(tmp_path / "data", tmp_path / "app.log")
    driver = None
    try:
        app.start()
        _two_pipelines(app, pg, pg_db, target)
        sql(
            pg,
            pg_db,
            "UPDATE shop.orders SET status = 'paid' WHERE id <= 4; INSERT INTO shop.orders VALUES (21, 'new', 9)",
        )
        sql(pg, pg_db, "UPDATE shop.customers SET vip = true WHERE id = 2; DELETE FROM shop.customers WHERE id = 5")
        wait_until(lambda: _events_logged(app, "update", 5) and _events_logged(app, "delete", 1))

        driver = _driver(tz="Asia/Tokyo")  # a person nine hours ahead of the server's UTC
        wait = WebDriverWait(driver, 30)
        _login(driver, app.base)
        driver.get(f"{app.base}/events?op=update")  # where the dashboard's "Updates" figure leads
        wait.until(ec.presence_of_element_located((By.XPATH, "//td[normalize-space()='shop.customers']")))
        wait.until(ec.presence_of_element_located((By.XPATH, "//td[normalize-space()='shop.orders']")))
        wait.until(lambda d: len(d.execute_script(EVENTS_JS)) == 5)
        rows = driver.execute_script(EVENTS_JS)  # read in one go: the table redraws as changes arrive
        assert {r["op"] for r in rows} == {"update"}, rows  # the filter holds: no insert, no delete
        assert sorted(r["table"] for r in rows) == ["shop.customers"] + ["shop.orders"] * 4
        assert all(r["when"][:2] == "20" and r["when"].endswith("GMT+9") for r in rows), rows  # dated, in Tokyo time
        assert all(r["when_title"].endswith(" UTC") for r in rows), rows  # and UTC on hover
        local_hour, utc_hour = int(rows[0]["when"][11:13]), int(rows[0]["when_title"][11:13])
        assert (local_hour - utc_hour) % 24 == 9
        body = driver.find_element(By.TAG_NAME, "body").text
        assert "Operation" in body and "{{" not in body
        fields = "return [...document.querySelectorAll('.q-field')].map(f => f.innerText)"
        chosen = [t for t in driver.execute_script(fields) if "Operation" in t]
        assert any("update" in t for t in chosen), chosen  # the filter is shown as set
        driver.save_screenshot(str(SHOTS / "events-filtered.png"))

        driver.get(f"{app.base}/")
        wait.until(ec.presence_of_element_located((By.XPATH, "//a[normalize-space()='customers-sync']")))
        wait.until(ec.presence_of_element_located((By.XPATH, "//a[normalize-space()='orders-sync']")))
        # the table redraws as figures arrive: read it in one go, in the page
        wait.until(lambda d: all(r["last"].startswith("20") for r in d.execute_script(GLANCE_JS)))
        rows = driver.execute_script(GLANCE_JS)
        assert [r["name"] for r in rows] == ["customers-sync", "orders-sync"]
        assert [r["state"] for r in rows] == ["RUNNING", "RUNNING"]
        assert all("bg-green-7" in r["badge"] for r in rows)  # running is green
        assert all(r["last"].startswith("20") and r["last_title"].endswith(" UTC") for r in rows)  # last change, dated
        assert driver.find_element(By.CSS_SELECTOR, "[data-testid='stat-pipelines']").text == "2"
        assert not driver.find_elements(By.CSS_SELECTOR, "[data-testid='getting-started']")  # all four steps done
        driver.save_screenshot(str(SHOTS / "dashboard-two-pipelines.png"))
        severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert severe == [], severe
    finally:
        if driver is not None:
            driver.quit()
        app.terminate()
    assert "Traceback" not in (tmp_path / "app.log").read_text(errors="replace")


@pytest.mark.browser
def test_dark_mode_from_the_account_menu_is_remembered(running_app: AppProcess) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    SHOTS.mkdir(parents=True, exist_ok=True)
    driver = _driver()
    try:
        wait = WebDriverWait(driver, 30)
        _login(driver, running_app.base)
        assert "body--dark" not in driver.find_element(By.TAG_NAME, "body").get_attribute("class")
        driver.find_element(By.XPATH, f"//button[.//*[contains(text(), '{ADMIN_EMAIL}')]]").click()
        wait.until(ec.element_to_be_clickable((By.XPATH, "//*[normalize-space()='Dark mode']"))).click()
        wait.until(lambda d: "body--dark" in d.execute_script(BODY_CLASS))  # the page reloads: read it in the page
        driver.get(f"{running_app.base}/pipelines")  # another page, the same choice
        wait.until(ec.presence_of_element_located((By.XPATH, "//*[contains(text(), 'create the first one')]")))
        assert "body--dark" in driver.execute_script(BODY_CLASS)
        background = driver.execute_script("return getComputedStyle(document.body).backgroundColor")
        assert background not in ("rgb(255, 255, 255)", "rgba(0, 0, 0, 0)"), background  # really dark
        driver.save_screenshot(str(SHOTS / "pipelines-empty-dark.png"))
    finally:
        driver.quit()
