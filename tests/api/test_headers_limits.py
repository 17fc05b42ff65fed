"""Security headers on pages and API answers; the REST API's request body size limit (413)."""

from __future__ import annotations

import httpx
import pytest
from nicegui.testing import User

from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD

LIMIT = 2048


@pytest.fixture
def small_limit(app_env, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 2 KiB body limit (request it before `user`)."""
    monkeypatch.setenv("CDC_STUDIO_MAX_BODY_BYTES", str(LIMIT))


def _assert_security_headers(r: httpx.Response) -> None:
    assert r.headers["content-security-policy"] == "frame-ancestors 'none'"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "same-origin"


async def test_pages_and_api_answers_carry_the_security_headers(app_env, user: User) -> None:
    client = user.http_client
    page = await client.get("/login")
    assert page.status_code == 200 and "<html" in page.text.lower()
    _assert_security_headers(page)
    health = await client.get("/api/v1/health")
    assert health.status_code == 200
    _assert_security_headers(health)
    refused = await client.get("/api/v1/users")
    assert refused.status_code == 401
    _assert_security_headers(refused)
    redirected = await client.get("/connections", follow_redirects=False)  # the pages' login redirect
    assert redirected.status_code in (302, 303, 307) and redirected.headers["location"].startswith("/login")
    _assert_security_headers(redirected)


async def test_an_oversized_api_body_is_refused_with_413(small_limit, user: User) -> None:
    client = user.http_client
    big = {"email": ADMIN_EMAIL, "password": "x" * (LIMIT + 10)}
    r = await client.post("/api/v1/auth/token", json=big)
    assert r.status_code == 413, r.text
    assert str(LIMIT) in r.json()["detail"]
    _assert_security_headers(r)

    async def chunks():  # streamed: no Content-Length, the limit is counted as it arrives
        for _ in range(4):
            yield b"x" * (LIMIT // 2 + 1)

    r = await client.post("/api/v1/auth/token", content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in r.request.headers
    assert r.status_code == 413 and "detail" in r.json()

    ok = await client.post("/api/v1/auth/token", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert ok.status_code == 200, ok.text  # a body under the limit reaches the route unchanged
