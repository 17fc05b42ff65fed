"""Pipelines through the UI against real PostgreSQL: the wizard, Start, live progress, history."""

from __future__ import annotations

import pytest
from nicegui import ui
from nicegui.testing import User

from core import pipelines
from core.pipeline_schemas import PipelineCreate
from core.security import Role
from tests.pgcluster import PgCluster
from tests.ui.helpers import WAIT, admin_actor, eventually, login, make_user, table_rows
from tests.ui.test_connections import save_connection


@pytest.fixture
def dbs(pg: PgCluster, pg_db: str):
    """A source database (pg_db) with a 'crm' schema, and an empty target database."""
    conn = pg.connect(pg_db)
    with conn.cursor() as cur:
        cur.execute(
            "CREATE SCHEMA crm;"
            "CREATE TABLE crm.accounts (id int PRIMARY KEY, name text);"
            "INSERT INTO crm.accounts SELECT g, 'a' || g FROM generate_series(1, 300) g;"
            "CREATE TABLE crm.contacts (id int PRIMARY KEY, account_id int REFERENCES crm.accounts,"
            " email text);"
            "INSERT INTO crm.contacts SELECT g, 1 + g % 300, g || '@x.io' FROM generate_series(1, 900) g;"
            "CREATE TABLE crm.tmp_scratch (id int PRIMARY KEY);"
        )
    conn.close()
    target = pg_db + "_tgt"
    pg.create_database(target)
    yield pg_db, target
    pg.drop_database(target)


def one(user: User, marker: str) -> ui.element:
    (found,) = user.find(marker=marker).elements
    return found


async def test_wizard_creates_a_pipeline_from_discovery(app_env, user: User, pg: PgCluster, dbs) -> None:
    source_db, target_db = dbs
    src = save_connection("crm-src", pg, "postgres")  # discovery must still offer source_db
    tgt = save_connection("crm-tgt", pg, target_db)
    await login(user)
    await user.open("/pipelines/new")
    await user.should_see(marker="p-name", retries=WAIT)
    one(user, "p-name").value = "crm copy"
    one(user, "p-source").value = src
    db_select = one(user, "p-source-db")
    await eventually(lambda: source_db in db_select.options)
    assert db_select.value == "postgres"  # the connection's database is the default choice
    db_select.value = source_db
    schema_select = one(user, "p-source-schema")
    await eventually(lambda: "crm" in schema_select.options)
    await eventually(lambda: schema_select.value == "crm")  # opened where the data is, not on public
    tables = one(user, "p-tables")
    await eventually(lambda: {r["name"] for r in tables.rows} == {"accounts", "contacts", "tmp_scratch"})
    assert {r["name"]: r["rows"] for r in tables.rows}["contacts"] == "900"
    one(user, "p-target").value = tgt
    target_db_select = one(user, "p-target-db")
    await eventually(lambda: target_db_select.value == target_db)
    target_schema = one(user, "p-target-schema")
    await eventually(lambda: target_schema.value == "crm")  # proposed from the source schema
    tables.selected = [r for r in tables.rows if r["name"] == "accounts"]
    one(user, "p-patterns").value = "cont*"
    user.find(marker="p-preview").click()
    preview = one(user, "p-preview-table")
    await eventually(lambda: len(preview.rows) == 2)
    assert {r["target"]: r["status"] for r in preview.rows} == {
        "crm.accounts": "will be created",
        "crm.contacts": "will be created",
    }
    # The Debezium engine needs a Kafka Connect cluster; without one the form says so and does not take it.
    one(user, "p-mode").value = "CDC_ONLY"
    assert "KAFKA_CONNECT_URL" in one(user, "p-engine-note").text
    one(user, "p-engine").value = "kafka_connect"
    await eventually(lambda: one(user, "p-engine").value == "embedded")
    await user.should_not_see(marker="p-sink")
    error = one(user, "p-error")
    one(user, "p-mode").value = "FULL_LOAD_ONLY"
    one(user, "p-engine").value = "embedded"
    await user.should_not_see(marker="p-sink")
    one(user, "p-schedule").value = "not a cron"
    user.find(marker="p-create").click()
    await eventually(lambda: "cron" in error.text)
    assert pipelines.list_pipelines(admin_actor()) == []  # nothing half-saved
    one(user, "p-schedule").value = "0 3 * * *"
    user.find(marker="p-create").click()
    await user.should_see(marker="pipeline-state", retries=WAIT)
    (created,) = pipelines.list_pipelines(admin_actor())
    assert (created.source_database, created.source_schema, created.target_database, created.target_schema) == (
        source_db,
        "crm",
        target_db,
        "crm",
    )
    assert created.tables == ["accounts", "cont*"] and created.schedule == "0 3 * * *"
    assert created.next_run_at is not None


async def test_start_shows_live_progress_and_history(app_env, user: User, pg: PgCluster, dbs) -> None:
    source_db, target_db = dbs
    src = save_connection("s", pg, source_db)
    tgt = save_connection("t", pg, target_db)
    p = pipelines.create_pipeline(
        admin_actor(),
        PipelineCreate(
            name="crm",
            source_connection_id=src,
            target_connection_id=tgt,
            source_schema="crm",
            target_schema="copy",
            tables=["*"],
            exclude=["tmp_*"],
        ),
    )
    await login(user)
    await user.open(f"/pipelines/{p.id}")
    await user.should_see(marker="start", retries=WAIT)
    diff = one(user, "diff-table")
    await eventually(lambda: {r["status"] for r in diff.rows} == {"will be created"})
    user.find(marker="start").click()
    state = one(user, "pipeline-state")
    await eventually(lambda: state.text == "STOPPED", timeout=60)
    runs = await eventually(lambda: [r for r in table_rows(user, "runs-table") if r["status"] == "COMPLETED"])
    assert runs[0]["rows"] == "1,200"
    await user.should_see("copy.contacts", retries=WAIT)
    await user.should_see("900 / 900 rows", retries=WAIT)


