"""Tokens for the REST API, and health (no auth)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel
from sqlalchemy import text

from core.api.deps import current_actor
from core.security import create_access_token
from core.users import Actor, UserPublic, authenticate, get_user
from data.db import session_scope

router = APIRouter()

VERSION = "0.1.0"


class TokenRequest(BaseModel):
    email: str
    password: str


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"


@router.get("/health", tags=["health"])
def health() -> dict:
    """Liveness and app-database reachability; needs no token."""
    with session_scope() as session:
        session.connection().execute(text("SELECT 1"))  # plain SQL: not a select() for session.exec
        dialect = session.get_bind().dialect.name
    return {"status": "ok", "version": VERSION, "database": dialect}


@router.post("/auth/token", response_model=Token, tags=["auth"])
def issue_token(body: TokenRequest, request: Request) -> Token:
    """Exchange email and password for a bearer token (429 with Retry-After while sign-ins for the account or
    from this address are locked after repeated failures)."""
    actor = authenticate(body.email, body.password, request.client.host if request.client else "")
    return Token(access_token=create_access_token(actor.id, actor.role))


@router.get("/auth/me", response_model=UserPublic, tags=["auth"])
def me(actor: Actor = Depends(current_actor)) -> UserPublic:
    """The token's own account."""
    return get_user(Actor(id=actor.id, email=actor.email, role="admin"), actor.id)
