"""Every API route (from the OpenAPI document) and every page, called as each kind of caller, against one
table of who may do what.

Callers: anonymous, a malformed token, viewer, editor and admin login tokens, personal API tokens (an admin's
token made with the viewer role must act as a viewer), and a revoked and an expired personal token. Routes
are called with ids that do not exist and empty bodies, so a caller who may call a route gets a 404 or a
422 and nothing changes; one who may not gets 401 or 403 whatever the body. No caller ever gets a 500.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from nicegui.client import Client
from nicegui.testing import User

from tests.api.conftest import make_user
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.ui.helpers import login

RANK = {"public": 0, "viewer": 1, "editor": 2, "admin": 3}

# Who may call each route: the least role (or "public": no token). One table, kept by hand: a route added
# without a line here fails test_every_route_is_in_the_table.
API: dict[tuple[str, str], str] = {
    ("GET", "/api/v1/health"): "public",
    ("POST", "/api/v1/auth/token"): "public",
    ("GET", "/api/v1/auth/me"): "viewer",
    ("POST", "/api/v1/auth/password"): "viewer",
    # personal API tokens: everyone has their own
    ("GET", "/api/v1/tokens"): "viewer",
    ("POST", "/api/v1/tokens"): "viewer",
    ("DELETE", "/api/v1/tokens/{token_id}"): "viewer",
    # accounts, audit, settings
    ("GET", "/api/v1/users"): "admin",
    ("POST", "/api/v1/users"): "admin",
    ("GET", "/api/v1/users/{user_id}"): "admin",
    ("PUT", "/api/v1/users/{user_id}"): "admin",
    ("DELETE", "/api/v1/users/{user_id}"): "admin",
    ("POST", "/api/v1/users/{user_id}/password"): "admin",
    ("GET", "/api/v1/audit"): "admin",
    ("GET", "/api/v1/settings"): "viewer",
    ("PUT", "/api/v1/settings"): "admin",
    # connections
    ("GET", "/api/v1/connections"): "viewer",
    ("POST", "/api/v1/connections"): "editor",
    ("POST", "/api/v1/connections/test"): "editor",
    ("GET", "/api/v1/connections/{connection_id}"): "viewer",
    ("PUT", "/api/v1/connections/{connection_id}"): "editor",
    ("DELETE", "/api/v1/connections/{connection_id}"): "editor",
    ("POST", "/api/v1/connections/{connection_id}/test"): "editor",
    ("GET", "/api/v1/connections/{connection_id}/tests"): "viewer",
    ("GET", "/api/v1/connections/{connection_id}/readiness"): "viewer",
    ("GET", "/api/v1/connections/{connection_id}/databases"): "viewer",
    ("GET", "/api/v1/connections/{connection_id}/schemas"): "viewer",
    ("GET", "/api/v1/connections/{connection_id}/tables"): "viewer",
    ("GET", "/api/v1/connections/{connection_id}/tables/{schema}/{table}"): "viewer",
    ("GET", "/api/v1/connections/{connection_id}/tables/{schema}/{table}/count"): "viewer",
    ("GET", "/api/v1/connections/{connection_id}/dependencies"): "viewer",
    # pipelines
    ("GET", "/api/v1/pipelines"): "viewer",
    ("POST", "/api/v1/pipelines"): "editor",
    ("GET", "/api/v1/pipelines/{pipeline_id}"): "viewer",
    ("PUT", "/api/v1/pipelines/{pipeline_id}"): "editor",
    ("DELETE", "/api/v1/pipelines/{pipeline_id}"): "editor",
    ("GET", "/api/v1/pipelines/{pipeline_id}/tables/preview"): "viewer",
    ("GET", "/api/v1/pipelines/{pipeline_id}/schema/diff"): "viewer",
    ("POST", "/api/v1/pipelines/{pipeline_id}/validate"): "viewer",
    ("POST", "/api/v1/pipelines/{pipeline_id}/start"): "editor",
    ("POST", "/api/v1/pipelines/{pipeline_id}/stop"): "editor",
    ("POST", "/api/v1/pipelines/{pipeline_id}/pause"): "editor",
    ("POST", "/api/v1/pipelines/{pipeline_id}/restart"): "editor",
    ("POST", "/api/v1/pipelines/{pipeline_id}/resume"): "editor",
    ("POST", "/api/v1/pipelines/{pipeline_id}/recover"): "editor",
    ("GET", "/api/v1/pipelines/{pipeline_id}/progress"): "viewer",
    ("POST", "/api/v1/pipelines/{pipeline_id}/tables/{source}/retry"): "editor",
    ("POST", "/api/v1/pipelines/{pipeline_id}/data-checks"): "editor",
    ("GET", "/api/v1/pipelines/{pipeline_id}/data-checks/{check_id}"): "viewer",
    ("GET", "/api/v1/pipelines/{pipeline_id}/data-checks/{check_id}/mismatches"): "viewer",
    ("GET", "/api/v1/monitoring/pipelines/{pipeline_id}/data-quality"): "viewer",
    ("POST", "/api/v1/pipelines/{pipeline_id}/tables/{table}/resync"): "editor",
    ("GET", "/api/v1/pipelines/{pipeline_id}/schema/history"): "viewer",
    ("POST", "/api/v1/pipelines/{pipeline_id}/resync"): "editor",
    ("GET", "/api/v1/pipelines/{pipeline_id}/lag"): "viewer",
    ("GET", "/api/v1/pipelines/{pipeline_id}/status"): "viewer",
    ("GET", "/api/v1/pipelines/{pipeline_id}/runs"): "viewer",
    # monitoring
    ("GET", "/api/v1/monitoring/dashboard"): "viewer",
    ("GET", "/api/v1/monitoring/events"): "viewer",
    ("GET", "/api/v1/monitoring/health"): "viewer",
    ("GET", "/api/v1/monitoring/pipelines/{pipeline_id}/health"): "viewer",
    ("GET", "/api/v1/monitoring/pipelines/{pipeline_id}/metrics"): "viewer",
    ("GET", "/api/v1/monitoring/pipelines/{pipeline_id}/metrics/history"): "viewer",
    ("GET", "/api/v1/monitoring/pipelines/{pipeline_id}/lag"): "viewer",
    ("GET", "/api/v1/monitoring/pipelines/{pipeline_id}/tables/stats"): "viewer",
    ("GET", "/api/v1/monitoring/pipelines/{pipeline_id}/metrics/tables"): "viewer",
    ("GET", "/api/v1/monitoring/sparklines"): "viewer",
    ("GET", "/api/v1/monitoring/alerts"): "viewer",
    ("POST", "/api/v1/monitoring/alerts/{alert_id}/ack"): "editor",
    ("POST", "/api/v1/monitoring/alerts/{alert_id}/silence"): "editor",
    ("GET", "/api/v1/monitoring/alerts/{alert_id}/notifications"): "viewer",
    ("GET", "/api/v1/alert-rules"): "viewer",
    ("POST", "/api/v1/alert-rules"): "editor",
    ("PUT", "/api/v1/alert-rules/{rule_id}"): "editor",
    ("DELETE", "/api/v1/alert-rules/{rule_id}"): "editor",
    ("GET", "/api/v1/channels"): "viewer",
    ("POST", "/api/v1/channels"): "editor",
    ("GET", "/api/v1/channels/{channel_id}"): "viewer",
    ("PUT", "/api/v1/channels/{channel_id}"): "editor",
    ("DELETE", "/api/v1/channels/{channel_id}"): "editor",
    ("POST", "/api/v1/channels/{channel_id}/test"): "editor",
    ("GET", "/api/v1/channels/{channel_id}/deliveries"): "viewer",
    # Kafka Connect
    ("GET", "/api/v1/connect"): "viewer",
    ("GET", "/api/v1/connect/plugins"): "viewer",
    ("GET", "/api/v1/connect/connectors/{name}"): "viewer",
    ("PUT", "/api/v1/connect/connectors/{name}/config"): "editor",
    ("PUT", "/api/v1/connect/validate"): "viewer",
    ("POST", "/api/v1/connect/connectors/{name}/{action}"): "editor",
    ("DELETE", "/api/v1/connect/connectors/{name}"): "editor",
    # Prometheus, at the root: a token unless CDC_STUDIO_METRICS_PUBLIC=true
    ("GET", "/metrics"): "viewer",
}

# Pages: the least role that gets the page itself (others see its "... denied" notice); None: public.
PAGES: dict[str, str | None] = {
    "/login": None,
    "/setup": None,
    "/": "viewer",
    "/connections": "viewer",
    "/connections/{connection_id}": "viewer",
    "/pipelines": "viewer",
    "/pipelines/new": "editor",
    "/pipelines/{pipeline_id}": "viewer",
    "/connectors": "viewer",
    "/events": "viewer",
    "/alerts": "viewer",
    "/users": "admin",
    "/settings": "admin",
    "/audit": "admin",
    "/tokens": "viewer",
    "/account": "viewer",
}

PARAMS = {"action": "pause", "schema": "nope", "table": "nope", "source": "nope", "name": "no-such-connector"}


def concrete(path: str) -> str:
    """The route's path with ids that exist nowhere (and names that match nothing)."""
    return re.sub(r"\{([^}]+)\}", lambda m: PARAMS.get(m.group(1), "999999"), path)


