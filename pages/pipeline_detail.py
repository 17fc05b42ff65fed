"""One pipeline: state, Start/Stop, live per-table progress, schema diff and run history."""

from __future__ import annotations

from nicegui import run, ui

from components.cdc_stats import CdcStats
from components.format import human_count, timestamp
from components.frame import frame
from components.live import on_events
from components.messages import plain
from components.table_progress import TableProgressList
from core import pipelines
from core.errors import StudioError
from core.events import Event
from core.pipeline_schemas import TableStatus
from core.security import Action, can

RUN_COLUMNS = [
    {"name": "id", "label": "#", "field": "id", "align": "left"},
    {"name": "run_type", "label": "Type", "field": "run_type", "align": "left"},
    {"name": "trigger", "label": "Trigger", "field": "trigger", "align": "left"},
    {"name": "status", "label": "Status", "field": "status", "align": "left"},
    {"name": "started_at", "label": "Started", "field": "started_at", "align": "left"},
    {"name": "completed_at", "label": "Ended", "field": "completed_at", "align": "left"},
    {"name": "rows", "label": "Rows", "field": "rows", "align": "right"},
    {"name": "error", "label": "Error", "field": "error", "align": "left", "classes": "whitespace-normal"},
]
DIFF_COLUMNS = [
    {"name": "source", "label": "Source", "field": "source", "align": "left"},
    {"name": "target", "label": "Target", "field": "target", "align": "left"},
    {"name": "status", "label": "Target table", "field": "status", "align": "left"},
    {"name": "detail", "label": "Differences", "field": "detail", "align": "left", "classes": "whitespace-normal"},
]
STATUS_WORDS = {
    "will_be_created": "will be created",
    "exists": "exists, same columns",
    "exists_different": "exists with different columns",
    "missing": "missing (auto-create off)",
}


