"""A pipeline's data quality block: each table's validation state and counts, Validate data / Count rows,
Resync rows / Reload table per table, the running check's progress, and the mismatched rows side by side
(source | target, the differing columns).

It calls core.datachecks in worker threads; while a check runs it re-reads it every POLL_S.
"""

from __future__ import annotations

from typing import Any

from nicegui import run, ui

from components.confirm import confirm
from components.format import state_badge_slot, time_cell_slot
from components.messages import plain
from components.preferences import show_utc
from core import datachecks, pipelines, schema_history
from core.cdc.schema_watch import Change
from core.datachecks import DataCheckCreate, DataCheckPublic, DataQualityRow, MismatchPublic, ResyncRequest
from core.errors import StudioError
from core.pipeline_schemas import PipelinePublic, SchemaChangePublic
from core.users import Actor

POLL_S = 2.0
STATE_COLORS = {
    "VALIDATED": "green-7",
    "MISMATCHED": "red-7",
    "SUSPENDED": "red-9",
    "VALIDATING": "blue-6",
    "PENDING": "grey-6",
    "NOT_VALIDATED": "grey-5",
    "NO_PRIMARY_KEY": "amber-8",
    "ERROR": "orange-9",
}
COLUMNS = [
    {"name": "table", "label": "Table", "field": "table", "align": "left"},
    {"name": "state", "label": "State", "field": "state", "align": "left"},
    {"name": "source_rows", "label": "Source rows", "field": "source_rows"},
    {"name": "target_rows", "label": "Target rows", "field": "target_rows"},
    {"name": "mismatched_rows", "label": "Mismatched", "field": "mismatched_rows"},
    {"name": "last_validated_at", "label": "Last validated", "field": "last_validated_at", "align": "left"},
    {"name": "schema_changes", "label": "Schema changes", "field": "schema_changes"},
]
ACTIONS = {"name": "actions", "label": "", "field": "actions"}
ACTIONS_SLOT = r"""
<q-td :props="props">
  <q-btn v-if="props.row.mismatched_rows > 0 && props.row.state !== 'VALIDATING'" flat dense icon="healing"
         label="Resync rows" @click="$parent.$emit('resync', props.row)" />
  <q-btn v-if="props.row.state !== 'VALIDATING'" flat dense icon="replay" label="Reload table"
         @click="$parent.$emit('reload', props.row)" />
</q-td>
"""
MISMATCH_COLUMNS = [
    {"name": "key", "label": "Key", "field": "key", "align": "left"},
    {"name": "kind", "label": "Kind", "field": "kind", "align": "left"},
    {"name": "column", "label": "Column", "field": "column", "align": "left"},
    {"name": "source", "label": "Source", "field": "source", "align": "left"},
    {"name": "target", "label": "Target", "field": "target", "align": "left"},
]
KIND_WORDS = {"missing": "missing on the target", "extra": "only on the target", "different": "different"}
HISTORY_COLUMNS = [
    {"name": "detected_at", "label": "When", "field": "detected_at", "align": "left"},
    {"name": "table", "label": "Table", "field": "table", "align": "left"},
    {"name": "change", "label": "Change", "field": "change", "align": "left"},
    {"name": "detected_by", "label": "Seen in", "field": "detected_by", "align": "left"},
    {"name": "policy", "label": "Policy", "field": "policy", "align": "left"},
    {"name": "action", "label": "What was done", "field": "action", "align": "left"},
]
SEEN_IN = {"stream": "the change stream", "schedule": "the catalog scan"}


def history_rows(changes: list[SchemaChangePublic]) -> list[dict[str, Any]]:
    """The schema history as table rows, each change in words."""
    return [
        {
            "id": c.id,
            "detected_at": c.detected_at.isoformat(),
            "table": c.table,
            "change": Change(c.table, c.kind, c.column, c.before, c.after).describe(),
            "detected_by": SEEN_IN.get(c.detected_by, c.detected_by),
            "policy": c.policy,
            "action": c.action,
        }
        for c in changes
    ]


def mismatch_rows(found: list[MismatchPublic]) -> list[dict[str, Any]]:
    """One line per differing column (a missing or extra row: one line), source and target side by side."""
    out: list[dict[str, Any]] = []
    for n, m in enumerate(found):
        key = ", ".join(f"{k}={v}" for k, v in m.key.items())
        base = {"key": key, "kind": KIND_WORDS.get(m.kind, m.kind)}
        if m.data_withheld:
            out.append(base | {"id": f"{n}", "column": ", ".join(m.columns), "source": "(withheld)", "target": ""})
            continue
        if m.kind != "different":
            row = m.source or m.target or {}
            values = ", ".join(f"{k}={v}" for k, v in row.items() if k not in m.key)
            side = {"source": values, "target": "—"} if m.kind == "missing" else {"source": "—", "target": values}
            out.append(base | {"id": f"{n}", "column": "(row)"} | side)
            continue
        for c in m.columns:
            source, target = (m.source or {}).get(c), (m.target or {}).get(c)
            out.append(base | {"id": f"{n}.{c}", "column": c, "source": _text(source), "target": _text(target)})
    return out


def _text(value: Any) -> str:
    return "NULL" if value is None else str(value)


