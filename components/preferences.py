"""Per-user display preferences kept in app.storage.user: dark mode and 'always show UTC'."""

from __future__ import annotations

from nicegui import app, ui

DARK = "dark_mode"
UTC = "show_utc"
DARK_PRIMARY = "#4f8fcf"


def show_utc() -> bool:
    """Whether this person asked to see every time in UTC instead of the browser's time zone."""
    return bool(app.storage.user.get(UTC, False))


def dark_mode_on() -> bool:
    """Whether this person turned dark mode on."""
    return bool(app.storage.user.get(DARK, False))


def apply_preferences() -> ui.dark_mode:
    """Switch the page to the person's remembered light or dark mode."""
    if dark_mode_on():
        ui.colors(primary=DARK_PRIMARY)  # the light theme's navy is unreadable as link text on black
    return ui.dark_mode(value=dark_mode_on())


def _toggle(key: str) -> None:
    app.storage.user[key] = not app.storage.user.get(key, False)
    ui.navigate.reload()  # every time and colour on the page follows the new choice


def preference_items() -> None:
    """Account-menu items that flip the preferences (remembered per user)."""
    dark_label = "Light mode" if dark_mode_on() else "Dark mode"
    ui.menu_item(dark_label, on_click=lambda: _toggle(DARK)).mark("toggle-dark")
    utc_label = "Show local times" if show_utc() else "Always show UTC"
    ui.menu_item(utc_label, on_click=lambda: _toggle(UTC)).mark("toggle-utc")


def active_nav(path: str, current: str) -> bool:
    """Whether a navigation entry is the current page (its own path or a page below it)."""
    if path == "/":
        return current == "/"
    return current == path or current.startswith(path + "/")
