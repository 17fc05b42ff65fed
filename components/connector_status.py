"""The Debezium connector behind a kafka_connect pipeline: its state and its tasks' states, in one line."""

from __future__ import annotations

from nicegui import ui


def connector_text(c: dict | None) -> str:
    """One line about a connector status dict ({name, state, tasks, warning}), or about its absence."""
    if c is None:
        return "Connector: not running (the app starts it with the pipeline)"
    tasks = ", ".join(f"task {t['id']} {t['state']}" for t in c["tasks"])
    text = f"Connector {c['name']}: {c['state']} · {tasks}"
    if c.get("warning"):
        text += f" — ⚠ {c['warning']}"
    return text


class ConnectorStatus(ui.label):
    """A line (marker `connector-state`) updated from the pipeline's status."""

    def __init__(self) -> None:
        super().__init__()
        self.classes("text-grey-8").mark("connector-state")

    def show(self, c: dict | None) -> None:
        """Display a connector status dict (None: no connector runs)."""
        self.text = connector_text(c)
