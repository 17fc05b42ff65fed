"""The pipeline page and the wizard along a data engineer's journey (issue #17): every table keeps its full-load
result across Pause/Resume and a reload, with its CDC figures; the cards stay live while paused; the diff and the
run history follow what happened; Edit, confirmations, the delete dialog; the wizard's inline feedback."""

from __future__ import annotations

from nicegui import ui
from nicegui.testing import User

from components.table_progress import TableProgressList
from core import pipelines
from core.pipeline_schemas import PipelineCreate
from tests.pgcluster import PgCluster
from tests.ui.helpers import WAIT, admin_actor, eventually, login, table_rows
from tests.ui.test_connections import save_connection
from tests.ui.test_pipelines import dbs, one  # noqa: F401 - dbs is the fixture


def run_sql(pg: PgCluster, db: str, sql: str) -> None:
    conn = pg.connect(db)
    with conn.cursor() as cur:
        cur.execute(sql)
    conn.close()


def marked(user: User, marker: str) -> ui.element:
    """The one element with this marker, shown or hidden (user.find sees only the shown ones)."""
    (found,) = [e for e in user.current_layout.descendants() if marker in e._markers]
    return found


def tables_list(user: User) -> TableProgressList:
    (found,) = [e for e in user.current_layout.descendants() if isinstance(e, TableProgressList)]
    return found


async def confirm_with(user: User, marker: str, words: str) -> None:
    """Click a button that asks first; the question must say `words`; answer yes."""
    user.find(marker=marker).click()
    await user.should_see(marker="confirm-message", retries=WAIT)
    assert words in one(user, "confirm-message").text
    user.find(marker="confirm-ok").click()


def create(pg: PgCluster, source_db: str, target_db: str, mode: str, tables: list[str]) -> int:
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
            tables=tables,
            mode=mode,
        ),
    )
    return p.id


async def test_resume_keeps_the_full_load_result_and_the_page_stays_live(
    app_env,
    user: User,
    pg: PgCluster,
    dbs,  # noqa: F811
) -> None:
    source_db, target_db = dbs
    pid = create(pg, source_db, target_db, "FULL_LOAD_AND_CDC", ["accounts", "contacts"])
    slot = pipelines.get_pipeline(admin_actor(), pid).slot_name
    await login(user)
    await user.open(f"/pipelines/{pid}")
    await user.should_see(marker="back-to-pipelines", retries=WAIT)
    diff = one(user, "diff-table")
    await eventually(lambda: {r["status"] for r in diff.rows} == {"will be created"})
    user.find(marker="start").click()
    state = one(user, "pipeline-state")
    await eventually(lambda: state.text == "RUNNING", timeout=60)
    assert "green" in state.props["color"]
    # the diff follows reality: the run created the tables
    await eventually(lambda: {r["status"] for r in diff.rows} == {"exists, same columns"}, timeout=30)
    # the full load has its own row in the history, with its rows; the CDC run counts live
    await eventually(
        lambda: (
            [(r["status"], r["rows"]) for r in table_rows(user, "runs-table") if r["run_type"] == "FULL_LOAD"]
            == [("COMPLETED", "1,200")]
        )
    )
    run_sql(
        pg,
        source_db,
        "INSERT INTO crm.accounts SELECT g, 'new' FROM generate_series(1001, 1003) g;"
        "UPDATE crm.accounts SET name = 'x' WHERE id = 2; DELETE FROM crm.accounts WHERE id = 1003",
    )
    rows = tables_list(user)
    await eventually(
        lambda: "3 inserted · 1 updated · 1 deleted, last " in rows.texts("crm.accounts")["changes"], timeout=30
    )
    await eventually(
        lambda: any(
            r["run_type"] == "CDC" and r["status"] == "RUNNING" and r["rows"] == "5"
            for r in table_rows(user, "runs-table")
        ),
        timeout=30,
    )
    await confirm_with(user, "pause", "Pause pipeline 'crm'?")
    await eventually(lambda: state.text == "PAUSED", timeout=30)
    assert "amber" in state.props["color"]
    # paused: 0 events/s, the lag grows with the source's changes, and a warning says what the slot costs
    await eventually(lambda: one(user, "cdc-rate").text == "0.0", timeout=15)
    warning = marked(user, "cdc-slot-warning")
    await eventually(lambda: warning.visible, timeout=15)
    assert f"pg_drop_replication_slot('{slot}')" in warning.text and "PAUSED" in warning.text
    before = one(user, "cdc-lag").text
    run_sql(pg, source_db, "INSERT INTO crm.contacts SELECT g, 1, 'p' FROM generate_series(5001, 9000) g")
    await eventually(lambda: one(user, "cdc-lag").text != before, timeout=15)
    await eventually(
        lambda: any(r["run_type"] == "CDC" and r["status"] == "PAUSED" for r in table_rows(user, "runs-table"))
    )
    user.find(marker="resume").click()
    await eventually(lambda: state.text == "RUNNING", timeout=30)
    await eventually(lambda: not warning.visible, timeout=15)
    for page in ("same page", "reloaded"):
        if page == "reloaded":
            await user.open(f"/pipelines/{pid}")
            await user.should_see(marker="pipeline-state", retries=WAIT)
        rows = tables_list(user)
        await eventually(lambda r=rows: r.texts("crm.accounts")["rows"].startswith("300 / 300 rows"))
        assert rows.texts("crm.accounts")["badge"] == "COMPLETED", page
        assert rows.texts("crm.contacts")["badge"] == "COMPLETED", page
        assert rows.texts("crm.contacts")["rows"].startswith("900 / 900 rows"), page
        # the CDC line is read after the page opens (a worker thread; slow on a busy machine)
        await eventually(lambda r=rows: "3 inserted" in r.texts("crm.accounts")["changes"], timeout=20)
        assert one(user, "full-load-status").text == "Full load: COMPLETED"
    await confirm_with(user, "stop", "Stop pipeline 'crm'?")
    await eventually(lambda: one(user, "pipeline-state").text == "STOPPED", timeout=30)
    await eventually(lambda: rows.texts("crm.contacts")["changes"].startswith("CDC: 4,000 inserted"), timeout=30)
    assert rows.texts("crm.contacts")["badge"] == "COMPLETED"
    pipelines.delete_pipeline(admin_actor(), pid)