class DataQuality(ui.column):
    """Validation of one pipeline's tables."""

    def __init__(self, actor: Actor, pipeline_id: int, *, editor: bool) -> None:
        super().__init__()
        self.actor, self.pipeline_id = actor, pipeline_id
        self.running: int | None = None
        self.classes("w-full gap-2").mark("data-quality")
        with self:
            with ui.row().classes("items-center gap-2"):
                if editor:
                    ui.button("Validate data", icon="rule", on_click=lambda: self.start("full")).mark(
                        "validate-data"
                    ).tooltip("Compare every row (checksums of key ranges, down to the rows that differ)")
                    ui.button("Count rows", icon="functions", on_click=lambda: self.start("counts")).props(
                        "outline"
                    ).mark("count-data")
                self.status = ui.label().classes("text-grey-8").mark("data-check-status")
                self.scheduled = ui.label().classes("text-grey-7 text-sm").mark("data-check-schedule")
            self.table = (
                ui.table(columns=[*COLUMNS, ACTIONS] if editor else COLUMNS, rows=[], row_key="table")
                .classes("w-full")
                .props("flat bordered dense")
                .mark("data-quality-table")
            )
            self.table.add_slot("body-cell-state", state_badge_slot(STATE_COLORS))
            self.table.add_slot("body-cell-last_validated_at", time_cell_slot(show_utc()))
            if editor:
                self.table.add_slot("body-cell-actions", ACTIONS_SLOT)
                self.table.on("resync", lambda e: self.resync(e.args["table"], "rows"))
                self.table.on("reload", lambda e: self.resync(e.args["table"], "reload"))
            self.mismatch_title = ui.label().classes("font-medium mt-2").mark("mismatches-title")
            self.mismatches = (
                ui.table(columns=MISMATCH_COLUMNS, rows=[], row_key="id", pagination=20)
                .classes("w-full")
                .props("flat bordered dense wrap-cells")
                .mark("mismatches-table")
            )
            self.mismatches.set_visibility(False)
            ui.label("Schema history").classes("font-medium mt-2")
            self.history_empty = ui.label("No change of the source schema seen yet.").classes("text-grey-7")
            self.history = (
                ui.table(columns=HISTORY_COLUMNS, rows=[], row_key="id", pagination=10)
                .classes("w-full")
                .props("flat bordered dense wrap-cells")
                .mark("schema-history-table")
            )
            self.history.add_slot("body-cell-detected_at", time_cell_slot(show_utc()))
            self.history.set_visibility(False)
        self.timer = ui.timer(POLL_S, self.poll, active=False)

    async def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return await run.io_bound(fn, *args)
        except StudioError as exc:
            ui.notify(plain(exc), type="negative", multi_line=True)
            return None

    async def load(self) -> None:
        """The tables' states, the newest check's line, and the mismatches of the tables that have some."""
        quality: list[DataQualityRow] | None = await self._call(datachecks.data_quality, self.actor, self.pipeline_id)
        if quality is None:
            return
        self.table.rows = [q.model_dump(mode="json") for q in quality]
        latest: DataCheckPublic | None = await self._call(datachecks.latest_check, self.actor, self.pipeline_id)
        self.show_check(latest)
        p: PipelinePublic | None = await self._call(pipelines.get_pipeline, self.actor, self.pipeline_id)
        if p is not None and p.validation_schedule:
            when = f", next at {p.next_validation_at:%Y-%m-%d %H:%M} UTC" if p.next_validation_at else ""
            self.scheduled.text = f"Validated on a schedule ({p.validation_schedule}){when}"
        else:
            self.scheduled.text = ""
        found: list[MismatchPublic] = []
        for q in quality:
            if q.mismatched_rows and q.check_id is not None:
                rows = await self._call(datachecks.mismatches, self.actor, self.pipeline_id, q.check_id, q.table, 200)
                found += rows or []
        self.mismatches.rows = mismatch_rows(found)
        self.mismatches.set_visibility(bool(found))
        self.mismatch_title.text = f"Rows that differ ({len(found)})" if found else ""
        changes: list[SchemaChangePublic] | None = await self._call(
            schema_history.history, self.actor, self.pipeline_id
        )
        self.history.rows = history_rows(changes or [])
        self.history.set_visibility(bool(changes))
        self.history_empty.set_visibility(not changes)

    def show_check(self, check: DataCheckPublic | None) -> None:
        if check is None:
            self.status.text = "Never validated."
            return
        if check.status == "running":
            busy = next((t for t in check.tables if t.state == "VALIDATING"), None)
            doing = f": {busy.table}, {busy.detail}" if busy and busy.detail else ""
            self.status.text = f"Check {check.id} ({check.mode}) running{doing}"
            self.running = check.id
            self.timer.activate()
            return
        ended = f"{check.status}" + (f": {check.error}" if check.error else "")
        self.status.text = f"Check {check.id} ({check.mode}) {ended}"
        self.running = None
        self.timer.deactivate()

    async def start(self, mode: str) -> None:
        created = await self._call(
            datachecks.start_check,
            self.actor,
            self.pipeline_id,
            DataCheckCreate(mode=mode),  # type: ignore[arg-type]
        )
        if created is not None:
            ui.notify(f"Data check {created.id} started", type="info")
            await self.load()

    async def resync(self, table: str, mode: str) -> None:
        """Write the differing rows from the source, or (asked first) copy the whole table again."""
        if mode == "reload":
            question = (
                f"Copy {table} again from the source? The other tables stream on meanwhile; the table's own "
                "changes are held during the copy and applied after it, none lost and none twice."
            )
            if not await confirm(question, "Reload", danger=False):
                return
        request = ResyncRequest(mode=mode)  # type: ignore[arg-type]
        done = await self._call(datachecks.resync_table, self.actor, self.pipeline_id, table, request)
        if done is None:
            return
        if mode == "rows":
            ui.notify(
                f"{table}: {done.rows} row(s) written from the source; validate again to confirm", type="positive"
            )
        else:
            ui.notify(f"{table} is being copied again", type="positive")
        await self.load()

    async def poll(self) -> None:
        if self.running is None:
            self.timer.deactivate()
            return
        check = await self._call(datachecks.get_check, self.actor, self.pipeline_id, self.running)
        if check is None or check.status != "running":
            await self.load()
        else:
            self.show_check(check)
