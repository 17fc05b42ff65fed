"""One pipeline: state, actions, live per-table progress, CDC figures, data quality, schema diff and run history."""

from __future__ import annotations

import time

from nicegui import run, ui
from pydantic import ValidationError

from components.cdc_stats import CdcStats
from components.confirm import confirm
from components.connector_status import ConnectorStatus
from components.data_quality import DataQuality
from components.frame import frame
from components.live import on_events
from components.messages import field_errors, plain
from components.pipeline_actions import PipelineActions, offered
from components.pipeline_header import PipelineHeader
from components.pipeline_monitoring import PipelineMonitoring
from components.pipeline_wizard import edit_dialog
from components.run_history import RunHistory
from components.schema_diff import SchemaDiff
from components.table_progress import TableHealth, TableProgressList
from core import pipelines
from core.errors import StudioError
from core.events import Event
from core.lifecycle import allowed_actions
from core.monitoring import metrics
from core.pipeline_schemas import PipelinePublic, PipelineUpdate, TableStatus
from core.security import Action, can
from core.users import Actor

CALLS = {  # action -> (core function taking actor and pipeline id, label for a failure)
    "start": (pipelines.start_pipeline, "Start"),
    "stop": (pipelines.stop_pipeline, "Stop"),
    "pause": (pipelines.pause_pipeline, "Pause"),
    "resume": (pipelines.resume_pipeline, "Resume"),
    "restart_failed": (pipelines.restart_pipeline, "Restart failed"),
    "recover": (pipelines.recover_pipeline, "Recover"),
    "resync": (pipelines.resync_pipeline, "Resync"),
}
RUNS_SHOWN = 20
LIVE_S = 5.0  # the cards, per-table changes and a running run's count are re-read this often
ASKED = {  # actions asked first: (question, button)
    "stop": (
        "Stop pipeline '{name}'? Streaming ends; the replication slot keeps the changes for the next start "
        "(and keeps WAL on the source until then).",
        "Stop",
    ),
    "pause": (
        "Pause pipeline '{name}'? Reading stops; the replication slot keeps the changes for Resume "
        "(and keeps WAL on the source meanwhile).",
        "Pause",
    ),
    "resync": (
        "Resync every table of '{name}'? Its replication slot is dropped and a new one made; each target "
        "table is emptied and copied again under the new slot's snapshot, then changes stream from it. Use it "
        "when the slot was lost (its changes are gone).",
        "Resync",
    ),
}


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
        ui.link("← Pipelines", "/pipelines").classes("text-sm").mark("back-to-pipelines")
        page.header = PipelineHeader(p)
        page.actions = PipelineActions(p.mode, p.engine, editor=editor, on_action=page.act)
        page.actions.show(p.state)
        page.connector = ConnectorStatus() if p.engine == "kafka_connect" else None
        if p.mode != "FULL_LOAD_ONLY":
            _section("Change data capture")
            page.stats = CdcStats()
        _section("Monitoring")
        page.monitoring = PipelineMonitoring(actor, pipeline_id, cdc=p.mode != "FULL_LOAD_ONLY")
        _section("Tables")
        page.health = TableHealth()
        retry = editor and "retry_table" in offered(p.mode, p.engine)
        page.tables = TableProgressList(on_retry=page.retry if retry else None, cdc_only=p.mode == "CDC_ONLY")
        _section("Data quality")
        quality = DataQuality(actor, pipeline_id, editor=editor)
        _section("Schema diff")
        page.diff = SchemaDiff()
        _section("Run history")
        page.runs = RunHistory()
        on_events(page.follow, topics=("pipeline.",), pipeline_id=pipeline_id)
        await page.refresh_status()
        await page.show_lag()
        await page.refresh_changes()
        await page.refresh_diff()
        await quality.load()
        ui.timer(LIVE_S, page.live)
        await page.monitoring.start()


def delete_question(p: PipelinePublic) -> str:
    """What a delete removes, in words: the run history and what the pipeline created on the source."""
    parts = [f"Delete pipeline '{p.name}' and its run history?"]
    if p.mode != "FULL_LOAD_ONLY":
        named = f" {p.slot_name}" if p.slot_name else ""  # the publication bears the slot's name
        parts.append(
            f"On the source, its replication slot{named} and its publication{named} are dropped: changes "
            "made from now on are no longer kept for it."
        )
        if p.engine == "kafka_connect":
            parts.append("Its Debezium connector is deleted from Kafka Connect.")
    parts.append("The target tables and their rows stay.")
    return "\n".join(parts)


