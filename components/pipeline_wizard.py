"""The "New pipeline" wizard: name -> source -> target -> tables -> preview -> mode and schedule."""

from __future__ import annotations

from nicegui import run, ui
from pydantic import ValidationError

from components.discovery import default_schema
from components.format import human_bytes, human_count
from components.messages import field_errors, plain
from core import connections, pipelines
from core.config import get_settings
from core.errors import StudioError, ValidationFailed
from core.pipeline_schemas import (
    ENGINE_LABELS,
    MODE_LABELS,
    MODES,
    ON_TABLE_ERROR_LABELS,
    POLICY_LABELS,
    SCHEMA_DRIFT_LABELS,
    PipelineCreate,
    PipelinePublic,
)
from core.table_select import select_tables
from core.users import Actor

PREVIEW_COLUMNS = [
    {"name": "source", "label": "Source table", "field": "source", "align": "left"},
    {"name": "target", "label": "Target table", "field": "target", "align": "left"},
    {"name": "status", "label": "Target", "field": "status", "align": "left"},
    {"name": "rows", "label": "Rows", "field": "rows", "align": "right"},
    {"name": "pk", "label": "Primary key", "field": "pk", "align": "left"},
    {"name": "notes", "label": "Notes", "field": "notes", "align": "left", "classes": "whitespace-normal"},
]
TABLE_COLUMNS = [
    {"name": "name", "label": "Table", "field": "name", "align": "left", "sortable": True},
    {"name": "rows", "label": "Rows", "field": "rows", "align": "right"},
    {"name": "size", "label": "Size", "field": "size", "align": "right"},
    {"name": "pk", "label": "Primary key", "field": "pk", "align": "left"},
]
STATUS_WORDS = {
    "will_be_created": "will be created",
    "exists": "exists",
    "exists_different": "exists with different columns",
    "missing": "missing (auto-create off)",
}


NAME_REQUIRED = "Give the pipeline a name"
NO_CLUSTER = (
    "Debezium on Kafka Connect is not available: no Kafka Connect cluster is configured. Set KAFKA_CONNECT_URL "
    "and KAFKA_BOOTSTRAP_SERVERS for the app and restart it, or use the embedded engine."
)


def _split(text: str | None) -> list[str]:
    return [t.strip() for t in (text or "").replace("\n", ",").split(",") if t.strip()]


def _named(value: str | None) -> bool:
    return bool((value or "").strip())


def cluster_configured() -> bool:
    """Whether the app knows a Kafka Connect cluster (both settings), which the Debezium engine needs."""
    settings = get_settings()
    return bool(settings.kafka_connect_url and settings.kafka_bootstrap_servers)


def matches_text(available: list[str], patterns: list[str], exclude: list[str]) -> str:
    """Which discovered tables the picks and patterns select, in words (or why none)."""
    if not patterns:
        return "No tables chosen yet: pick some above or type names and patterns."
    try:
        pairs = select_tables(available, patterns, exclude)
    except ValidationFailed as exc:
        return f"✖ {exc.message}"
    names = [source for source, _ in pairs]
    return f"Selected {len(names)} table(s): {', '.join(names)}"