async def api_routes(client: httpx.AsyncClient) -> list[tuple[str, str]]:
    spec = (await client.get("/openapi.json")).json()
    return sorted((m.upper(), p) for p, ops in spec["paths"].items() for m in ops)


async def test_every_route_is_in_the_table(client: httpx.AsyncClient) -> None:
    routes = set(await api_routes(client))
    assert routes - set(API) == set(), "routes nobody classified: add them to API"
    assert set(API) - routes == set(), "routes in the table the app no longer has"
    pages = {route for route in Client.page_routes.values()}
    assert pages == set(PAGES), (pages - set(PAGES), set(PAGES) - pages)


async def personal_token(client: httpx.AsyncClient, who: dict[str, str], role: str, **extra) -> tuple[int, str]:
    r = await client.post("/api/v1/tokens", headers=who, json={"name": f"matrix {role}", "role": role, **extra})
    assert r.status_code == 201, r.text
    return r.json()["id"], r.json()["token"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


Callers = dict[str, tuple[dict[str, str], str | None]]


async def callers(client: httpx.AsyncClient, admin, editor, viewer) -> tuple[Callers, datetime]:  # noqa: ANN001
    """Each caller: its headers and the role it acts with (None: not signed in); and when the expiring token
    expires."""
    _, as_viewer = await personal_token(client, admin, "viewer")  # an admin's token capped to viewer
    _, editor_token = await personal_token(client, editor, "editor")
    revoked_id, revoked = await personal_token(client, admin, "admin")
    assert (await client.delete(f"/api/v1/tokens/{revoked_id}", headers=admin)).status_code == 204
    soon = datetime.now(UTC) + timedelta(seconds=2)
    _, expiring = await personal_token(client, admin, "admin", expires_at=soon.isoformat())
    return {
        "anonymous": ({}, None),
        "malformed": ({"Authorization": "Bearer not-a-token"}, None),
        "viewer": (viewer, "viewer"),
        "editor": (editor, "editor"),
        "admin": (admin, "admin"),
        "admin's viewer token": (bearer(as_viewer), "viewer"),
        "editor's token": (bearer(editor_token), "editor"),
        "revoked token": (bearer(revoked), None),
        "expired token": (bearer(expiring), None),
    }, soon


async def test_every_route_answers_each_caller_as_the_table_says(client, admin, editor, viewer) -> None:  # noqa: ANN001
    who, expires = await callers(client, admin, editor, viewer)
    while datetime.now(UTC) <= expires:  # then the expiring token has expired
        await asyncio.sleep(0.2)
    wrong: list[str] = []
    for method, path in await api_routes(client):
        need = API[(method, path)]
        url = concrete(path)
        for name, (headers, role) in who.items():
            body = {"json": {}} if method in ("POST", "PUT", "PATCH") else {}
            if path == "/api/v1/auth/token":
                body = {"json": {"email": "nobody@example.com", "password": "x"}}
            r = await client.request(method, url, headers=headers, **body)
            if r.status_code >= 500:
                wrong.append(f"{method} {url} as {name}: {r.status_code} {r.text[:200]}")
                continue
            if need == "public":
                allowed = True
            elif role is None:
                allowed = False
                if r.status_code != 401:
                    wrong.append(f"{method} {url} as {name}: {r.status_code}, expected 401")
                continue
            else:
                allowed = RANK[role] >= RANK[need]
            refused = r.status_code in (401, 403)
            if allowed == refused and path != "/api/v1/auth/token":  # a wrong password is a 401 to anyone
                expected = "an answer" if allowed else "403"
                wrong.append(f"{method} {url} as {name}: {r.status_code}, expected {expected}: {r.text[:160]}")
    assert not wrong, "\n".join(wrong)


async def test_refusals_come_before_the_body_is_read(client, viewer) -> None:  # noqa: ANN001
    """A viewer posting a half-filled form is told it may not, not which field is missing."""
    r = await client.post("/api/v1/connections", headers=viewer, json={"name": "x"})
    assert r.status_code == 403 and "viewer" in r.json()["detail"], r.text
    r = await client.post("/api/v1/connections", json={"name": "x"})
    assert r.status_code == 401, r.text


async def signed_in(create_user, email: str, password: str) -> User:  # noqa: ANN001
    user = create_user()
    await login(user, email, password)
    return user


def denied(user: User) -> bool:
    """Whether the page shows a refusal instead of itself (pages mark it `<page>-denied`)."""
    markers = {m for e in user.client.elements.values() for m in e._markers}  # noqa: SLF001 - test inspection
    return any(m.endswith("-denied") for m in markers)


@pytest.mark.parametrize("role", ["viewer", "editor", "admin"])
async def test_every_page_for_each_role(role: str, client, admin, create_user) -> None:  # noqa: ANN001
    if role != "admin":
        await make_user(client, admin, role)
    others = (f"{role}@example.com", f"{role}-password-1")  # what make_user gives
    email, password = (ADMIN_EMAIL, ADMIN_PASSWORD) if role == "admin" else others
    user = await signed_in(create_user, email, password)
    wrong = []
    for route, need in PAGES.items():
        if need is None:
            continue
        await user.open(concrete(route))
        is_denied = denied(user)
        if (RANK[role] >= RANK[need]) == is_denied:
            wrong.append(f"{route} as {role}: {'denied' if is_denied else 'shown'}")
    assert not wrong, wrong


async def test_anonymous_pages_go_to_login(client: httpx.AsyncClient) -> None:
    for route, need in PAGES.items():
        r = await client.get(concrete(route), follow_redirects=False)
        if need is None:
            assert r.status_code in (200, 307) and r.headers.get("location", "/login").startswith(("/login", "/setup"))
        else:
            assert r.status_code in (302, 303, 307), (route, r.status_code)
            assert r.headers["location"].startswith("/login"), (route, r.headers["location"])