async def test_cdc_only_says_there_is_no_full_load(app_env, user: User, pg: PgCluster, dbs) -> None:  # noqa: F811
    source_db, target_db = dbs
    pid = create(pg, source_db, target_db, "CDC_ONLY", ["accounts"])
    await login(user)
    await user.open(f"/pipelines/{pid}")
    await user.should_see(marker="full-load-status", retries=WAIT)
    text = one(user, "full-load-status").text
    assert "none in this mode" in text and "NOT_STARTED" not in text
    user.find(marker="start").click()
    await eventually(lambda: one(user, "pipeline-state").text == "RUNNING", timeout=60)
    rows = tables_list(user)
    await eventually(lambda: rows.texts("crm.accounts")["badge"] == "STREAMING", timeout=30)
    assert rows.texts("crm.accounts")["rows"] == "no full load (CDC only)"
    await confirm_with(user, "stop", "Stop pipeline 'crm'?")
    await eventually(lambda: one(user, "pipeline-state").text == "STOPPED", timeout=30)
    assert "grey" in one(user, "pipeline-state").props["color"]
    warning = marked(user, "cdc-slot-warning")
    await eventually(lambda: warning.visible, timeout=15)
    assert "STOPPED" in warning.text
    # the delete dialog says what goes on the source; cancelling keeps the pipeline
    user.find(marker="delete").click()
    await user.should_see(marker="confirm-message", retries=WAIT)
    slot = pipelines.get_pipeline(admin_actor(), pid).slot_name
    message = one(user, "confirm-message").text
    assert f"replication slot {slot}" in message and f"publication {slot}" in message
    user.find(marker="confirm-cancel").click()
    await user.should_not_see(marker="confirm-message", retries=WAIT)
    assert pipelines.get_pipeline(admin_actor(), pid).name == "crm"
    pipelines.delete_pipeline(admin_actor(), pid)


