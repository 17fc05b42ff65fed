"""The pipeline page after Pause and Resume, as a person sees it in headless Chromium: a real
FULL_LOAD_AND_CDC pipeline on the app as a process. Paused, the page warns that the slot holds WAL and how to
drop it; resumed, every table still shows its full-load result (never PENDING 0 / 0) next to its CDC figures,
and the cards are live. Screenshots are kept under var/screenshots/."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.api.test_cdc_crash import sql, wait_until
from tests.pgcluster import PgCluster
from tests.ui.browser_app import pipeline_status, post_action, streaming_app
from tests.ui.test_browser_journey import SHOTS, _driver, _login


@pytest.mark.browser
def test_the_pipeline_page_after_resume(pg: PgCluster, pg_db: str, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = None
    with streaming_app(pg, pg_db, tmp_path, CDC_STUDIO_METRICS_SAMPLE_S="1") as (app, h, pid):
        try:
            sql(pg, pg_db, "UPDATE crash.counters SET n = n + 1 WHERE id <= 25")
            post_action(app, h, pid, "pause")
            sql(pg, pg_db, "UPDATE crash.counters SET n = n + 1 WHERE id <= 10")  # WAL the paused slot holds

            driver = _driver(size="1440,1600")
            wait = WebDriverWait(driver, 40)
            _login(driver, app.base)
            driver.get(f"{app.base}/pipelines/{pid}")

            def body() -> str:
                return driver.find_element(By.TAG_NAME, "body").text

            wait.until(lambda _d: "pg_drop_replication_slot(" in body())
            paused = body()
            assert "PAUSED" in paused and "is not read: the source keeps" in paused
            SHOTS.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(SHOTS / "pipeline-paused.png"))

            post_action(app, h, pid, "resume")
            wait_until(lambda: pipeline_status(app, h, pid)["state"] == "RUNNING")
            sql(pg, pg_db, "UPDATE crash.counters SET n = n + 1 WHERE id <= 5")
            driver.get(f"{app.base}/pipelines/{pid}")  # a reload after Resume
            wait.until(lambda _d: "1,000 / 1,000 rows" in body() and "40 updated" in body())
            text = body()
            assert "PENDING" not in text and "0 / 0 rows" not in text, text
            assert "Full load: COMPLETED" in text and "crash.counters → crash.counters" in text
            assert "CDC: 0 inserted · 40 updated · 0 deleted, last " in text
            assert "pg_drop_replication_slot(" not in text  # read again: no warning
            # the run history: the full load's own row (1,000 rows), the paused CDC run, the running one
            assert "FULL_LOAD" in text and "PAUSED" in text
            badge = driver.find_element(By.XPATH, "//*[normalize-space()='RUNNING' and contains(@class, 'q-badge')]")
            assert "bg-green" in (badge.get_attribute("class") or "")
            tables = driver.find_element(By.XPATH, "//*[normalize-space()='Tables']")
            driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", tables)
            driver.save_screenshot(str(tmp_path / "pipeline-resumed.png"))
            shutil.copy(tmp_path / "pipeline-resumed.png", SHOTS / "pipeline-resumed.png")
            severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
            assert severe == [], severe
        finally:
            if driver is not None:
                driver.quit()
