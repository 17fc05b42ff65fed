"""Notification channels, their test and delivery log. Handlers are sync: FastAPI runs them in worker threads."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Response

from core.api.deps import current_actor
from core.monitoring import channels as svc
from core.monitoring.channels import ChannelCreate, ChannelPublic, ChannelUpdate, DeliveryPublic, TestResult
from core.users import Actor

router = APIRouter(prefix="/channels", tags=["channels"])


@router.get("", response_model=list[ChannelPublic])
def list_channels(actor: Actor = Depends(current_actor)) -> list[ChannelPublic]:
    """Every channel. Secrets are write-only: each one a channel has shows as `"***"` in its `config`
    (webhook `secret`, Slack `webhook_url`, email `password`, PagerDuty `routing_key`)."""
    return svc.list_channels(actor)


@router.post("", response_model=ChannelPublic, status_code=201)
def create_channel(body: ChannelCreate, actor: Actor = Depends(current_actor)) -> ChannelPublic:
    """Create a channel; its config is checked for its kind (422 names the field), secrets are encrypted
    at rest and answered as `"***"`.

    Kinds and configs: `webhook` `{url, secret?}`, `slack` `{webhook_url}`, `email` `{host, port, security:
    "starttls"|"ssl"|"none", username?, password?, sender, recipients}`, `pagerduty` `{routing_key,
    events_url?}`. A webhook receives a POST of `{"alert": {id, kind, severity, state: "firing"|"resolved",
    pipeline_id, pipeline_name, object, message, value, threshold, started_at, resolved_at}, "event":
    "firing"|"resolved"|"reminder"|"test", "sent_at"}` (ISO-8601 UTC); with a secret, the header
    `X-CDC-Studio-Signature: sha256=<hex HMAC-SHA256 of the exact body bytes>`. Failed deliveries are
    retried (30 s doubling to 30 min, 8 attempts; a 429's Retry-After is honoured)."""
    return svc.create_channel(actor, body)


@router.get("/{channel_id}", response_model=ChannelPublic)
def get_channel(channel_id: int, actor: Actor = Depends(current_actor)) -> ChannelPublic:
    """One channel, secrets shown as `"***"`."""
    return svc.get_channel(actor, channel_id)


@router.put("/{channel_id}", response_model=ChannelPublic)
def update_channel(channel_id: int, body: ChannelUpdate, actor: Actor = Depends(current_actor)) -> ChannelPublic:
    """Edit a channel; fields left out keep their value. In `config`, a secret left out or sent back as
    `"***"` keeps the stored one, and a null or empty one removes it (where the kind allows)."""
    return svc.update_channel(actor, channel_id, body)


@router.delete("/{channel_id}", status_code=204)
def delete_channel(channel_id: int, actor: Actor = Depends(current_actor)) -> Response:
    """Delete a channel and its delivery log."""
    svc.delete_channel(actor, channel_id)
    return Response(status_code=204)


@router.post("/{channel_id}/test", response_model=TestResult)
def test_channel(channel_id: int, actor: Actor = Depends(current_actor)) -> TestResult:
    """Send a test notification now (short timeout): `{ok, status_code, error}`; it is logged as a
    delivery with event "test". A failed send is a result (200), not an error."""
    return svc.test_channel(actor, channel_id)


@router.get("/{channel_id}/deliveries", response_model=list[DeliveryPublic])
def deliveries(
    channel_id: int, limit: int = Query(100, ge=1, le=1000), actor: Actor = Depends(current_actor)
) -> list[DeliveryPublic]:
    """The channel's delivery log, newest first: every notification with its attempts, status and error."""
    return svc.list_deliveries(actor, channel_id=channel_id, limit=limit)