async def pipeline_detail_page(pipeline_id: int) -> None:
    """The pipeline page."""
    with frame("Pipeline") as actor:
        try:
            p = await run.io_bound(pipelines.get_pipeline, actor, pipeline_id)
        except StudioError as exc:
            ui.label(plain(exc)).classes("text-negative").mark("pipeline-error")
            return
        editor = can(actor.role, Action.manage_pipelines)
        with ui.row().classes("items-center gap-4"):
            ui.label(p.name).classes("text-xl font-semibold")
            state = ui.badge(p.state).mark("pipeline-state")
            ui.label(
                f"{p.mode} · {p.engine} · {p.source_connection_name}:{p.source_database}.{p.source_schema} → "
                f"{p.target_connection_name}:{p.target_database}.{p.target_schema}"
            ).classes("text-grey-8")
        if p.description:
            ui.label(p.description).classes("text-grey-7")
        with ui.row().classes("items-center gap-4"):
            load_status = ui.label().mark("full-load-status")
            schedule = f"schedule {p.schedule} (UTC), next run {timestamp(p.next_run_at)}" if p.schedule else ""
            ui.label(schedule).classes("text-grey-7")
        error = ui.label().classes("text-negative whitespace-pre-wrap").mark("pipeline-error")

        with ui.row().classes("gap-2"):
            start = ui.button("Start", icon="play_arrow").mark("start")
            stop = ui.button("Stop", icon="stop", color="negative").mark("stop")
            pause = ui.button("Pause", icon="pause").props("outline").mark("pause")
            resume = ui.button("Resume", icon="play_circle").props("outline").mark("resume")
            restart = ui.button("Restart failed", icon="healing").props("outline").mark("restart-failed")
            validate_btn = ui.button("Validate", icon="fact_check").props("outline").mark("validate")
            if editor:
                ui.button("Delete", icon="delete", color="negative").props("outline").on_click(
                    lambda: confirm_delete()
                ).mark("delete")
        cdc = p.mode != "FULL_LOAD_ONLY"
        start.set_visibility(editor)
        stop.set_visibility(editor)
        pause.set_visibility(editor and cdc)
        resume.set_visibility(editor and cdc)
        kafka = p.engine == "kafka_connect"
        restart.set_visibility(editor and kafka)
        connector_line = ui.label().classes("text-grey-8").mark("connector-state")
        connector_line.set_visibility(kafka)
        stats = None
        if cdc:
            ui.label("Change data capture").classes("text-lg font-semibold mt-2")
            stats = CdcStats()

        ui.label("Tables").classes("text-lg font-semibold mt-2")
        health = ui.label().classes("text-warning").mark("pipeline-health")
        health.visible = False

        async def retry(source: str) -> None:
            try:
                await run.io_bound(pipelines.retry_table, actor, pipeline_id, source)
                ui.notify(f"{source}: loading it again alone", type="positive")
            except StudioError as exc:
                ui.notify(f"Retry {source}: {plain(exc)}", type="negative", multi_line=True)
            await refresh_status()

        progress = TableProgressList(on_retry=retry if editor else None)
        ui.label("Schema diff").classes("text-lg font-semibold mt-2")
        diff_table = ui.table(columns=DIFF_COLUMNS, rows=[], row_key="source").classes("w-full").mark("diff-table")
        ui.label("Run history").classes("text-lg font-semibold mt-2")
        runs_table = ui.table(columns=RUN_COLUMNS, rows=[], row_key="id").classes("w-full").mark("runs-table")

        current = {"full_load": p.full_load_status}

        def show_state(state_value: str, full_load: str | None, message: str | None) -> None:
            full_load = full_load or current["full_load"]
            current["full_load"] = full_load
            state.text = state_value
            state.props(f"color={'negative' if state_value == 'ERROR' else 'primary'}")
            load_status.text = f"Full load: {full_load}"
            error.text = message or ""
            error.visible = bool(message)
            busy = state_value in {"STARTING", "RUNNING", "STOPPING"}
            start.enabled = not busy and state_value != "PAUSED"
            stop.enabled = busy or state_value == "PAUSED"
            pause.enabled = state_value == "RUNNING"
            resume.enabled = state_value == "PAUSED"

        async def refresh_status() -> None:
            try:
                status = await run.io_bound(pipelines.get_status, actor, pipeline_id)
                history = await run.io_bound(pipelines.list_runs, actor, pipeline_id, 20)
            except StudioError as exc:
                error.text = plain(exc)
                return
            if status is None or history is None:  # the app is shutting down
                return
            show_state(status.state, status.full_load_status, status.error_message)
            if kafka:
                c = status.connector
                tasks = ", ".join(f"task {t['id']} {t['state']}" for t in c["tasks"]) if c else ""
                connector_line.text = (
                    f"Connector {c['name']}: {c['state']} · {tasks}"
                    if c
                    else "Connector: not running (the app starts it with the pipeline)"
                )
                if c and c.get("warning"):
                    connector_line.text += f" — ⚠ {c['warning']}"
                if c is not None:
                    stop.enabled = True  # the consumer runs, also while a task FAILED
            progress.show(status.tables)
            health.visible = status.health == "degraded"
            health.text = (
                f"Degraded: {len(status.failed_tables)} table(s) failed and are set aside while the "
                f"others run ({', '.join(status.failed_tables)}); fix the cause, then Retry the table"
            )
            runs_table.rows = [
                {
                    "id": r.id,
                    "run_type": r.run_type,
                    "trigger": r.trigger,
                    "status": r.status,
                    "started_at": timestamp(r.started_at),
                    "completed_at": timestamp(r.completed_at),
                    "rows": human_count(r.rows_processed),
                    "error": r.error_message or "",
                }
                for r in history
            ]
            runs_table.update()

        async def refresh_diff() -> None:
            try:
                rows = await run.io_bound(pipelines.preview, actor, pipeline_id)
            except StudioError as exc:
                diff_table.rows = [{"source": "—", "target": "—", "status": "cannot compare", "detail": plain(exc)}]
                diff_table.update()
                return
            diff_table.rows = [
                {
                    "source": r.source,
                    "target": r.target,
                    "status": STATUS_WORDS[r.target_status],
                    "detail": " · ".join(
                        filter(
                            None,
                            [pipelines.describe_differences(r.differences)]
                            + [f"✖ {e}" for e in r.errors]
                            + [f"⚠ {w}" for w in r.warnings],
                        )
                    ),
                }
                for r in rows
            ]
            diff_table.update()

        async def do(action, label: str) -> None:  # noqa: ANN001
            try:
                await run.io_bound(action, actor, pipeline_id)
            except StudioError as exc:
                ui.notify(f"{label}: {plain(exc)}", type="negative", multi_line=True)
            await refresh_status()

        async def do_validate() -> None:
            report = await run.io_bound(pipelines.validate, actor, pipeline_id)
            lines = [f"✖ {e}" for e in report.errors] + [f"⚠ {w}" for w in report.warnings]
            message = "Ready to start" if report.ok and not lines else "\n".join(lines)
            ui.notify(message, type="positive" if report.ok else "negative", multi_line=True, timeout=8000)

        def confirm_delete() -> None:
            with ui.dialog() as dialog, ui.card():
                ui.label(f"Delete pipeline '{p.name}' and its run history?")
                with ui.row():
                    ui.button("Cancel", on_click=dialog.close).props("flat")

                    async def really() -> None:
                        dialog.close()
                        try:
                            await run.io_bound(pipelines.delete_pipeline, actor, pipeline_id)
                        except StudioError as exc:
                            ui.notify(plain(exc), type="negative")
                            return
                        ui.navigate.to("/pipelines")

                    ui.button("Delete", color="negative", on_click=really).mark("confirm-delete")
            dialog.open()

        start.on_click(lambda: do(pipelines.start_pipeline, "Start"))
        stop.on_click(lambda: do(pipelines.stop_pipeline, "Stop"))
        pause.on_click(lambda: do(pipelines.pause_pipeline, "Pause"))
        resume.on_click(lambda: do(pipelines.resume_pipeline, "Resume"))
        restart.on_click(lambda: do(pipelines.restart_pipeline, "Restart failed"))
        validate_btn.on_click(do_validate)

        def on_batch(events: list[Event]) -> None:
            latest: dict[str, TableStatus] = {}
            for e in events:
                if e.topic == "pipeline.progress":
                    latest[e.data["source"]] = TableStatus(**e.data)
                elif e.topic == "pipeline.state" and "state" in e.data:
                    show_state(e.data["state"], e.data.get("full_load_status"), e.data.get("error_message"))
                elif e.topic == "pipeline.lag" and stats is not None:
                    stats.show(e.data)
            for t in latest.values():
                progress.set_table(t)
            settled = any(t.status in ("FAILED", "COMPLETED") for t in latest.values())
            if settled and (any(t.status == "FAILED" for t in latest.values()) or health.visible):
                ui.timer(0.1, refresh_status, once=True)  # the degraded line follows the tables set aside
            if any(e.topic == "pipeline.run" for e in events):
                ui.timer(0.1, refresh_status, once=True)
                ui.timer(0.1, refresh_diff, once=True)

        on_events(on_batch, topics=("pipeline.",), pipeline_id=pipeline_id)
        await refresh_status()
        if stats is not None:
            try:
                figures = await run.io_bound(pipelines.lag, actor, pipeline_id)
            except StudioError as exc:
                figures = None
                ui.notify(f"Lag: {plain(exc)}", type="warning")
            if figures:
                stats.show(figures)
        await refresh_diff()
