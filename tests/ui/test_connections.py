"""Connections through the UI against a real PostgreSQL cluster: create, test, discover, edit, delete."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from nicegui import ui
from nicegui.testing import User

from core import connections
from core.connections import ConnectionCreate, ConnectionUpdate
from core.security import Role
from tests.appprocess import AppProcess
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.pgcluster import PgCluster
from tests.ui.helpers import WAIT, admin_actor, all_text, eventually, login, make_user, set_value, table_rows


@pytest.fixture
def shop(pg: PgCluster, pg_db: str) -> str:
    """pg_db with customers (25 rows) and orders referencing them."""
    conn = pg.connect(pg_db)
    with conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, created_at timestamptz DEFAULT now());"
            "INSERT INTO customers (id, name) SELECT g, 'c' || g FROM generate_series(1, 25) g;"
            "CREATE TABLE orders (id serial PRIMARY KEY, customer_id int NOT NULL REFERENCES customers(id),"
            " total numeric(10,2));"
            "INSERT INTO orders (customer_id, total) SELECT 1 + g % 25, g FROM generate_series(1, 40) g;"
            "CREATE TABLE audit_note (msg text);"
            "ANALYZE;"  # catalog estimates, so the exact counts below have something to replace
        )
    conn.close()
    return pg_db


CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def save_connection(name: str, pg: PgCluster, database: str, password: str | None = None) -> int:
    """Create a connection through the service layer, as the admin; its id."""
    data = ConnectionCreate(
        name=name,
        kind="postgresql",
        host=pg.host,
        port=pg.port,
        database=database,
        username=pg.user,
        password=pg.password if password is None else password,
    )
    return connections.create_connection(admin_actor(), data).id


def fill_form(user: User, pg: PgCluster, name: str, database: str, password: str) -> None:
    user.find(marker="conn-name").type(name)
    user.find(marker="conn-host").type(pg.host)
    user.find(marker="conn-port").clear().type(str(pg.port))
    user.find(marker="conn-database").type(database)
    user.find(marker="conn-username").type(pg.user)
    user.find(marker="conn-password").type(password)


def element(user: User, marker: str) -> ui.element:
    (found,) = user.find(marker=marker).elements
    return found


async def test_create_test_discover_and_delete(app_env, pg: PgCluster, shop: str, user: User) -> None:
    await login(user)
    await user.open("/connections")
    await user.should_see(marker="connections-empty")
    user.find(marker="new-connection").click()
    await user.should_see(marker="connection-form-title")
    fill_form(user, pg, "warehouse", shop, pg.password)
    user.find(marker="conn-options").type("application_name=ui-test")
    user.find(marker="form-save").click()

    # saved: the page of the new connection opens, and the password is nowhere in it
    await user.should_see(marker="connection-name", retries=WAIT)
    await user.should_see("warehouse")
    assert pg.password not in all_text(user)
    (saved,) = connections.list_connections(admin_actor())
    assert saved.name == "warehouse" and saved.options == {"application_name": "ui-test"}

    # discovery opens the connection's database and its public schema
    rows = await eventually(lambda: table_rows(user, "tables-table"), timeout=30)
    by_name = {r["name"]: r for r in rows}
    assert set(by_name) == {"customers", "orders", "audit_note"}
    assert by_name["customers"]["row_count"] == 25 and not by_name["customers"]["row_count_exact"]
    assert by_name["orders"]["has_primary_key"] and not by_name["audit_note"]["has_primary_key"]
    assert shop in element(user, "db-select").options
    assert element(user, "db-select").value == shop
    assert element(user, "schema-select").value == "public"

    # test the connection: success in words, and a history row
    user.find(marker="test-connection").click()
    await user.should_see("Connected: PostgreSQL", retries=WAIT)
    assert re.search(r"\d+(\.\d)? ms round trip", element(user, "test-result").text)
    history = await eventually(lambda: table_rows(user, "test-history"))
    assert len(history) == 1 and history[0]["result"] == "ok"
    assert history[0]["time"].endswith("+00:00")  # an instant the browser shows in its own time zone

    # one table's detail: columns, primary key, foreign keys both ways
    user.find(marker="tables-table").trigger("rowClick", "public.orders")
    columns = await eventually(lambda: table_rows(user, "columns-table"))
    assert [c["name"] for c in columns] == ["id", "customer_id", "total"]
    assert {c["name"]: c["nullable"] for c in columns}["total"] == "yes"
    await user.should_see("Primary key: id")
    (fk,) = table_rows(user, "fk-table")
    assert fk["to"] == "public.customers(id)"
    user.find(marker="tables-table").trigger("rowClick", "public.customers")
    await eventually(lambda: table_rows(user, "referenced-by-table"))

    # an exact count of one table, then of all
    user.find(marker="tables-table").trigger("count", "public.orders")
    await user.should_see("public.orders: 40 rows", retries=WAIT)
    rows = {r["name"]: r for r in table_rows(user, "tables-table")}
    assert rows["orders"]["row_count_exact"] and not rows["customers"]["row_count_exact"]
    user.find(marker="tables-table").trigger("rowClick", "public.customers")
    await eventually(lambda: "(estimate)" in element(user, "detail-count").text)
    user.find(marker="exact-counts").click()
    await eventually(lambda: all(r["row_count_exact"] for r in table_rows(user, "tables-table")))
    await user.should_not_see(marker="discovery-spinner", retries=WAIT)
    # the open table's detail follows: an exact count is no longer called an estimate
    assert element(user, "detail-count").text.startswith("25 rows (exact)")
    await user.should_not_see(marker="exact-count")

    # dependencies: customers before orders
    set_value(user, "dep-tables", ["orders", "customers", "audit_note"])
    user.find(marker="dep-run").click()
    await user.should_see(marker="dep-level", retries=WAIT)
    levels = [
        [c.text for c in row.descendants() if isinstance(c, ui.chip)] for row in user.find(marker="dep-level").elements
    ]
    assert sorted(levels) == [["audit_note", "customers"], ["orders"]]

    # another database of the same server is browsable too
    set_value(user, "db-select", "postgres")
    await eventually(lambda: element(user, "schema-select").value == "public")
    await eventually(
        lambda: table_rows(user, "tables-table") == [] and "no tables" in element(user, "tables-summary").text
    )

    # back on the list the connection shows its last test; then delete it from its page
    await user.open("/connections")
    (row,) = await eventually(lambda: table_rows(user, "connections-table"))
    assert row["name"] == "warehouse" and row["endpoint"] == f"{pg.host}:{pg.port}" and row["test_status"] == "ok"
    await user.open(f"/connections/{saved.id}")
    user.find(marker="delete-connection").click()
    await user.should_see(marker="confirm-ok")
    user.find(marker="confirm-ok").click()
    await user.should_see(marker="connections-empty", retries=WAIT)
    assert connections.list_connections(admin_actor()) == []


async def test_failing_test_shows_the_reason_in_words(app_env, pg: PgCluster, pg_db: str, user: User) -> None:
    connection_id = save_connection("bad-password", pg, pg_db, password="wrong-password")
    await login(user)
    await user.open(f"/connections/{connection_id}")
    user.find(marker="test-connection").click()
    await user.should_see("password authentication failed", retries=WAIT)
    assert element(user, "test-result").text.startswith("Login failed:")
    assert "Traceback" not in all_text(user)
    (row,) = await eventually(lambda: table_rows(user, "test-history"))
    assert row["result"] == "failed" and "password authentication failed" in row["error"]
    # discovery says the same in words instead of showing tables
    await eventually(lambda: "Password authentication failed" in element(user, "discovery-error").text)
    await user.should_not_see(marker="tables-table")  # the reason only, not an empty table


async def test_duplicate_name_is_a_conflict_and_saves_nothing(app_env, pg: PgCluster, pg_db: str, user: User) -> None:
    save_connection("taken", pg, pg_db)
    await login(user)
    await user.open("/connections")
    user.find(marker="new-connection").click()
    fill_form(user, pg, "taken", pg_db, pg.password)
    user.find(marker="form-save").click()
    await user.should_see("A connection named 'taken' already exists", retries=WAIT)
    await user.should_see(marker="connection-form-title")  # the dialog stays open
    assert [c.name for c in connections.list_connections(admin_actor())] == ["taken"]


async def test_invalid_fields_are_named_and_nothing_is_saved(app_env, user: User) -> None:
    await login(user)
    await user.open("/connections")
    user.find(marker="new-connection").click()
    user.find(marker="conn-name").type("half-filled")
    user.find(marker="conn-options").type("sslmode=require\nno-equals-sign")
    user.find(marker="form-save").click()
    await user.should_see("Extra options: line 2 ('no-equals-sign') is not in the form key=value")
    user.find(marker="conn-options").clear()
    user.find(marker="form-save").click()
    await user.should_see("Host: is required")
    assert element(user, "conn-host").error == "is required"
    set_value(user, "conn-port", 70000)
    user.find(marker="form-save").click()
    await user.should_see("Port: must be at most 65535")
    assert connections.list_connections(admin_actor()) == []


async def test_switching_kind_changes_only_a_default_port(app_env, user: User) -> None:
    await login(user)
    await user.open("/connections")
    user.find(marker="new-connection").click()
    assert element(user, "conn-port").value == 5432
    set_value(user, "conn-kind", "sqlserver")
    assert element(user, "conn-port").value == 1433
    set_value(user, "conn-port", 1500)
    set_value(user, "conn-kind", "postgresql")
    assert element(user, "conn-port").value == 1500


async def test_edit_keeps_the_password_when_left_empty(app_env, pg: PgCluster, pg_db: str, user: User) -> None:
    connection_id = save_connection("to-edit", pg, pg_db)
    await login(user)
    await user.open(f"/connections/{connection_id}")
    user.find(marker="edit-connection").click()
    await user.should_see(marker="connection-form-title")
    assert element(user, "conn-password").value in ("", None)
    assert element(user, "conn-name").value == "to-edit"
    user.find(marker="conn-name").clear().type("edited")
    user.find(marker="conn-schema").type("public")
    user.find(marker="form-save").click()
    await user.should_see("Saved connection edited", retries=WAIT)
    await eventually(lambda: element(user, "connection-name").text == "edited")
    connector = connections.connector_for(admin_actor(), connection_id)
    assert connector.spec.password == pg.password and connector.spec.schema == "public"
    assert pg.password not in all_text(user)


async def test_viewer_sees_connections_read_only(app_env, pg: PgCluster, pg_db: str, user: User) -> None:
    connection_id = save_connection("shared", pg, pg_db)
    make_user("viewer@example.com", "viewer-pass-1", Role.viewer)
    await login(user, "viewer@example.com", "viewer-pass-1")
    await user.open("/connections")
    (row,) = await eventually(lambda: table_rows(user, "connections-table"))
    assert row["name"] == "shared"
    (table,) = [e for e in user.find(marker="connections-table").elements if isinstance(e, ui.table)]
    assert "actions" not in [c["name"] for c in table.columns]
    await user.should_not_see(marker="new-connection")
    await user.open(f"/connections/{connection_id}")
    await user.should_see(marker="connection-name")
    # Test writes the test history; read-only means no writes, so no button that would.
    await user.should_not_see(marker="test-connection")
    await user.should_not_see(marker="edit-connection")
    await user.should_not_see(marker="delete-connection")
    await user.should_not_see("Users")  # the nav hides the admin page
    # what a viewer can press on the page only reads: discovery, exact counts, load order
    await eventually(lambda: table_rows(user, "tables-table") == [] and element(user, "schema-select").value)
    pressable = {
        str(b.props.get("label") or b.text or "")
        for b in user.current_layout.descendants()
        if isinstance(b, ui.button) and b.visible
    }
    assert pressable <= {"Refresh", "Exact counts", "All", "Show load order", "Check again", ""}, pressable
    assert "Not tested yet" in repr(element(user, "test-history").props) and "press Test" not in repr(
        element(user, "test-history").props
    )


async def test_unknown_connection_says_so(app_env, user: User) -> None:
    await login(user)
    await user.open("/connections/999")
    await user.should_see("Connection 999 not found")


async def test_discovery_opens_the_schema_where_the_data_is(app_env, pg: PgCluster, pg_db: str, user: User) -> None:
    conn = pg.connect(pg_db)
    with conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE public.tiny (id int PRIMARY KEY);"
            "CREATE SCHEMA sales; CREATE TABLE sales.orders (id int PRIMARY KEY, note text);"
            "INSERT INTO sales.orders SELECT g, repeat('x', 100) FROM generate_series(1, 2000) g;"
            "CREATE SCHEMA archive; CREATE TABLE archive.old (id int);"
        )
    conn.close()
    await login(user)
    plain_id = save_connection("plain", pg, pg_db)
    await user.open(f"/connections/{plain_id}")
    # no default schema: the largest one (sales), not public
    await eventually(lambda: element(user, "schema-select").value == "sales", timeout=30)
    assert [r["name"] for r in await eventually(lambda: table_rows(user, "tables-table"))] == ["orders"]
    assert "sales (1 table · " in element(user, "schema-select").options["sales"]
    # a connection's default schema wins, even when it is small
    data = connections.get_connection(admin_actor(), plain_id)
    assert data.schema_ is None
    connections.update_connection(admin_actor(), plain_id, ConnectionUpdate(schema="archive"))
    await user.open(f"/connections/{plain_id}")
    await eventually(lambda: element(user, "schema-select").value == "archive", timeout=30)
    assert [r["name"] for r in await eventually(lambda: table_rows(user, "tables-table"))] == ["old"]


async def test_form_tests_entered_values_without_saving(app_env, pg: PgCluster, pg_db: str, user: User) -> None:
    await login(user)
    await user.open("/connections")
    user.find(marker="new-connection").click()
    await user.should_see(marker="connection-form-title")
    fill_form(user, pg, "draft", pg_db, "wrong-password")
    user.find(marker="form-test").click()
    await eventually(lambda: "Login failed: password authentication failed" in element(user, "form-test-result").text)
    assert "wrong-password" not in element(user, "form-test-result").text
    user.find(marker="conn-password").clear().type(pg.password)
    user.find(marker="form-test").click()
    await eventually(lambda: element(user, "form-test-result").text.startswith("Connected: PostgreSQL"))
    assert re.search(r"\d+(\.\d)? ms round trip", element(user, "form-test-result").text)
    await user.should_see(marker="connection-form-title")  # still open, and nothing saved
    assert connections.list_connections(admin_actor()) == []
    user.find(marker="conn-host").clear()
    user.find(marker="form-test").click()
    await user.should_see("Host: is required")

    # editing: an empty password field tests the stored password; the saved connection's history stays empty
    connection_id = save_connection("saved", pg, pg_db)
    await user.open(f"/connections/{connection_id}")
    user.find(marker="edit-connection").click()
    await user.should_see(marker="connection-form-title")
    user.find(marker="form-test").click()
    await eventually(lambda: element(user, "form-test-result").text.startswith("Connected: PostgreSQL"))
    assert connections.test_history(admin_actor(), connection_id) == []


async def test_readiness_checklist_on_the_connection_page(app_env, pg: PgCluster, pg_db: str, user: User) -> None:
    conn = pg.connect(pg_db)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE keyed (id int PRIMARY KEY); CREATE TABLE loose (msg text)")
    conn.close()
    connection_id = save_connection("cdc-source", pg, pg_db)
    await login(user)
    await user.open(f"/connections/{connection_id}")
    await eventually(lambda: element(user, "readiness-summary").text.startswith("Ready for CDC, with 2 warning"))
    for key in ("wal_level", "replication", "slots", "wal_senders"):
        await user.should_see(marker=f"readiness-{key}")
    texts = {
        key: " ".join(str(getattr(e, "text", "")) for e in element(user, f"readiness-{key}").descendants())
        for key in ("wal_level", "slot_wal_keep", "primary_keys")
    }
    assert "ok" in texts["wal_level"] and "wal_level is logical" in texts["wal_level"]
    assert (
        "warning" in texts["slot_wal_keep"] and "Fix: ALTER SYSTEM SET max_slot_wal_keep_size" in texts["slot_wal_keep"]
    )
    assert "public.loose" in texts["primary_keys"] and "Fix: ALTER TABLE" in texts["primary_keys"]
    # fixing a table and checking again: one warning less
    conn = pg.connect(pg_db)
    with conn.cursor() as cur:
        cur.execute("ALTER TABLE loose REPLICA IDENTITY FULL")
    conn.close()
    user.find(marker="readiness-refresh").click()
    await eventually(lambda: element(user, "readiness-summary").text == "Ready for CDC, with 1 warning(s)")


@pytest.mark.browser
def test_connection_page_in_chromium(pg: PgCluster, pg_db: str, tmp_path: Path) -> None:
    """What a person sees: the readiness checklist with its fixes, the form's inline test, the password dialog."""
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("chromium and chromedriver are not installed (scripts/setup-system installs them)")
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    conn = pg.connect(pg_db)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE keyed (id int PRIMARY KEY); CREATE TABLE loose (msg text)")
    conn.close()
    shots = Path(__file__).resolve().parents[2] / "var" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    app = AppProcess(tmp_path / "data", tmp_path / "app.log")
    app.start()
    driver = _chromium()
    try:
        body = {"name": "shop", "kind": "postgresql", "host": pg.host, "port": pg.port, "database": pg_db}
        body |= {"username": pg.user, "password": pg.password}
        cid = httpx.post(f"{app.base}/api/v1/connections", headers=app.token(), json=body).json()["id"]
        wait = WebDriverWait(driver, 30)
        driver.get(f"{app.base}/login")
        wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "input[type=text]"))).send_keys(ADMIN_EMAIL)
        driver.find_element(By.CSS_SELECTOR, "input[type=password]").send_keys(ADMIN_PASSWORD)
        driver.find_element(By.XPATH, "//button[.//*[normalize-space()='Log in']]").click()
        wait.until(ec.presence_of_element_located((By.XPATH, f"//*[contains(text(), '{ADMIN_EMAIL} (admin)')]")))

        driver.get(f"{app.base}/connections/{cid}")
        summary = "//*[normalize-space()='Ready for CDC, with 2 warning(s)']"
        wait.until(ec.visibility_of_element_located((By.XPATH, summary)))
        wait.until(ec.visibility_of_element_located((By.XPATH, "//td[normalize-space()='keyed']")))
        text = driver.find_element(By.TAG_NAME, "body").text
        for shown in ("wal_level is logical", "REPLICATION attribute", "of 20 free", "public.loose", "Fix: ALTER"):
            assert shown in text, shown
        card = driver.find_element(By.XPATH, "//*[normalize-space()='CDC readiness']")
        driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", card)
        driver.save_screenshot(str(shots / "connection-readiness.png"))
        driver.execute_script("window.scrollTo(0, 0)")  # the fixed header would cover the Edit button

        # the edit form tests the stored values in place, inline
        driver.find_element(By.XPATH, "//button[.//*[normalize-space()='Edit']]").click()
        wait.until(ec.visibility_of_element_located((By.XPATH, "//button[.//*[normalize-space()='Save']]")))
        test = driver.find_element(
            By.XPATH, "//div[contains(@class,'q-dialog')]//button[.//*[normalize-space()='Test']]"
        )
        driver.execute_script("arguments[0].click()", test)  # not by position: the dialog may still be opening
        wait.until(
            ec.visibility_of_element_located((By.XPATH, "//*[starts-with(normalize-space(), 'Connected: PostgreSQL')]"))
        )
        driver.save_screenshot(str(shots / "connection-form-test.png"))
        driver.find_element(By.XPATH, "//button[.//*[normalize-space()='Cancel']]").click()

        # the account menu's Change password opens a dialog that stays open after the menu closes
        driver.find_element(By.XPATH, f"//button[.//*[contains(text(), '{ADMIN_EMAIL}')]]").click()
        wait.until(ec.element_to_be_clickable((By.XPATH, "//*[normalize-space()='Change password']"))).click()
        wait.until(ec.visibility_of_element_located((By.XPATH, "//*[normalize-space()='Change your password']")))
        assert driver.find_element(By.XPATH, "//*[normalize-space()='Change your password']").is_displayed()
        driver.save_screenshot(str(shots / "change-password.png"))
        severe = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        assert severe == [], severe
    except TimeoutException as exc:  # say what the page showed instead of a bare chromedriver stack
        driver.save_screenshot(str(shots / "connection-page-failed.png"))
        shown = driver.find_element(By.TAG_NAME, "body").text
        raise AssertionError(f"timed out on {driver.current_url}; the page showed:\n{shown}") from exc
    finally:
        driver.quit()
        app.terminate()
    assert "Traceback" not in (tmp_path / "app.log").read_text(errors="replace")


def _chromium():  # noqa: ANN202 - selenium is imported only where a browser test runs
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1440,900"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
