"""Who may call which API route, decided before the request body is read.

Every route under /api/v1 passes `route_gate` first: it finds the route's rule in RULES (the first rule whose
method and path prefix match) and answers 401 without a valid token and 403 for a role that may not, before
FastAPI validates the body, so a viewer posting a half-filled form learns that it may not, not which field
is missing. The core functions check the role again (the pages call them directly). A route no rule covers
is admins-only: a new route is closed until someone says who may call it (tests/api/test_route_matrix.py
fails until it is classified).
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials

from core.api.deps import _bearer, current_actor
from core.errors import PermissionDenied
from core.security import Action, require

PUBLIC = "public"
"""No token needed."""

READ_METHODS = frozenset({"GET", "HEAD"})
ANY = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})
WRITE = ANY - READ_METHODS


@dataclass(frozen=True)
class Rule:
    methods: frozenset[str]
    prefix: str  # a path template under /api/v1; matches itself and what lies under it ("/users" and "/users/{id}")
    need: Action | str


RULES: tuple[Rule, ...] = (
    Rule(frozenset({"GET"}), "/health", PUBLIC),
    Rule(frozenset({"POST"}), "/auth/token", PUBLIC),
    # one's own account and personal tokens: any role
    Rule(ANY, "/auth", Action.read),
    Rule(ANY, "/tokens", Action.read),
    # accounts and the audit trail: admins
    Rule(ANY, "/users", Action.manage_users),
    Rule(ANY, "/audit", Action.manage_users),
    Rule(WRITE, "/settings", Action.manage_settings),
    # checks that write nothing lasting
    Rule(frozenset({"POST"}), "/pipelines/{pipeline_id}/validate", Action.read),
    Rule(frozenset({"PUT"}), "/connect/validate", Action.read),
    Rule(WRITE, "/connections", Action.manage_connections),
    Rule(WRITE, "/pipelines", Action.manage_pipelines),
    Rule(WRITE, "/connect", Action.manage_pipelines),
    Rule(WRITE, "/channels", Action.manage_pipelines),
    Rule(WRITE, "/alert-rules", Action.manage_pipelines),
    Rule(WRITE, "/monitoring/alerts", Action.manage_pipelines),
    # reading anything else: any role
    Rule(READ_METHODS, "/", Action.read),
)

API_PREFIX = "/api/v1"
PASSWORD_CHANGE_ROUTES = {("POST", "/auth/password"), ("GET", "/auth/me")}
"""All a user whose password an admin reset with must_change may call until they set their own."""


def _under(path: str, prefix: str) -> bool:
    return prefix == "/" or path == prefix or path.startswith(prefix.rstrip("/") + "/")


def rule_for(method: str, path: str) -> Rule | None:
    """The rule of a route (its path template, with or without /api/v1); None when no rule covers it."""
    path = path.removeprefix(API_PREFIX) or "/"
    return next((r for r in RULES if method.upper() in r.methods and _under(path, r.prefix)), None)


def route_gate(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
    """401/403 before the route runs (see the module's docstring)."""
    route = request.scope.get("route")
    template = getattr(route, "path", request.url.path).removeprefix(API_PREFIX)  # the router's own path
    rule = rule_for(request.method, template)
    if rule is not None and rule.need == PUBLIC:
        return
    actor = current_actor(credentials)
    if actor.must_change_password and (request.method, template) not in PASSWORD_CHANGE_ROUTES:
        raise PermissionDenied(
            "password change required: an admin reset it; set your own with POST /api/v1/auth/password"
        )
    require(actor, Action(rule.need) if rule is not None else Action.manage_users)
