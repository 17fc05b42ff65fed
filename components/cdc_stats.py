"""A pipeline's live CDC figures: events/s, counts by operation, lag and the slot's retained WAL."""

from __future__ import annotations

from nicegui import ui

from components.format import human_bytes, human_count


class CdcStats(ui.column):
    """Cards updated from `pipeline.lag` events (every ~2 s while the worker runs) or, while nothing streams,
    from the source's slot read on a timer; a warning (marker `cdc-slot-warning`) when a slot nobody reads
    keeps WAL on the source."""

    def __init__(self) -> None:
        super().__init__()
        self.classes("gap-2")
        self._values: dict[str, ui.label] = {}
        cards = [
            ("rate", "Events/s"),
            ("counts", "Insert · update · delete"),
            ("lag", "Behind (WAL)"),
            ("seconds", "Behind (last commit)"),
            ("retained", "Slot retains"),
        ]
        with self, ui.row().classes("gap-4"):  # the cards side by side
            for key, title in cards:
                with ui.card().classes("min-w-40"):
                    ui.label(title).classes("text-grey-7 text-sm")
                    self._values[key] = ui.label("—").classes("text-xl font-semibold").mark(f"cdc-{key}")
        with self:
            self.warning = ui.label().classes("text-warning-10 bg-amber-1 p-2 rounded whitespace-pre-wrap")
            self.warning.mark("cdc-slot-warning")
        self.warning.visible = False

    def show(self, d: dict) -> None:
        """Display a figures dict (core.cdc.engine.lag_dict or core.pipelines.lag)."""
        v = self._values
        v["rate"].text = f"{d.get('events_per_second') or 0:,.1f}"
        v["counts"].text = " · ".join(
            human_count(d.get(k) or 0) for k in ("insert_count", "update_count", "delete_count")
        )
        v["lag"].text = human_bytes(d.get("lag_bytes"))
        seconds = d.get("seconds_behind")
        v["seconds"].text = "—" if seconds is None else f"{seconds:.2f} s"
        v["retained"].text = human_bytes(d.get("retained_wal_bytes"))
        if "slot_warning" in d or d.get("slot_active"):  # a worker's figures: its slot is being read
            self.warning.text = d.get("slot_warning") or ""
            self.warning.visible = bool(d.get("slot_warning"))
