"""Personal API tokens: create (shown once), list, revoke."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from core import tokens
from core.actor import Actor
from core.api.deps import current_actor
from core.tokens import TokenCreate, TokenCreated, TokenPublic

router = APIRouter(prefix="/tokens", tags=["tokens"])


@router.post("", response_model=TokenCreated, status_code=201)
def create_token(body: TokenCreate, actor: Actor = Depends(current_actor)) -> TokenCreated:
    """Make a personal API token (role: yours or lower; expiry optional). The token is shown only here."""
    return tokens.create_token(actor, body)


@router.get("", response_model=list[TokenPublic])
def list_tokens(actor: Actor = Depends(current_actor)) -> list[TokenPublic]:
    """Your tokens (an admin: everyone's), never the token itself."""
    return tokens.list_tokens(actor)


@router.delete("/{token_id}", status_code=204)
def revoke_token(token_id: int, actor: Actor = Depends(current_actor)) -> Response:
    """Revoke a token of yours (an admin: anyone's); it is refused (401) from then on."""
    tokens.revoke_token(actor, token_id)
    return Response(status_code=204)
