"""A small card with a title and one big figure, as on the dashboard."""

from __future__ import annotations

from nicegui import ui


class StatCard(ui.card):
    """Title above a figure; the figure's label carries `marker`."""

    def __init__(self, title: str, value: str = "—", *, marker: str) -> None:
        super().__init__()
        self.classes("w-44")
        with self:
            ui.label(title).classes("text-grey-7")
            self.value = ui.label(value).classes("text-3xl font-semibold").mark(marker)

    def show(self, value: str) -> None:
        """Replace the figure."""
        self.value.text = value
