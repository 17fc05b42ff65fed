"""The charts a user looks at, in headless Chromium: a real CDC pipeline on the app as a process, changes
flowing, and the pipeline page's plotly charts drawing the sampled history (a screenshot is kept)."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.api.test_cdc_crash import wait_until
from tests.pgcluster import PgCluster
from tests.ui.browser_app import streaming_app
from tests.ui.test_browser_journey import SHOTS, _driver, _login


def _writer(pg: PgCluster, db: str, stop: threading.Event) -> None:
    conn = pg.connect(db)
    with conn.cursor() as cur:
        i = 0
        while not stop.is_set():
            cur.execute("UPDATE crash.counters SET n = n + 1 WHERE id = %s", (i % 1000 + 1,))
            i += 1
            time.sleep(0.002)
    conn.close()


@pytest.mark.browser
def test_pipeline_charts_plot_the_live_history(pg: PgCluster, pg_db: str, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    stop = threading.Event()
    w = threading.Thread(target=_writer, args=(pg, pg_db, stop))
    driver = None
    with streaming_app(pg, pg_db, tmp_path, CDC_STUDIO_METRICS_SAMPLE_S="1") as (app, h, pid):
        try:
            w.start()
            history = f"{app.base}/api/v1/monitoring/pipelines/{pid}/metrics/history?range=15m&metrics=rows_per_second"
            wait_until(lambda: len(httpx.get(history, headers=h).json()["series"]["rows_per_second"]) >= 3)

            driver = _driver(size="1440,1600")
            wait = WebDriverWait(driver, 30)
            _login(driver, app.base)
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
