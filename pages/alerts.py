"""Alerts: what is firing and what fired, with its notifications; the rules; the channels alerts go to."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nicegui import run, ui

from components.alert_list import AlertList
from components.channel_form import KINDS, ChannelForm
from components.confirm import confirm
from components.frame import frame
from components.health_checks import HealthChecks
from components.live import on_events
from components.messages import plain
from components.rule_editor import RuleEditor
from core import pipelines
from core.errors import StudioError
from core.monitoring import alerts, channels, health, rules
from core.security import Action, can
from core.users import Actor

REFRESH_S = 10.0
PAST_SHOWN = 100


async def _call(label: str, fn: Callable[..., Any], *args: Any) -> Any:
    """A core call in a worker thread; a StudioError is told to the user (and None returned)."""
    try:
        return await run.io_bound(fn, *args)
    except StudioError as exc:
        ui.notify(f"{label}: {plain(exc)}", type="negative", multi_line=True)
        return None


async def alerts_page() -> None:
    """Tabs: alerts (firing, then past), rules, channels."""
    async with frame("Alerts") as actor:
        editor = can(actor.role, Action.manage_pipelines)
        names = {p.id: p.name for p in (await _call("Pipelines", pipelines.list_pipelines, actor) or [])}
        with ui.tabs().classes("w-full") as tabs:
            t_alerts = ui.tab("Alerts", icon="notifications_active")
            t_rules = ui.tab("Rules", icon="rule")
            t_channels = ui.tab("Channels", icon="send")
        with ui.tab_panels(tabs, value=t_alerts).classes("w-full"):
            with ui.tab_panel(t_alerts):
                await _alerts_tab(actor, editor)
            with ui.tab_panel(t_rules):
                await _rules_tab(actor, editor, names)
            with ui.tab_panel(t_channels):
                await _channels_tab(actor, editor, names)


async def _alerts_tab(actor: Actor, editor: bool) -> None:
    system = HealthChecks(marker="system-health")

    async def ack(alert_id: int) -> None:
        await _call("Acknowledge", alerts.ack, actor, alert_id)
        await refresh()

    async def silence(alert_id: int, hours: int) -> None:
        await _call("Silence", alerts.silence, actor, alert_id, hours)
        await refresh()

    async def notifications(alert_id: int) -> list:
        return await _call("Notifications", channels.deliveries_of_alert, actor, alert_id) or []

    ui.label("Firing").classes("text-lg font-semibold mt-2")
    firing = AlertList(
        on_ack=ack if editor else None,
        on_silence=silence if editor else None,
        on_notifications=notifications,
        empty="Nothing is firing.",
        marker="alerts-firing",
    )
    ui.label("Pending and past").classes("text-lg font-semibold mt-2")
    past = AlertList(on_notifications=notifications, empty="No past alerts.", marker="alerts-past")

    async def refresh() -> None:
        report = await _call("Health", health.system_health, actor)
        if report is not None:
            system.show(report)
        everything = await _call("Alerts", alerts.list_alerts, actor, "all", None, PAST_SHOWN)
        if everything is None:
            return
        firing.show([a for a in everything if a.state == "firing"])
        past.show([a for a in everything if a.state != "firing"])

    on_events(lambda _e: refresh(), topics=("alert.",), interval=2.0)
    ui.timer(REFRESH_S, refresh)
    await refresh()


async def _rules_tab(actor: Actor, editor: bool, names: dict[int, str]) -> None:
    ui.label(
        "Defaults apply to every pipeline; a pipeline's own rule of a kind (made on its page) replaces the defaults "
        "of that kind."
    ).classes("text-grey-7")

    async def save(rule_id: int, changes: dict) -> None:
        if await _call("Save rule", rules.update_rule, actor, rule_id, rules.AlertRuleUpdate(**changes)) is not None:
            ui.notify("Rule saved", type="positive")
        await refresh()

    async def delete(rule_id: int) -> None:
        await _call("Delete rule", rules.delete_rule, actor, rule_id)
        await refresh()

    editor_rows = RuleEditor(
        on_save=save if editor else None, on_delete=delete if editor else None, pipeline_names=names
    )

    async def refresh() -> None:
        found = await _call("Rules", rules.list_rules, actor, None)
        if found is not None:
            editor_rows.show(sorted(found, key=lambda r: (r.pipeline_id is not None, r.pipeline_id or 0, r.kind)))

    await refresh()


async def _channels_tab(actor: Actor, editor: bool, names: dict[int, str]) -> None:
    tab = _Channels(actor, names, editor)
    if editor:
        ui.button("New channel", icon="add", on_click=lambda: tab.open_form()).mark("new-channel")
    tab.box = ui.column().classes("w-full gap-2").mark("channels")
    await tab.refresh()


class _Channels:
    """The channels tab: the list, the form dialog, send test and delete."""

    box: ui.column

    def __init__(self, actor: Actor, names: dict[int, str], editor: bool) -> None:
        self.actor, self.names, self.editor = actor, names, editor

    async def open_form(self, channel: Any = None) -> None:
        """Create a channel, or edit `channel`."""
        with ui.dialog() as dialog, ui.card().classes("w-[36rem]"):
            ui.label("Edit channel" if channel else "New channel").classes("text-lg font-semibold")
            form = ChannelForm(self.names, channel)
            with ui.row().classes("justify-end w-full"):
                ui.button("Cancel", on_click=dialog.close).props("flat")
                ui.button("Save", on_click=lambda: dialog.submit(form.body())).mark("channel-save")
        body = await dialog
        if not body:
            return
        if channel is None:
            saved = await _call("Create channel", channels.create_channel, self.actor, body)
        else:
            saved = await _call("Save channel", channels.update_channel, self.actor, channel.id, body)
        if saved is not None:
            ui.notify(f"Channel '{saved.name}' saved", type="positive")
        await self.refresh()

    async def test(self, channel: Any) -> None:
        """Send a test notification now and say how it went."""
        result = await _call("Send test", channels.test_channel, self.actor, channel.id)
        if result is None:
            return
        message = f"{channel.name}: test sent" if result.ok else f"{channel.name}: {result.error}"
        ui.notify(message, type="positive" if result.ok else "negative", multi_line=True)

    async def delete(self, channel: Any) -> None:
        """Delete a channel once confirmed."""
        if await confirm(f"Delete channel '{channel.name}' and its delivery log?"):
            await _call("Delete channel", channels.delete_channel, self.actor, channel.id)
            await self.refresh()

    async def refresh(self) -> None:
        """Re-read the channels."""
        found = await _call("Channels", channels.list_channels, self.actor)
        if found is None:
            return
        self.box.clear()
        with self.box:
            if not found:
                ui.label("No channel yet: alerts are kept here but reach nobody.").classes("text-grey-7")
            for c in found:
                _channel_row(c, self.names, self.editor, self)


def _channel_row(c: Any, names: dict[int, str], editor: bool, tab: _Channels) -> None:
    routed = ", ".join(names.get(i, f"#{i}") for i in c.pipeline_ids) if c.pipeline_ids else "all pipelines"
    with ui.card().classes("w-full py-2").mark(f"channel-{c.id}"):
        with ui.row().classes("w-full items-center gap-3 no-wrap"):
            ui.badge(KINDS.get(c.kind, c.kind))
            with ui.column().classes("gap-0 flex-grow"):
                ui.label(c.name).classes("font-medium")
                state = "on" if c.enabled else "off"
                ui.label(f"{routed} · {c.min_severity} and above · {state}").classes("text-grey-7 text-sm")
            if editor:
                ui.button("Send test", icon="send", on_click=lambda: tab.test(c)).props("outline dense").mark(
                    f"test-channel-{c.id}"
                )
                ui.button(icon="edit", on_click=lambda: tab.open_form(c)).props("flat dense")
                ui.button(icon="delete", on_click=lambda: tab.delete(c)).props("flat dense")
