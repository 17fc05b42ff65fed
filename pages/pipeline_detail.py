"""One pipeline: state, actions, live per-table progress, CDC figures, schema diff and run history."""

from __future__ import annotations

from nicegui import run, ui

from components.cdc_stats import CdcStats
from components.confirm import confirm
from components.connector_status import ConnectorStatus
from components.frame import frame
from components.live import on_events
from components.messages import plain
from components.pipeline_actions import PipelineActions, offered
from components.pipeline_header import PipelineHeader
from components.run_history import RunHistory
from components.schema_diff import SchemaDiff
from components.table_progress import TableHealth, TableProgressList
from core import pipelines
from core.errors import StudioError
from core.events import Event
from core.pipeline_schemas import PipelinePublic, TableStatus
from core.security import Action, can
from core.users import Actor

CALLS = {  # action -> (core function taking actor and pipeline id, label for a failure)
    "start": (pipelines.start_pipeline, "Start"),
    "stop": (pipelines.stop_pipeline, "Stop"),
    "pause": (pipelines.pause_pipeline, "Pause"),
    "resume": (pipelines.resume_pipeline, "Resume"),
    "restart_failed": (pipelines.restart_pipeline, "Restart failed"),
}
RUNS_SHOWN = 20


async def pipeline_detail_page(pipeline_id: int) -> None:
    """The pipeline page."""
    async with frame("Pipeline") as actor:
        try:
            p = await run.io_bound(pipelines.get_pipeline, actor, pipeline_id)
        except StudioError as exc:
            ui.label(plain(exc)).classes("text-negative").mark("pipeline-error")
            return
        if p is None:  # the app is stopping
            return
        editor = can(actor.role, Action.manage_pipelines)
        page = _PipelinePage(actor, p)
        page.header = PipelineHeader(p)
        page.actions = PipelineActions(p.mode, p.engine, editor=editor, on_action=page.act)
        page.actions.show(p.state)
        page.connector = ConnectorStatus() if p.engine == "kafka_connect" else None
        if p.mode != "FULL_LOAD_ONLY":
            _section("Change data capture")
            page.stats = CdcStats()
        _section("Tables")
        page.health = TableHealth()
        retry = editor and "retry_table" in offered(p.mode, p.engine)
        page.tables = TableProgressList(on_retry=page.retry if retry else None)
        _section("Schema diff")
        page.diff = SchemaDiff()
        _section("Run history")
        page.runs = RunHistory()
        on_events(page.follow, topics=("pipeline.",), pipeline_id=pipeline_id)
        await page.refresh_status()
        await page.show_lag()
        await page.refresh_diff()


def _section(title: str) -> None:
    ui.label(title).classes("text-lg font-semibold mt-2")


