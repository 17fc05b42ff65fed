"""A small card with a title and one big figure, as on the dashboard; a click opens what it counts."""

from __future__ import annotations

from nicegui import ui


class StatCard(ui.card):
    """Title above a figure; the figure's label carries `marker`; `link` makes the card open that page."""

    def __init__(self, title: str, value: str = "—", *, marker: str, link: str | None = None) -> None:
        super().__init__()
        self.classes("w-44")
        self.link = link
        self.mark(f"card-{marker}")
        if link:
            self.classes("cursor-pointer hover:shadow-lg transition-shadow")
            self.props(f'role="link" title="Open {link}"')
            self.on("click", lambda: ui.navigate.to(link))
        with self:
            ui.label(title).classes("text-grey-7")
            self.value = ui.label(value).classes("text-3xl font-semibold").mark(marker).props(f'data-testid="{marker}"')

    def show(self, value: str) -> None:
        """Replace the figure."""
        self.value.text = value
