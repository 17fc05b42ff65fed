"""A pipeline's monitoring block: health checks, its alerts (ack, silence), the metrics charts and its rules.

It reads core.monitoring in worker threads and refreshes itself every REFRESH_S (the sampler writes a
point every 10 s) and when the user picks another range.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nicegui import run, ui

from components.alert_list import AlertList
from components.charts import CDC_CHARTS, metric_names
from components.health_checks import HealthChecks
from components.messages import plain
from components.metrics_panel import MetricsPanel
from components.rule_editor import RuleEditor
from core.errors import StudioError
from core.monitoring import alerts, channels, health, metrics, rules
from core.security import Action, can
from core.users import Actor

REFRESH_S = 10.0
CHART_METRICS = metric_names(CDC_CHARTS)


async def _call(label: str, fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return await run.io_bound(fn, *args)
    except StudioError as exc:
        ui.notify(f"{label}: {plain(exc)}", type="negative", multi_line=True)
        return None


class PipelineMonitoring(ui.column):
    """Health, alerts, charts and rules of one pipeline."""

    def __init__(self, actor: Actor, pipeline_id: int, *, cdc: bool) -> None:
        super().__init__()
        self.classes("w-full gap-2")
        self.actor, self.pipeline_id = actor, pipeline_id
        editor = can(actor.role, Action.manage_pipelines)
        with self:
            with ui.row().classes("w-full gap-8 no-wrap items-start"):
                self.health = HealthChecks(marker="pipeline-checks")
                with ui.column().classes("w-full gap-1"):
                    ui.label("Alerts").classes("text-grey-7")
                    self.alerts = AlertList(
                        on_ack=self.ack if editor else None,
                        on_silence=self.silence if editor else None,
                        on_notifications=self.notifications,
                        empty="Nothing is firing for this pipeline.",
                        marker="pipeline-alerts",
                    )
            self.panel = MetricsPanel(self.refresh_metrics, cdc=cdc)
            with ui.expansion("Alert rules for this pipeline", icon="rule").classes("w-full"):
                self.rules = RuleEditor(
                    on_save=self.save_rule if editor else None,
                    on_delete=self.delete_rule if editor else None,
                    on_override=self.override if editor else None,
                )
        ui.timer(REFRESH_S, self.refresh)

    async def start(self) -> None:
        """The first read of everything, rules included."""
        await self.refresh()
        await self.refresh_rules()

    async def refresh(self) -> None:
        """Health, alerts and charts as they are now."""
        report = await _call("Health", health.pipeline_health, self.actor, self.pipeline_id)
        if report is not None:
            self.health.show(report)
        found = await _call("Alerts", alerts.list_alerts, self.actor, "all", self.pipeline_id, 20)
        if found is not None:
            self.alerts.show([a for a in found if a.state != "resolved"] or [])
        await self.refresh_metrics(self.panel.range)

    async def refresh_metrics(self, range_: str) -> None:
        """The charts and the statistics over `range_`."""
        history = await _call("Metrics", metrics.history, self.actor, self.pipeline_id, range_, None, CHART_METRICS)
        per_table = await _call("Metrics", metrics.table_history, self.actor, self.pipeline_id, range_)
        stats = await _call("Statistics", metrics.table_stats, self.actor, self.pipeline_id)
        if history is not None and per_table is not None and stats is not None:
            self.panel.show(history["series"], per_table["series"], stats)

    async def refresh_rules(self) -> None:
        """The rules that apply to this pipeline: its own, then the defaults of kinds it does not override."""
        found = await _call("Rules", rules.list_rules, self.actor, None)
        if found is None:
            return
        own = [r for r in found if r.pipeline_id == self.pipeline_id]
        kinds = {r.kind for r in own}
        defaults = [r for r in found if r.pipeline_id is None and r.kind not in kinds]
        self.rules.show(sorted(own, key=lambda r: r.kind) + sorted(defaults, key=lambda r: r.kind))

    async def ack(self, alert_id: int) -> None:
        """Acknowledge an alert."""
        await _call("Acknowledge", alerts.ack, self.actor, alert_id)
        await self.refresh()

    async def silence(self, alert_id: int, hours: int) -> None:
        """Silence an alert for some hours."""
        await _call("Silence", alerts.silence, self.actor, alert_id, hours)
        await self.refresh()

    async def notifications(self, alert_id: int) -> list:
        """What was sent for an alert."""
        return await _call("Notifications", channels.deliveries_of_alert, self.actor, alert_id) or []

    async def save_rule(self, rule_id: int, changes: dict) -> None:
        """Save a pipeline's own rule."""
        if await _call("Save rule", rules.update_rule, self.actor, rule_id, rules.AlertRuleUpdate(**changes)):
            ui.notify("Rule saved", type="positive")
        await self.refresh_rules()

    async def delete_rule(self, rule_id: int) -> None:
        """Remove a pipeline's own rule: the defaults of its kind apply again."""
        await _call("Delete rule", rules.delete_rule, self.actor, rule_id)
        await self.refresh_rules()

    async def override(self, default: Any) -> None:
        """Give this pipeline its own copies of the default rules of a kind, to edit (its own rules of a kind
        replace all the defaults of that kind, so each of them is copied: a warning and a critical level stay)."""
        found = await _call("Rules", rules.list_rules, self.actor, None) or []
        for r in [r for r in found if r.pipeline_id is None and r.kind == default.kind]:
            body = rules.AlertRuleCreate(
                pipeline_id=self.pipeline_id,
                kind=r.kind,
                threshold=r.threshold,
                for_seconds=r.for_seconds,
                severity=r.severity,
                enabled=r.enabled,
            )
            if not await _call("Customize rule", rules.create_rule, self.actor, body):
                break
        else:
            ui.notify(f"{default.kind}: this pipeline now has its own rules", type="positive")
        await self.refresh_rules()