class PipelineWizard:
    """A stepper whose every choice of database and schema comes from discovery."""

    def __init__(self, actor: Actor) -> None:
        self.actor = actor
        self.conns = []

    async def build(self) -> None:
        self.conns = await run.io_bound(connections.list_connections, self.actor)
        sources = {c.id: c.name for c in self.conns if c.usage in ("source", "both")}
        targets = {c.id: c.name for c in self.conns if c.usage in ("target", "both")}
        if not sources or not targets:
            ui.label("Create a source and a target connection first.").mark("wizard-needs-connections")
            ui.link("Connections", "/connections")
            return
        with ui.stepper().props("vertical").classes("w-full") as self.stepper:
            with ui.step("Name"):
                self.name = ui.input("Pipeline name", validation={NAME_REQUIRED: _named}).classes("w-96")
                self.name.mark("p-name")
                self.description = ui.textarea("Description").classes("w-96").mark("p-description")
                with ui.stepper_navigation():
                    ui.button("Next", on_click=self._name_next).mark("p-next")
            with ui.step("Source"):
                self.src = ui.select(sources, label="Source connection", on_change=self._source_changed)
                self.src.classes("w-96").mark("p-source")
                self.src_db = ui.select([], label="Database", on_change=self._source_db_changed).classes("w-96")
                self.src_db.mark("p-source-db")
                self.src_schema = ui.select([], label="Schema", on_change=self._load_tables).classes("w-96")
                self.src_schema.mark("p-source-schema")
                self._nav()
            with ui.step("Target"):
                self.tgt = ui.select(targets, label="Target connection", on_change=self._target_changed)
                self.tgt.classes("w-96").mark("p-target")
                self.tgt_db = ui.select([], label="Database", on_change=self._target_db_changed).classes("w-96")
                self.tgt_db.mark("p-target-db")
                self.tgt_schema = (
                    ui.select(
                        [], label="Target schema (pick or type a new one)", with_input=True, new_value_mode="add-unique"
                    )
                    .classes("w-96")
                    .mark("p-target-schema")
                )
                self._nav()
            with ui.step("Tables"):
                ui.label("Pick tables, and/or type names and patterns (orders, cust_*).").classes("text-grey-7")
                self.tables = ui.table(
                    columns=TABLE_COLUMNS,
                    rows=[],
                    row_key="name",
                    selection="multiple",
                    on_select=self._show_matches,
                )
                self.tables.classes("w-full").mark("p-tables")
                # debounce: the model (and the match list) follows the typing after a pause, not every key
                self.patterns = ui.input("Names or patterns, comma-separated", on_change=self._show_matches)
                self.patterns.props("debounce=400").classes("w-96").mark("p-patterns")
                self.exclude = ui.input("Exclude patterns", on_change=self._show_matches).props("debounce=400")
                self.exclude.classes("w-96").mark("p-exclude")
                self.matches = ui.label().classes("text-sm text-grey-8 whitespace-normal").mark("p-matches")
                self._nav()
            with ui.step("Preview"):
                ui.button("Preview mapping", icon="preview", on_click=self._preview).mark("p-preview")
                self.preview = ui.table(columns=PREVIEW_COLUMNS, rows=[], row_key="source").classes("w-full")
                self.preview.mark("p-preview-table")
                self._nav()
            with ui.step("Mode"):
                self.mode = ui.select(
                    {m: MODE_LABELS[m] for m in MODES}, value="FULL_LOAD_ONLY", label="What the pipeline does"
                )
                self.mode.classes("w-96").mark("p-mode")
                self.auto_create = ui.switch("Create missing target tables", value=True).mark("p-auto-create")
                self.policy = (
                    ui.select(
                        dict(POLICY_LABELS),
                        value="fail",
                        label="When a target table is not empty",
                    )
                    .classes("w-96")
                    .mark("p-policy")
                )
                self.on_table_error = (
                    ui.select(
                        dict(ON_TABLE_ERROR_LABELS),
                        value="continue",
                        label="When one table fails",
                    )
                    .classes("w-96")
                    .mark("p-on-table-error")
                )
                self.schema_drift = (
                    ui.select(
                        dict(SCHEMA_DRIFT_LABELS),
                        value="propagate_columns",
                        label="When the source schema changes",
                    )
                    .classes("w-96")
                    .mark("p-schema-drift")
                )
                self.schedule = (
                    ui.input("Cron schedule (UTC, optional; full-load-only)", placeholder="0 2 * * *")
                    .classes("w-96")
                    .mark("p-schedule")
                )
                self.schedule.bind_enabled_from(self.mode, "value", backward=lambda m: m == "FULL_LOAD_ONLY")
                self.validation_schedule = (
                    ui.input("Validate the data on a schedule (cron, UTC, optional)", placeholder="0 3 * * *")
                    .classes("w-96")
                    .mark("p-validation-schedule")
                )
                self._build_engine()
                self.sink = (
                    ui.select(
                        {"studio": "The app applies the changes", "connect": "A JDBC sink connector on Connect"},
                        value="studio",
                        label="Who applies the changes (Kafka Connect engine)",
                    )
                    .classes("w-96")
                    .mark("p-sink")
                )
                self.sink.bind_visibility_from(self.engine, "value", backward=lambda e: e == "kafka_connect")
                self.error = ui.label().classes("text-negative whitespace-pre-wrap").mark("p-error")
                with ui.stepper_navigation():
                    ui.button("Back", on_click=self.stepper.previous).props("flat")
                    ui.button("Create pipeline", icon="check", on_click=self._create).mark("p-create")

    def _build_engine(self) -> None:
        """The engine choice; without a Kafka Connect cluster the Debezium option is disabled, with the reason."""
        cluster = cluster_configured()
        labels = dict(ENGINE_LABELS)
        if not cluster:
            labels["kafka_connect"] += " (not available: no cluster configured)"
        self.engine = ui.select(labels, value="embedded", label="CDC engine", on_change=self._engine_changed)
        self.engine.classes("w-96").mark("p-engine")
        if not cluster:
            self.engine.props(":option-disable=\"opt => opt.value === 'kafka_connect'\"")
        self.engine.bind_enabled_from(self.mode, "value", backward=lambda m: m != "FULL_LOAD_ONLY")
        self.engine_note = ui.label(NO_CLUSTER).classes("text-sm text-warning-10 w-96").mark("p-engine-note")
        self.engine_note.visible = not cluster

    def _engine_changed(self) -> None:
        # The option is disabled in the browser; a value forced anyway (an old tab) is refused here too.
        if self.engine.value == "kafka_connect" and not cluster_configured():
            ui.notify(NO_CLUSTER, type="warning", multi_line=True)
            self.engine.value = "embedded"

    def _name_next(self) -> None:
        if self.name.validate():
            self.stepper.next()

    def _show_matches(self) -> None:
        available = [row["name"] for row in self.tables.rows]
        chosen = [row["name"] for row in self.tables.selected] + _split(self.patterns.value)
        self.matches.text = matches_text(available, list(dict.fromkeys(chosen)), _split(self.exclude.value))

    def _nav(self, first: bool = False) -> None:
        with ui.stepper_navigation():
            if not first:
                ui.button("Back", on_click=self.stepper.previous).props("flat")
            ui.button("Next", on_click=self.stepper.next).mark("p-next")

    def _default_db(self, connection_id: int | None) -> str | None:
        return next((c.database for c in self.conns if c.id == connection_id), None)

    async def _options(self, select: ui.select, fetch, *args) -> None:  # noqa: ANN001
        try:
            names = [item.name for item in await run.io_bound(fetch, self.actor, *args)]
        except StudioError as exc:
            ui.notify(plain(exc), type="negative", multi_line=True)
            names = []
        select.set_options(names)

    async def _source_changed(self) -> None:
        await self._options(self.src_db, connections.list_databases, self.src.value)
        self.src_db.value = self._default_db(self.src.value)

    async def _source_db_changed(self) -> None:
        """The source schemas; the one opened is where the data is (as discovery opens it), not always public."""
        if not self.src_db.value:
            return
        try:
            schemas = await run.io_bound(connections.list_schemas, self.actor, self.src.value, self.src_db.value)
        except StudioError as exc:
            ui.notify(plain(exc), type="negative", multi_line=True)
            schemas = []
        self.src_schema.set_options([s.name for s in schemas or []])
        conn = next((c for c in self.conns if c.id == self.src.value), None)
        preferred, kind = (conn.schema_, conn.kind) if conn is not None else (None, "postgresql")
        self.src_schema.value = default_schema(schemas or [], preferred, kind)

    async def _target_changed(self) -> None:
        await self._options(self.tgt_db, connections.list_databases, self.tgt.value)
        self.tgt_db.value = self._default_db(self.tgt.value)

    async def _target_db_changed(self) -> None:
        if self.tgt_db.value:
            await self._options(self.tgt_schema, connections.list_schemas, self.tgt.value, self.tgt_db.value)
            if self.src_schema.value and not self.tgt_schema.value:
                if self.src_schema.value not in self.tgt_schema.options:
                    self.tgt_schema.set_options([*self.tgt_schema.options, self.src_schema.value])
                self.tgt_schema.value = self.src_schema.value

    async def _load_tables(self) -> None:
        if not (self.src.value and self.src_db.value and self.src_schema.value):
            return
        try:
            items = await run.io_bound(
                connections.list_tables, self.actor, self.src.value, self.src_db.value, self.src_schema.value
            )
        except StudioError as exc:
            ui.notify(plain(exc), type="negative")
            return
        self.tables.rows = [
            {
                "name": t.name,
                "rows": human_count(t.row_count),
                "size": human_bytes(t.size_bytes),
                "pk": "yes" if t.has_primary_key else "no",
            }
            for t in items
        ]
        self.tables.selected = []
        self.tables.update()
        self._show_matches()

    def request(self) -> PipelineCreate:
        """The pipeline as chosen so far (pydantic ValidationError when something is missing)."""
        chosen = [row["name"] for row in self.tables.selected] + _split(self.patterns.value)
        return PipelineCreate(
            name=self.name.value or "",
            description=self.description.value or "",
            source_connection_id=self.src.value,
            target_connection_id=self.tgt.value,
            source_database=self.src_db.value,
            source_schema=self.src_schema.value or "",
            target_database=self.tgt_db.value,
            target_schema=self.tgt_schema.value or "",
            tables=list(dict.fromkeys(chosen)),
            exclude=_split(self.exclude.value),
            mode=self.mode.value,
            auto_create=self.auto_create.value,
            target_table_policy=self.policy.value,
            on_table_error=self.on_table_error.value,
            schema_drift=self.schema_drift.value,
            schedule=self.schedule.value or None,
            validation_schedule=self.validation_schedule.value or None,
            engine=self.engine.value if self.mode.value != "FULL_LOAD_ONLY" else "embedded",
            sink=self.sink.value if self.engine.value == "kafka_connect" else "studio",
        )

    def _show_invalid(self, exc: ValidationError) -> None:
        message = "\n".join(str(e) for e in field_errors(exc))
        ui.notify(message, type="negative", multi_line=True)
        self.error.text = message

    async def _preview(self) -> None:
        try:
            data = self.request()
            rows = await run.io_bound(pipelines.preview_request, self.actor, data)
        except ValidationError as exc:
            self._show_invalid(exc)
            return
        except StudioError as exc:
            ui.notify(plain(exc), type="negative", multi_line=True)
            return
        self.preview.rows = [
            {
                "source": r.source,
                "target": r.target,
                "status": STATUS_WORDS[r.target_status],
                "rows": human_count(r.row_count),
                "pk": "yes" if r.has_primary_key else "no",
                "notes": " · ".join([f"✖ {e}" for e in r.errors] + [f"⚠ {w}" for w in r.warnings]),
            }
            for r in rows
        ]
        self.preview.update()

    async def _create(self) -> None:
        if not self.name.validate():
            self.error.text = NAME_REQUIRED
            return
        try:
            data = self.request()
            created = await run.io_bound(pipelines.create_pipeline, self.actor, data)
        except ValidationError as exc:
            self._show_invalid(exc)
            return
        except StudioError as exc:
            self.error.text = plain(exc)
            ui.notify(plain(exc), type="negative", multi_line=True)
            return
        ui.notify(f"Pipeline '{created.name}' created", type="positive")
        ui.navigate.to(f"/pipelines/{created.id}")


