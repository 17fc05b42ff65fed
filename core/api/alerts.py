"""Health, alerts and alert rules: GET /monitoring/health, /monitoring/pipelines/{id}/health,
/monitoring/alerts (+ ack, silence) and /alert-rules. Viewers read; editors and admins change."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field

from core.api.deps import current_actor
from core.monitoring import alerts, channels, health, rules
from core.monitoring.alerts import AlertPublic
from core.monitoring.channels import DeliveryPublic
from core.monitoring.health import HealthReport
from core.monitoring.rules import AlertRuleCreate, AlertRulePublic, AlertRuleUpdate
from core.users import Actor

router = APIRouter(tags=["alerts"])


class SilenceBody(BaseModel):
    hours: float = Field(gt=0, le=24 * 31)


@router.get("/monitoring/health", response_model=HealthReport)
def system_health(actor: Actor = Depends(current_actor)) -> HealthReport:
    """The app's own health: scheduler, app database, health checks keeping time."""
    return health.system_health(actor)


@router.get("/monitoring/pipelines/{pipeline_id}/health", response_model=HealthReport)
def pipeline_health(pipeline_id: int, actor: Actor = Depends(current_actor)) -> HealthReport:
    """The latest health checks of a pipeline."""
    return health.pipeline_health(actor, pipeline_id)


@router.get("/monitoring/alerts", response_model=list[AlertPublic])
def list_alerts(
    state: Literal["firing", "resolved", "all"] = "firing",
    pipeline_id: int | None = None,
    limit: int = Query(200, ge=1, le=1000),
    actor: Actor = Depends(current_actor),
) -> list[AlertPublic]:
    """Alerts newest first: firing, resolved, or all."""
    return alerts.list_alerts(actor, state, pipeline_id, limit)


@router.post("/monitoring/alerts/{alert_id}/ack", response_model=AlertPublic)
def ack(alert_id: int, actor: Actor = Depends(current_actor)) -> AlertPublic:
    """Acknowledge an alert: its reminders stop."""
    return alerts.ack(actor, alert_id)


@router.post("/monitoring/alerts/{alert_id}/silence", response_model=AlertPublic)
def silence(alert_id: int, body: SilenceBody, actor: Actor = Depends(current_actor)) -> AlertPublic:
    """No notifications of an alert for `hours`."""
    return alerts.silence(actor, alert_id, body.hours)


@router.get("/monitoring/alerts/{alert_id}/notifications", response_model=list[DeliveryPublic])
def notifications(alert_id: int, actor: Actor = Depends(current_actor)) -> list[DeliveryPublic]:
    """Every notification sent (or tried) for an alert, with each attempt's outcome."""
    return channels.deliveries_of_alert(actor, alert_id)


@router.get("/alert-rules", response_model=list[AlertRulePublic])
def list_rules(pipeline_id: int | None = None, actor: Actor = Depends(current_actor)) -> list[AlertRulePublic]:
    """The default rules and, with pipeline_id, that pipeline's own (which override the defaults of their kind)."""
    return rules.list_rules(actor, pipeline_id)


@router.post("/alert-rules", response_model=AlertRulePublic, status_code=201)
def create_rule(body: AlertRuleCreate, actor: Actor = Depends(current_actor)) -> AlertRulePublic:
    """Add a rule: pipeline_id null is a default for every pipeline."""
    return rules.create_rule(actor, body)


@router.put("/alert-rules/{rule_id}", response_model=AlertRulePublic)
def update_rule(rule_id: int, body: AlertRuleUpdate, actor: Actor = Depends(current_actor)) -> AlertRulePublic:
    """Change a rule's threshold, duration, severity or on/off."""
    return rules.update_rule(actor, rule_id, body)


@router.delete("/alert-rules/{rule_id}", status_code=204)
def delete_rule(rule_id: int, actor: Actor = Depends(current_actor)) -> Response:
    """Remove a rule."""
    rules.delete_rule(actor, rule_id)
    return Response(status_code=204)
