"""An HTTP client on the real app (app.py run by NiceGUI's user simulation) and token helpers."""

from __future__ import annotations

import httpx
import pytest
from nicegui.testing import User

from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD


@pytest.fixture
async def client(app_env, user: User) -> httpx.AsyncClient:
    """httpx client talking to the ASGI app of a fresh CDC Studio."""
    return user.http_client


async def token_for(client: httpx.AsyncClient, email: str, password: str) -> dict[str, str]:
    r = await client.post("/api/v1/auth/token", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "bearer"
    return {"Authorization": f"Bearer {body['access_token']}"}


@pytest.fixture
async def admin(client: httpx.AsyncClient) -> dict[str, str]:
    return await token_for(client, ADMIN_EMAIL, ADMIN_PASSWORD)


async def make_user(client: httpx.AsyncClient, admin: dict[str, str], role: str) -> dict[str, str]:
    email, password = f"{role}@example.com", f"{role}-password-1"
    r = await client.post("/api/v1/users", headers=admin, json={"email": email, "password": password, "role": role})
    assert r.status_code == 201, r.text
    return await token_for(client, email, password)


@pytest.fixture
async def editor(client: httpx.AsyncClient, admin: dict[str, str]) -> dict[str, str]:
    return await make_user(client, admin, "editor")


@pytest.fixture
async def viewer(client: httpx.AsyncClient, admin: dict[str, str]) -> dict[str, str]:
    return await make_user(client, admin, "viewer")
