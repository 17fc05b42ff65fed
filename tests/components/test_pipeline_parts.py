"""The pipeline page's display pieces: header, run history, schema diff, connector line, health line."""

from __future__ import annotations

from datetime import UTC, datetime

from nicegui import ui
from nicegui.testing import User

from components.connector_status import connector_text
from components.pipeline_header import PipelineHeader
from components.run_history import RunHistory
from components.schema_diff import SchemaDiff, diff_row
from components.table_progress import TableHealth, TableProgressList
from core.pipeline_schemas import PipelineStatus, PreviewRow, RunPublic, TableStatus
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

    p = pipelines.get_pipeline(admin_actor(), stored_pipeline("orders"))
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
    headers[-1].show_state("RUNNING")  # a state event without a full-load status
    await user.should_see("Full load: COMPLETED")
    await user.should_not_see(marker="pipeline-error")
