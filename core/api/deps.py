"""Request dependencies of the REST API: the bearer token's user."""

from __future__ import annotations

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from core import tokens
from core.api.context import set_request_actor
from core.errors import AuthenticationRequired
from core.security import decode_login_token
from core.users import Actor, actor_by_id

_bearer = HTTPBearer(
    auto_error=False, description="A token from POST /api/v1/auth/token, or a personal API token (cdcs_...)"
)


def current_actor(credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Actor:
    """The user of the request's bearer token (a login token or a personal API token); 401 without a valid one."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise AuthenticationRequired("this route needs 'Authorization: Bearer <token>' (POST /api/v1/auth/token)")
    if tokens.is_api_token(credentials.credentials):
        actor = tokens.actor_for_token(credentials.credentials)
    else:
        actor = actor_by_id(*decode_login_token(credentials.credentials))
    set_request_actor(actor)
    return actor