class _PipelinePage:
    """The components of one open pipeline page and what keeps them current (core calls in worker threads)."""

    header: PipelineHeader
    actions: PipelineActions
    connector: ConnectorStatus | None
    stats: CdcStats | None = None
    health: TableHealth
    tables: TableProgressList
    diff: SchemaDiff
    runs: RunHistory

    def __init__(self, actor: Actor, p: PipelinePublic) -> None:
        self.actor, self.p = actor, p
        self.running = False  # a worker runs for it (kafka_connect: its consumer, also while a task FAILED)

    async def refresh_status(self) -> None:
        """State, connector, tables, health and run history as stored."""
        try:
            status = await run.io_bound(pipelines.get_status, self.actor, self.p.id)
            history = await run.io_bound(pipelines.list_runs, self.actor, self.p.id, RUNS_SHOWN)
        except StudioError as exc:
            self.header.show_error(plain(exc))
            return
        if status is None or history is None:  # the app is shutting down
            return
        self.running = status.connector is not None
        self.header.show_state(status.state, status.full_load_status, status.error_message)
        self.actions.show(status.state, running=self.running)
        if self.connector is not None:
            self.connector.show(status.connector)
        self.tables.show(status.tables)
        self.health.show(status)
        self.runs.show(history)

    async def refresh_diff(self) -> None:
        """The schema diff of source and target, as they are now."""
        try:
            rows = await run.io_bound(pipelines.preview, self.actor, self.p.id)
        except StudioError as exc:
            self.diff.show_error(plain(exc))
            return
        if rows is not None:
            self.diff.show(rows)

    async def show_lag(self) -> None:
        """The CDC figures as last measured (live ones follow `pipeline.lag` events)."""
        if self.stats is None:
            return
        try:
            figures = await run.io_bound(pipelines.lag, self.actor, self.p.id)
        except StudioError as exc:
            ui.notify(f"Lag: {plain(exc)}", type="warning")
            return
        if figures:
            self.stats.show(figures)

    async def act(self, action: str) -> None:
        """Do what a button of the actions bar asks."""
        if action == "validate":
            await self.validate()
        elif action == "delete":
            await self.delete()
        else:
            call, label = CALLS[action]
            try:
                await run.io_bound(call, self.actor, self.p.id)
            except StudioError as exc:
                ui.notify(f"{label}: {plain(exc)}", type="negative", multi_line=True)
            await self.refresh_status()

    async def retry(self, source: str) -> None:
        """Load one FAILED table again alone."""
        try:
            await run.io_bound(pipelines.retry_table, self.actor, self.p.id, source)
            ui.notify(f"{source}: loading it again alone", type="positive")
        except StudioError as exc:
            ui.notify(f"Retry {source}: {plain(exc)}", type="negative", multi_line=True)
        await self.refresh_status()

    async def validate(self) -> None:
        """Check the pipeline and say what stands in the way of a start."""
        try:
            report = await run.io_bound(pipelines.validate, self.actor, self.p.id)
        except StudioError as exc:
            ui.notify(f"Validate: {plain(exc)}", type="negative", multi_line=True)
            return
        if report is None:
            return
        lines = [f"✖ {e}" for e in report.errors] + [f"⚠ {w}" for w in report.warnings]
        message = "Ready to start" if report.ok and not lines else "\n".join(lines)
        ui.notify(message, type="positive" if report.ok else "negative", multi_line=True, timeout=8000)

    async def delete(self) -> None:
        """Delete the pipeline once confirmed, then go to the list."""
        if not await confirm(f"Delete pipeline '{self.p.name}' and its run history?"):
            return
        try:
            await run.io_bound(pipelines.delete_pipeline, self.actor, self.p.id)
        except StudioError as exc:
            ui.notify(plain(exc), type="negative")
            return
        ui.navigate.to("/pipelines")

    def follow(self, events: list[Event]) -> None:
        """Apply a batch of this pipeline's events; re-read what they only announce."""
        latest: dict[str, TableStatus] = {}
        for e in events:
            if e.topic == "pipeline.progress":
                latest[e.data["source"]] = TableStatus(**e.data)
            elif e.topic == "pipeline.state" and "state" in e.data:
                self.header.show_state(e.data["state"], e.data.get("full_load_status"), e.data.get("error_message"))
                self.actions.show(e.data["state"], running=self.running)
            elif e.topic == "pipeline.lag" and self.stats is not None:
                self.stats.show(e.data)
        for t in latest.values():
            self.tables.set_table(t)
        topics = {e.topic for e in events}
        settled = [t for t in latest.values() if t.status in ("FAILED", "COMPLETED")]
        # the degraded line follows the tables set aside; the connector line follows its connector
        if settled and (any(t.status == "FAILED" for t in settled) or self.health.visible):
            ui.timer(0.1, self.refresh_status, once=True)
        elif "pipeline.run" in topics or "pipeline.connector" in topics:
            ui.timer(0.1, self.refresh_status, once=True)
        if "pipeline.run" in topics:
            ui.timer(0.1, self.refresh_diff, once=True)
