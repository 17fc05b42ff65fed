"""The charts a user looks at, in headless Chromium: a real CDC pipeline on the app as a process, changes
flowing, and the pipeline page's plotly charts drawing the sampled history (a screenshot is kept)."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.api.test_cdc_crash import crash_pipeline, sql, wait_until
from tests.appprocess import AppProcess
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.pgcluster import PgCluster
from tests.ui.test_browser_smoke import CHROMEDRIVER, CHROMIUM

SHOTS = Path("var/screenshots")  # kept after the run for people to look at


def _writer(pg: PgCluster, db: str, stop: threading.Event) -> None:
    conn = pg.connect(db)
    with conn.cursor() as cur:
        i = 0
        while not stop.is_set():
            cur.execute("UPDATE crash.counters SET n = n + 1 WHERE id = %s", (i % 1000 + 1,))
            i += 1
            time.sleep(0.002)
    conn.close()


def _driver():  # noqa: ANN202 - a selenium WebDriver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        "--window-size=1440,1600",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


@pytest.mark.browser
def test_pipeline_charts_plot_the_live_history(pg: PgCluster, pg_db: str, tmp_path: Path) -> None:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("chromium and chromedriver are not installed (scripts/setup-system installs them)")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    target = pg_db + "_tgt"
    pg.create_database(target)
    sql(
        pg,
        pg_db,
        "CREATE SCHEMA crash; CREATE TABLE crash.counters (id int PRIMARY KEY, n bigint NOT NULL);"
        "INSERT INTO crash.counters SELECT g, 0 FROM generate_series(1, 1000) g",
    )
    app = AppProcess(tmp_path / "data", tmp_path / "app.log", CDC_STUDIO_METRICS_SAMPLE_S="1")
    stop = threading.Event()
    w = threading.Thread(target=_writer, args=(pg, pg_db, stop))
    driver = None
    try:
        app.start()
        h = app.token()
        pid = crash_pipeline(app, h, pg, pg_db, target)
        assert httpx.post(f"{app.base}/api/v1/pipelines/{pid}/start", headers=h, timeout=30).status_code == 200
        w.start()
        history = f"{app.base}/api/v1/monitoring/pipelines/{pid}/metrics/history?range=15m&metrics=rows_per_second"
        wait_until(lambda: len(httpx.get(history, headers=h).json()["series"]["rows_per_second"]) >= 3)

        driver = _driver()
        wait = WebDriverWait(driver, 30)
        driver.get(f"{app.base}/login")
        wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "input[type=text]"))).send_keys(ADMIN_EMAIL)
        driver.find_element(By.CSS_SELECTOR, "input[type=password]").send_keys(ADMIN_PASSWORD)
        driver.find_element(By.XPATH, "//button[.//*[normalize-space()='Log in']]").click()
        wait.until(ec.presence_of_element_located((By.XPATH, f"//*[contains(text(), '{ADMIN_EMAIL} (admin)')]")))
        driver.get(f"{app.base}/pipelines/{pid}")

        def drawn(_driver) -> bool:  # noqa: ANN001 - the throughput chart has a line with several points
            paths = driver.find_elements(By.CSS_SELECTOR, ".js-plotly-plot .scatterlayer path.js-line")
            return any((p.get_attribute("d") or "").count("L") >= 2 for p in paths)

        wait.until(drawn)
        titles = driver.find_element(By.TAG_NAME, "body").text
        assert "Rows applied per second" in titles and "End-to-end latency" in titles
        SHOTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(tmp_path / "pipeline-charts.png"))
        shutil.copy(tmp_path / "pipeline-charts.png", SHOTS / "pipeline-charts.png")
        severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert severe == [], severe

        driver.get(f"{app.base}/")
        wait.until(ec.presence_of_element_located((By.XPATH, "//*[normalize-space()='Pipelines at a glance']")))
        # the row's rows/s sparkline (a line once the hour holds two steps of changes; flat before)
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "td svg[role=img]")))
        wait.until(ec.presence_of_element_located((By.XPATH, "//td//*[normalize-space()='RUNNING']")))
        driver.save_screenshot(str(SHOTS / "dashboard.png"))
    finally:
        stop.set()
        if w.is_alive():
            w.join()
        if driver is not None:
            driver.quit()
        app.terminate()
        pg.drop_database(target)
    assert "Traceback" not in (tmp_path / "app.log").read_text(errors="replace")
