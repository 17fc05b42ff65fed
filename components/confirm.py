"""A yes/no dialog that can be awaited."""

from __future__ import annotations

from nicegui import ui


async def confirm(message: str, ok_label: str = "Delete", *, danger: bool = True) -> bool:
    """Ask `message`; True only if the user pressed the OK button."""
    with ui.dialog() as dialog, ui.card().classes("w-96"):
        ui.label(message).classes("whitespace-pre-line").mark("confirm-message")
        with ui.row().classes("w-full justify-end gap-2"):
            ui.button("Cancel", on_click=lambda: dialog.submit(False)).props("flat").mark("confirm-cancel")
            ui.button(ok_label, on_click=lambda: dialog.submit(True)).props("color=negative" if danger else "").mark(
                "confirm-ok"
            )
    try:
        return bool(await dialog)
    finally:
        dialog.delete()
