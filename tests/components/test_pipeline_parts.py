"""The pipeline page's display pieces: header, run history, schema diff, connector line, health line."""

from __future__ import annotations

from datetime import UTC, datetime

from nicegui import ui
from nicegui.testing import User

from components.connector_status import connector_text
from components.pipeline_header import PipelineHeader, full_load_text
from components.run_history import RunHistory, duration
from components.schema_diff import SchemaDiff, diff_row
from components.table_progress import TableHealth, TableProgressList, changes_text
from core import pipelines
from core.pipeline_schemas import PipelineStatus, PreviewRow, RunPublic, TableStatus
from pages.pipeline_detail import delete_question
from tests.ui.helpers import WAIT, eventually, login, table_rows


def test_a_diff_row_says_what_differs_and_what_fails() -> None:
    row = diff_row(
        PreviewRow(
            source="crm.accounts",
            target="copy.accounts",
            target_status="exists_different",
            row_count=3,
            has_primary_key=True,
            differences={"added": ["email"], "removed": [], "changed": []},
            errors=["no primary key"],
            warnings=["text fallback"],
        )
    )
    assert row["status"] == "exists with different columns"
    assert row["detail"] == "missing in target: email · ✖ no primary key · ⚠ text fallback"


def test_the_connector_line() -> None:
    assert connector_text(None) == "Connector: not running (the app starts it with the pipeline)"
    c = {"name": "c1", "state": "RUNNING", "tasks": [{"id": 0, "state": "FAILED"}], "warning": "slot lags"}
    assert connector_text(c) == "Connector c1: RUNNING · task 0 FAILED — ⚠ slot lags"


async def test_the_parts_show_what_they_are_given(app_env, user: User) -> None:
    parts: dict[str, ui.element] = {}

    @ui.page("/test-parts")
    def page() -> None:
        parts["diff"] = SchemaDiff()
        parts["runs"] = RunHistory()
        parts["health"] = TableHealth()
        parts["tables"] = TableProgressList()

    await login(user)
    await user.open("/test-parts")
    await user.should_see(marker="runs-table", retries=WAIT)
    started = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    parts["runs"].show(
        [
            RunPublic(
                id=7,
                run_type="FULL_LOAD",
                trigger="manual",
                status="COMPLETED",
                started_at=started,
                completed_at=None,
                rows_processed=1200,
                rows_failed=0,
                error_message=None,
            )
        ]
    )
    ((run,),) = [table_rows(user, "runs-table")]
    assert (run["id"], run["status"], run["rows"], run["error"]) == (7, "COMPLETED", "1,200", "")
    parts["diff"].show_error("source unreachable")
    assert table_rows(user, "diff-table")[0]["status"] == "cannot compare"

    await user.should_not_see(marker="pipeline-health")
    degraded = PipelineStatus(
        id=1,
        state="RUNNING",
        full_load_status="COMPLETED",
        cdc_status="RUNNING",
        error_message=None,
        tables=[],
        health="degraded",
        failed_tables=["crm.contacts"],
    )
    parts["health"].show(degraded)
    await user.should_see("Degraded: 1 table(s) failed", retries=WAIT)
    parts["tables"].show([])
    await user.should_see("No load has run yet.")
    parts["tables"].set_table(
        TableStatus(source="crm.a", target="copy.a", status="RUNNING", rows_copied=5, rows_expected=10)
    )
    await eventually(lambda: user.find(marker="progress-crm.a").elements)
    await user.should_not_see("No load has run yet.")


async def test_the_header_keeps_the_last_full_load_status(app_env, user: User) -> None:
    from core import pipelines
    from tests.ui.helpers import admin_actor, stored_pipeline

    p = pipelines.get_pipeline(admin_actor(), stored_pipeline("orders", mode="FULL_LOAD_AND_CDC"))
    headers: list[PipelineHeader] = []

    @ui.page("/test-header")
    def page() -> None:
        headers.append(PipelineHeader(p))

    await login(user)
    await user.open("/test-header")
    await user.should_see("Full load: NOT_STARTED", retries=WAIT)
    await user.should_not_see(marker="pipeline-error")
    headers[-1].show_state("ERROR", "COMPLETED", "boom")
    await user.should_see("Full load: COMPLETED")
    await user.should_see("boom")
    assert headers[-1]._state.props["color"] == "red-7"  # components.format.STATE_COLORS
    headers[-1].show_state("RUNNING")  # a state event without a full-load status
    await user.should_see("Full load: COMPLETED")
    await user.should_not_see(marker="pipeline-error")
    assert headers[-1]._state.props["color"] == "green-7"
    headers[-1].show_state("PAUSED")
    assert headers[-1]._state.props["color"] == "amber-8"


def test_the_full_load_line_and_a_tables_changes() -> None:
    assert full_load_text("FULL_LOAD_AND_CDC", None) == "Full load: NOT_STARTED"
    assert "none in this mode" in full_load_text("CDC_ONLY", "NOT_STARTED")
    assert changes_text(None) == "CDC: no changes yet"
    assert changes_text({"inserts": 0, "updates": 0, "deletes": 0, "last_change_at": None}) == "CDC: no changes yet"
    stats = {"inserts": 1200, "updates": 1, "deletes": 0, "last_change_at": "2026-01-02T03:04:05+00:00"}
    assert changes_text(stats) == "CDC: 1,200 inserted · 1 updated · 0 deleted, last 2026-01-02 03:04:05 UTC"


def test_the_delete_question_names_what_goes_on_the_source(app_env) -> None:
    from tests.ui.helpers import admin_actor, stored_pipeline

    cdc = pipelines.get_pipeline(admin_actor(), stored_pipeline("del-cdc", mode="CDC_ONLY", engine="kafka_connect"))
    text = delete_question(cdc.model_copy(update={"slot_name": "cdc_studio_7"}))
    assert "replication slot cdc_studio_7 and its publication cdc_studio_7 are dropped" in text
    assert "Debezium connector is deleted" in text and "target tables and their rows stay" in text
    load = pipelines.get_pipeline(admin_actor(), stored_pipeline("del-load", mode="FULL_LOAD_ONLY"))
    assert "slot" not in delete_question(load)


def test_a_runs_duration() -> None:
    started = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    run = RunPublic(
        id=1,
        run_type="FULL_LOAD",
        trigger="manual",
        status="COMPLETED",
        started_at=started,
        completed_at=datetime(2024, 1, 2, 3, 7, 10, tzinfo=UTC),
        rows_processed=0,
        rows_failed=0,
        error_message=None,
    )
    assert duration(run) == "3 min 05 s"
    running = run.model_copy(update={"completed_at": None, "status": "RUNNING"})
    assert duration(running, now=datetime(2024, 1, 2, 3, 4, 9, 500000, tzinfo=UTC)) == "4.5 s so far"
