"""The data quality block as a person sees it in headless Chromium (#16): a streaming FULL_LOAD_AND_CDC pipeline
on the app as a process, a row tampered with on the target, "Validate data" pressed in the page; the table turns
MISMATCHED and the row shows source and target side by side; a column added on the source then shows in the
schema history (screenshots under var/screenshots/)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.api.test_cdc_crash import sql, wait_until
from tests.pgcluster import PgCluster
from tests.ui.browser_app import streaming_app
from tests.ui.test_browser_journey import SHOTS, _driver, _login


@pytest.mark.browser
def test_validate_from_the_pipeline_page(pg: PgCluster, pg_db: str, tmp_path: Path) -> None:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver = None
    with streaming_app(pg, pg_db, tmp_path, CDC_STUDIO_VALIDATION_RECHECK_S="1") as (app, h, pid):
        try:
            sql(pg, pg_db, "UPDATE crash.counters SET n = n + 1 WHERE id <= 25")  # changes flow meanwhile
            sql(pg, pg_db + "_tgt", "UPDATE crash.counters SET n = 777 WHERE id = 500")

            driver = _driver()
            wait = WebDriverWait(driver, 60)
            _login(driver, app.base)
            driver.get(f"{app.base}/pipelines/{pid}")
            wait.until(ec.visibility_of_element_located((By.XPATH, "//*[normalize-space()='Never validated.']")))
            button = driver.find_element(By.XPATH, "//button[.//*[normalize-space()='Validate data']]")
            driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
            button.click()
            try:
                wait.until(
                    ec.visibility_of_element_located((By.XPATH, "//*[normalize-space()='Rows that differ (1)']"))
                )
            except TimeoutException as exc:
                shown = driver.find_element(By.TAG_NAME, "body").text
                raise AssertionError(f"no mismatch shown; the page showed:\n{shown}") from exc
            text = driver.find_element(By.TAG_NAME, "body").text
            assert "MISMATCHED" in text and "id=500" in text and "777" in text
            section = driver.find_element(By.XPATH, "//*[normalize-space()='Data quality']")
            driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", section)
            SHOTS.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(SHOTS / "data-quality.png"))
            # A column added on the source shows in the schema history on the same block (after the catalog scan).
            sql(pg, pg_db, "ALTER TABLE crash.counters ADD COLUMN note text")
            history = f"{app.base}/api/v1/pipelines/{pid}/schema/history"
            wait_until(lambda: httpx.get(history, headers=h, timeout=30).json() != [], timeout=60)
            driver.get(f"{app.base}/pipelines/{pid}")
            try:
                wait.until(
                    ec.visibility_of_element_located((By.XPATH, "//td[normalize-space()='column note text added']"))
                )
            except TimeoutException as exc:
                shown = driver.find_element(By.TAG_NAME, "body").text
                raise AssertionError(f"no schema history shown; the page showed:\n{shown}") from exc
            text = driver.find_element(By.TAG_NAME, "body").text
            assert "Schema history" in text and "propagate_columns" in text and "added column note" in text, text
            table = driver.find_element(By.XPATH, "//*[normalize-space()='Schema history']")
            driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", table)
            driver.save_screenshot(str(SHOTS / "schema-history.png"))
            severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
            assert severe == [], severe
        finally:
            if driver is not None:
                driver.quit()
