"""The connector card (buttons only for editors, each naming its connector) and the config editor's parsing."""

from __future__ import annotations

import pytest
from nicegui import ui
from nicegui.testing import User

from components.connector_card import ConnectorCard
from components.connector_editor import parse_config
from core.connect_cluster import ConnectorView, TaskView
from tests.ui.helpers import WAIT, eventually, login

CONNECTOR = ConnectorView(
    name="orders",
    type="source",
    connector_class="io.debezium.connector.postgresql.PostgresConnector",
    state="RUNNING",
    tasks=[TaskView(id=0, state="FAILED", worker_id="w1", trace="java.lang.Boom")],
    topics=["orders.public.t"],
    pipeline_id=3,
)


def test_the_config_must_be_a_json_object() -> None:
    assert parse_config('{"a": "1"}') == {"a": "1"}
    assert parse_config("") == {}
    with pytest.raises(ValueError, match="JSON object"):
        parse_config("[1]")
    with pytest.raises(ValueError):
        parse_config("{not json")


async def test_an_editor_card_acts_on_its_connector(app_env, user: User) -> None:
    calls: list[tuple[str, str]] = []
    edited: list[str] = []

    @ui.page("/test-card")
    def page() -> None:
        async def act(name: str, action: str) -> None:
            calls.append((name, action))

        ConnectorCard(CONNECTOR, on_action=act, on_edit=lambda c: edited.append(c.name))

    await login(user)
    await user.open("/test-card")
    await user.should_see(marker="connector-orders", retries=WAIT)
    await user.should_see(marker="state-RUNNING")
    await user.should_see(marker="state-FAILED")
    await user.should_see("Topics: orders.public.t")
    await user.should_see("pipeline 3")
    for action in ("pause", "resume", "stop", "restart", "restart_failed", "delete"):
        user.find(marker=f"{action}-orders").click()
    user.find(marker="edit-orders").click()
    await eventually(lambda: len(calls) == 6)
    assert [a for _, a in calls] == ["pause", "resume", "stop", "restart", "restart_failed", "delete"]
    assert {n for n, _ in calls} == {"orders"} and edited == ["orders"]


async def test_a_read_only_card_has_no_buttons(app_env, user: User) -> None:
    @ui.page("/test-card-ro")
    def page() -> None:
        ConnectorCard(CONNECTOR)

    await login(user)
    await user.open("/test-card-ro")
    await user.should_see(marker="connector-orders", retries=WAIT)
    await user.should_not_see(marker="pause-orders")
    await user.should_not_see(marker="edit-orders")
    await user.should_not_see(marker="delete-orders")
