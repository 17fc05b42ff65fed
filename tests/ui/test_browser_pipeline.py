"""The pipeline page after Pause and Resume, as a person sees it in headless Chromium: a real
FULL_LOAD_AND_CDC pipeline on the app as a process. Paused, the page warns that the slot holds WAL and how to
drop it; resumed, every table still shows its full-load result (never PENDING 0 / 0) next to its CDC figures,
and the cards are live. Screenshots are kept under var/screenshots/."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from tests.api.test_cdc_crash import crash_pipeline, sql, wait_until
from tests.appprocess import AppProcess
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.pgcluster import PgCluster
from tests.ui.test_browser_charts import SHOTS, _driver
from tests.ui.test_browser_smoke import CHROMEDRIVER, CHROMIUM


def _post(app: AppProcess, h: dict, pid: int, action: str) -> dict:
    r = httpx.post(f"{app.base}/api/v1/pipelines/{pid}/{action}", headers=h, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def _state(app: AppProcess, h: dict, pid: int) -> dict:
    return httpx.get(f"{app.base}/api/v1/pipelines/{pid}/status", headers=h, timeout=30).json()


@pytest.mark.browser
def test_the_pipeline_page_after_resume(pg: PgCluster, pg_db: str, tmp_path: Path) -> None:
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
    driver = None
    try:
        app.start()
        h = app.token()
        pid = crash_pipeline(app, h, pg, pg_db, target)
        _post(app, h, pid, "start")
        wait_until(lambda: _state(app, h, pid)["cdc_status"] == "RUNNING")
        sql(pg, pg_db, "UPDATE crash.counters SET n = n + 1 WHERE id <= 25")
        _post(app, h, pid, "pause")
        sql(pg, pg_db, "UPDATE crash.counters SET n = n + 1 WHERE id <= 10")  # WAL the paused slot holds

        driver = _driver()
        wait = WebDriverWait(driver, 40)
        driver.get(f"{app.base}/login")
        wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "input[type=text]"))).send_keys(ADMIN_EMAIL)
        driver.find_element(By.CSS_SELECTOR, "input[type=password]").send_keys(ADMIN_PASSWORD)
        driver.find_element(By.XPATH, "//button[.//*[normalize-space()='Log in']]").click()
        wait.until(ec.presence_of_element_located((By.XPATH, f"//*[contains(text(), '{ADMIN_EMAIL}')]")))
        driver.get(f"{app.base}/pipelines/{pid}")

        def body() -> str:
            return driver.find_element(By.TAG_NAME, "body").text

        wait.until(lambda _d: "pg_drop_replication_slot(" in body())
        paused = body()
        assert "PAUSED" in paused and "is not read: the source keeps" in paused
        SHOTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(SHOTS / "pipeline-paused.png"))

        _post(app, h, pid, "resume")
        wait_until(lambda: _state(app, h, pid)["state"] == "RUNNING")
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
        app.terminate()
        pg.drop_database(target)
    assert "Traceback" not in (tmp_path / "app.log").read_text(errors="replace")
