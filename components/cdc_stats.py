"""A pipeline's live CDC figures: events/s, counts by operation, lag and the slot's retained WAL."""

from __future__ import annotations

from nicegui import ui

from components.format import human_bytes, human_count


class CdcStats(ui.row):
    """Cards updated from `pipeline.lag` events (every ~2 s while the worker runs)."""

    def __init__(self) -> None:
        super().__init__()
        self.classes("gap-4")
        self._values: dict[str, ui.label] = {}
        cards = [
            ("rate", "Events/s"),
            ("counts", "Insert · update · delete"),
            ("lag", "Behind (WAL)"),
            ("seconds", "Behind (last commit)"),
            ("retained", "Slot retains"),
        ]
        with self:  # the cards belong in this row, side by side
            for key, title in cards:
                with ui.card().classes("min-w-40"):
                    ui.label(title).classes("text-grey-7 text-sm")
                    self._values[key] = ui.label("—").classes("text-xl font-semibold").mark(f"cdc-{key}")

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
