"""The Connectors page when no Kafka Connect cluster is configured (the real cluster: tests/kafka)."""

from __future__ import annotations

import pytest
from nicegui.testing import User

from tests.ui.helpers import WAIT, login


async def test_without_a_cluster_the_page_says_how_to_configure_one(
    app_env, monkeypatch: pytest.MonkeyPatch, user: User
) -> None:
    from core.config import get_settings

    monkeypatch.delenv("KAFKA_CONNECT_URL", raising=False)
    get_settings.cache_clear()
    await login(user)
    await user.open("/connectors")
    await user.should_see(marker="connect-not-configured", retries=WAIT)
    await user.should_see("KAFKA_CONNECT_URL", retries=WAIT)


async def test_an_unreachable_cluster_is_reported_in_words(
    app_env, monkeypatch: pytest.MonkeyPatch, user: User
) -> None:
    from core.config import get_settings
    from tests.pgcluster import free_port

    monkeypatch.setenv("KAFKA_CONNECT_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    get_settings.cache_clear()
    await login(user)
    await user.open("/connectors")
    await user.should_see(marker="connect-error", retries=WAIT)
    await user.should_see("Kafka Connect cannot be reached", retries=WAIT)