async def test_edit_from_the_pipeline_page(app_env, user: User, pg: PgCluster, dbs) -> None:  # noqa: F811
    source_db, target_db = dbs
    pid = create(pg, source_db, target_db, "FULL_LOAD_ONLY", ["accounts"])
    await login(user)
    await user.open(f"/pipelines/{pid}")
    await user.should_see(marker="edit", retries=WAIT)
    user.find(marker="edit").click()
    await user.should_see(marker="e-name", retries=WAIT)
    one(user, "e-tables").value = " , "  # no tables left: refused with the field, nothing saved
    user.find(marker="e-save").click()
    await user.should_see("Edit: tables", retries=WAIT)
    assert pipelines.get_pipeline(admin_actor(), pid).tables == ["accounts"]
    await user.should_not_see(marker="e-name", retries=WAIT)
    user.find(marker="edit").click()
    await user.should_see(marker="e-name", retries=WAIT)
    one(user, "e-name").value = ""
    user.find(marker="e-save").click()  # an empty name is refused inline: the dialog stays
    await user.should_see(marker="e-name")
    one(user, "e-name").value = "crm nightly"
    one(user, "e-description").value = "accounts and contacts, every night"
    one(user, "e-schedule").value = "0 2 * * *"
    one(user, "e-tables").value = "accounts, contacts"
    one(user, "e-on-table-error").value = "stop"
    user.find(marker="e-save").click()
    await eventually(lambda: one(user, "pipeline-name").text == "crm nightly")
    assert one(user, "pipeline-description").text == "accounts and contacts, every night"
    assert "0 2 * * *" in one(user, "pipeline-schedule").text
    stored = pipelines.get_pipeline(admin_actor(), pid)
    assert (stored.name, stored.tables, stored.on_table_error) == ("crm nightly", ["accounts", "contacts"], "stop")
    diff = one(user, "diff-table")
    await eventually(lambda: {r["source"] for r in diff.rows} == {"crm.accounts", "crm.contacts"})


async def test_the_wizard_says_what_it_will_do(app_env, user: User, pg: PgCluster, dbs) -> None:  # noqa: F811
    source_db, _target_db = dbs
    src = save_connection("crm-src", pg, source_db)
    save_connection("crm-tgt", pg, _target_db)
    await login(user)
    await user.open("/pipelines/new")
    await user.should_see(marker="p-name", retries=WAIT)
    name = one(user, "p-name")
    name.value = "x"
    name.value = ""
    await eventually(lambda: name.error == "Give the pipeline a name")
    one(user, "p-source").value = src
    schema = one(user, "p-source-schema")
    await eventually(lambda: "crm" in schema.options)
    schema.value = "crm"
    tables = one(user, "p-tables")
    await eventually(lambda: len(tables.rows) == 3)
    one(user, "p-patterns").value = "acc*, cont*"
    matches = one(user, "p-matches")
    await eventually(lambda: matches.text == "Selected 2 table(s): accounts, contacts")
    one(user, "p-exclude").value = "cont*"
    await eventually(lambda: matches.text == "Selected 1 table(s): accounts")
    one(user, "p-patterns").value = "nothing_*"
    await eventually(lambda: matches.text.startswith("✖ no source table matches nothing_*"))
    mode = one(user, "p-mode")
    assert isinstance(mode, ui.select)
    assert mode.options["FULL_LOAD_AND_CDC"] == "Full load, then changes (copy, then keep in sync)"
    assert "FULL_LOAD_AND_CDC" not in one(user, "p-policy").options.values()
    # no Kafka Connect cluster in app_env: the Debezium option is disabled and the page says why
    engine = one(user, "p-engine")
    assert "not available" in engine.options["kafka_connect"]
    assert "KAFKA_CONNECT_URL" in one(user, "p-engine-note").text and marked(user, "p-engine-note").visible
    mode.value = "CDC_ONLY"
    engine.value = "kafka_connect"  # forced (the browser does not offer it): refused
    await eventually(lambda: engine.value == "embedded")
    one(user, "p-patterns").value = "accounts"
    user.find(marker="p-create").click()  # the name is still empty: nothing is saved
    await eventually(lambda: one(user, "p-error").text == "Give the pipeline a name")
    assert pipelines.list_pipelines(admin_actor()) == []