async def _quiet(fn, *args):  # noqa: ANN001, ANN202 - a timer's read: a failure waits for the next tick
    try:
        return await run.io_bound(fn, *args)
    except StudioError:
        return None


def _section(title: str) -> None:
    ui.label(title).classes("text-lg font-semibold mt-2")


class _PipelinePage:
    """The components of one open pipeline page and what keeps them current (core calls in worker threads)."""

    header: PipelineHeader
    actions: PipelineActions
    connector: ConnectorStatus | None
    stats: CdcStats | None = None
    health: TableHealth
    monitoring: PipelineMonitoring
    tables: TableProgressList
    diff: SchemaDiff
    runs: RunHistory

    def __init__(self, actor: Actor, p: PipelinePublic) -> None:
        self.actor, self.p = actor, p
        self.running = False  # a worker runs for it (kafka_connect: its consumer, also while a task FAILED)
        self.retrying = False  # in ERROR with an automatic restart planned
        self.state = p.state
        self.lag_at = 0.0  # monotonic time of the last `pipeline.lag` event

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
        self.state = status.state
        self.retrying = status.retry is not None and status.retry.next_at is not None
        self.header.show_state(status.state, status.full_load_status, status.error_message)
        self.header.show_retry(status.retry, status.state)
        self.actions.show(status.state, running=self.running, retrying=self.retrying)
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

    async def live(self) -> None:
        """What the timer keeps current: the cards when no worker publishes them (paused, stopped: 0 events/s
        and a growing lag), each table's changes, and a running run's count."""
        if self.stats is not None and time.monotonic() - self.lag_at > LIVE_S:
            await self.show_lag()
        await self.refresh_changes()
        if self.state in ("STARTING", "RUNNING", "STOPPING"):
            history = await _quiet(pipelines.list_runs, self.actor, self.p.id, RUNS_SHOWN)
            if history is not None:
                self.runs.show(history)

    async def refresh_changes(self) -> None:
        """Each table's CDC figures (changes by operation, last change) from the rollups."""
        stats = await _quiet(metrics.table_stats, self.actor, self.p.id)
        if stats is not None:
            self.tables.show_changes(stats)

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
        elif action == "edit":
            await self.edit()
        else:
            if action in ASKED:
                question, ok = ASKED[action]
                if not await confirm(question.format(name=self.p.name), ok, danger=action == "stop"):
                    return
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

    async def edit(self) -> None:
        """Change name, description, schedule and, when not running, tables and policies."""
        full = "edit" in allowed_actions(self.state, self.p.mode, self.p.engine) and not self.running
        changes = await edit_dialog(self.p, full=full)
        if not changes:
            return
        try:
            updated = await run.io_bound(pipelines.update_pipeline, self.actor, self.p.id, PipelineUpdate(**changes))
        except ValidationError as exc:  # e.g. no tables left: say which field, save nothing
            ui.notify("Edit: " + "; ".join(str(e) for e in field_errors(exc)), type="negative", multi_line=True)
            return
        except StudioError as exc:
            ui.notify(f"Edit: {plain(exc)}", type="negative", multi_line=True)
            return
        if updated is None:
            return
        self.p = updated
        self.header.show_pipeline(updated)
        ui.notify(f"Pipeline '{updated.name}' saved", type="positive")
        await self.refresh_diff()

    async def delete(self) -> None:
        """Delete the pipeline once confirmed, then go to the list."""
        if not await confirm(delete_question(self.p)):
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
                self.actions.show(e.data["state"], running=self.running, retrying=self.retrying)
            elif e.topic == "pipeline.lag" and self.stats is not None:
                self.lag_at = time.monotonic()
                self.stats.show(e.data)
        for t in latest.values():
            self.tables.set_table(t)
        topics = {e.topic for e in events}
        settled = [t for t in latest.values() if t.status in ("FAILED", "COMPLETED")]
        # the degraded line follows the tables set aside; the connector line follows its connector
        if settled and (any(t.status == "FAILED" for t in settled) or self.health.visible):
            ui.timer(0.1, self.refresh_status, once=True)
        elif topics & {"pipeline.run", "pipeline.connector", "pipeline.state"}:  # retry info follows state
            ui.timer(0.1, self.refresh_status, once=True)
        if topics & {"pipeline.run", "pipeline.state"}:  # a run created tables, or the state moved
            ui.timer(0.1, self.refresh_diff, once=True)