async def test_viewer_cannot_start_or_create(app_env, user: User, pg: PgCluster, dbs) -> None:
    source_db, target_db = dbs
    src = save_connection("s", pg, source_db)
    tgt = save_connection("t", pg, target_db)
    p = pipelines.create_pipeline(
        admin_actor(),
        PipelineCreate(
            name="crm",
            source_connection_id=src,
            target_connection_id=tgt,
            source_schema="crm",
            target_schema="crm",
            tables=["accounts"],
        ),
    )
    make_user("v@example.com", "viewer-pass-1", Role.viewer)
    await login(user, "v@example.com", "viewer-pass-1")
    await user.open("/pipelines")
    await user.should_see("Pipelines", retries=WAIT)
    await user.should_not_see(marker="new-pipeline")
    await eventually(lambda: [r["name"] for r in table_rows(user, "pipelines-table")] == ["crm"])
    await user.open(f"/pipelines/{p.id}")
    await user.should_see(marker="pipeline-state", retries=WAIT)
    await user.should_not_see(marker="start")
    await user.should_not_see(marker="stop")
    await user.should_not_see(marker="delete")
    await user.open("/pipelines/new")
    await user.should_see("You need the editor or admin role", retries=WAIT)


async def test_cdc_pipeline_page_shows_live_counts_and_pauses(app_env, user: User, pg: PgCluster, dbs) -> None:
    source_db, target_db = dbs
    src = save_connection("s", pg, source_db)
    tgt = save_connection("t", pg, target_db)
    p = pipelines.create_pipeline(
        admin_actor(),
        PipelineCreate(
            name="crm cdc",
            source_connection_id=src,
            target_connection_id=tgt,
            source_schema="crm",
            target_schema="crm",
            tables=["accounts"],
            mode="CDC_ONLY",
        ),
    )
    await login(user)
    await user.open(f"/pipelines/{p.id}")
    await user.should_see(marker="cdc-counts", retries=WAIT)
    user.find(marker="start").click()
    state = one(user, "pipeline-state")
    await eventually(lambda: state.text == "RUNNING", timeout=30)
    conn = pg.connect(source_db)
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO crm.accounts SELECT g, 'new' FROM generate_series(1001, 1003) g;"
            "UPDATE crm.accounts SET name = 'changed' WHERE id = 1; DELETE FROM crm.accounts WHERE id = 1003"
        )
    conn.close()
    counts = one(user, "cdc-counts")
    await eventually(lambda: counts.text == "3 · 1 · 1", timeout=30)
    user.find(marker="pause").click()
    await user.should_see(marker="confirm-ok", retries=WAIT)  # Pause asks first
    user.find(marker="confirm-ok").click()
    await eventually(lambda: state.text == "PAUSED", timeout=30)
    user.find(marker="resume").click()
    await eventually(lambda: state.text == "RUNNING", timeout=30)
    user.find(marker="stop").click()
    await user.should_see(marker="confirm-ok", retries=WAIT)  # so does Stop
    user.find(marker="confirm-ok").click()
    await eventually(lambda: state.text == "STOPPED", timeout=30)
    pipelines.delete_pipeline(admin_actor(), p.id)


async def test_a_failed_table_is_shown_degraded_and_retried_from_the_page(
    app_env, user: User, pg: PgCluster, dbs
) -> None:
    source_db, target_db = dbs
    conn = pg.connect(target_db)
    with conn.cursor() as cur:  # the target refuses contacts' rows: that table fails, accounts streams
        cur.execute(
            "CREATE SCHEMA copy; CREATE TABLE copy.contacts (id int PRIMARY KEY, account_id int, email text "
            "CONSTRAINT short CHECK (length(email) < 5))"
        )
    conn.close()
    src = save_connection("s", pg, source_db)
    tgt = save_connection("t", pg, target_db)
    p = pipelines.create_pipeline(
        admin_actor(),
        PipelineCreate(
            name="crm cdc",
            source_connection_id=src,
            target_connection_id=tgt,
            source_schema="crm",
            target_schema="copy",
            tables=["accounts", "contacts"],
            mode="FULL_LOAD_AND_CDC",
        ),
    )
    await login(user)
    await user.open(f"/pipelines/{p.id}")
    await user.should_see(marker="start", retries=WAIT)
    user.find(marker="start").click()
    state = one(user, "pipeline-state")
    await eventually(lambda: state.text == "RUNNING", timeout=60)
    await eventually(lambda: one(user, "retry-crm.contacts").visible, timeout=30)
    await user.should_see(marker="pipeline-health", retries=WAIT)
    assert "crm.contacts" in one(user, "pipeline-health").text
    await user.should_not_see(marker="retry-crm.accounts")
    conn = pg.connect(target_db)
    with conn.cursor() as cur:
        cur.execute("ALTER TABLE copy.contacts DROP CONSTRAINT short")
    conn.close()
    user.find(marker="retry-crm.contacts").click()
    await user.should_see("900 / 900 rows", retries=WAIT * 3)
    await user.should_not_see(marker="pipeline-health", retries=WAIT)
    await eventually(lambda: state.text == "RUNNING")  # the restart around the reload may still be ending
    pipelines.delete_pipeline(admin_actor(), p.id)