async def edit_dialog(p: PipelinePublic, *, full: bool) -> dict | None:
    """Ask for a pipeline's new name, description, schedule and, with `full` (it does not run), its tables,
    table-error and schema-drift policies; the fields that changed (None when cancelled or unchanged)."""
    with ui.dialog() as dialog, ui.card().classes("w-[36rem]"):
        ui.label(f"Edit pipeline '{p.name}'").classes("text-lg font-semibold")
        name = ui.input("Name", value=p.name, validation={NAME_REQUIRED: _named}).classes("w-full").mark("e-name")
        description = ui.textarea("Description", value=p.description).classes("w-full").mark("e-description")
        schedule = ui.input("Cron schedule (UTC; full-load-only)", value=p.schedule or "").classes("w-full")
        schedule.mark("e-schedule").set_enabled(p.mode == "FULL_LOAD_ONLY")
        validation = ui.input("Validate the data on a schedule (cron, UTC)", value=p.validation_schedule or "")
        validation.classes("w-full").mark("e-validation-schedule")
        tables = ui.input("Tables (names or patterns, comma-separated)", value=", ".join(p.tables))
        tables.classes("w-full").mark("e-tables")
        on_error = ui.select(dict(ON_TABLE_ERROR_LABELS), value=p.on_table_error, label="When one table fails")
        on_error.classes("w-full").mark("e-on-table-error")
        drift = ui.select(dict(SCHEMA_DRIFT_LABELS), value=p.schema_drift, label="When the source schema changes")
        drift.classes("w-full").mark("e-schema-drift")
        for field in (tables, on_error, drift):
            field.set_enabled(full)
        if not full:
            ui.label("Stop the pipeline to change its tables and policies.").classes("text-sm text-grey-7")
        with ui.row().classes("w-full justify-end gap-2"):
            ui.button("Cancel", on_click=lambda: dialog.submit(None)).props("flat").mark("e-cancel")
            ui.button("Save", on_click=lambda: name.validate() and dialog.submit(True)).mark("e-save")
    try:
        if not await dialog:
            return None
    finally:
        dialog.delete()
    values: dict = {"name": name.value.strip(), "description": description.value or ""}
    if p.mode == "FULL_LOAD_ONLY":
        values["schedule"] = schedule.value.strip() or None
    values["validation_schedule"] = validation.value.strip() or None
    if full:
        values.update(tables=_split(tables.value), on_table_error=on_error.value, schema_drift=drift.value)
    current = p.model_dump()
    return {k: v for k, v in values.items() if v != current.get(k)} or None
