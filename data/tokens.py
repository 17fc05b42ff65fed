"""Queries for personal API tokens."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from data.models import ApiToken, User


def add_token(*, session: Session, token: ApiToken) -> ApiToken:
    session.add(token)
    session.flush()
    session.refresh(token)
    return token


def get_token(*, session: Session, token_id: int) -> ApiToken | None:
    return session.get(ApiToken, token_id)


def get_by_hash(*, session: Session, token_hash: str) -> ApiToken | None:
    return session.exec(select(ApiToken).where(ApiToken.token_hash == token_hash)).first()


def list_tokens(*, session: Session, user_id: int | None = None) -> list[tuple[ApiToken, str]]:
    """Tokens with their owner's email, newest first; one user's when `user_id` is given."""
    query = select(ApiToken, User.email).join(User, col(User.id) == col(ApiToken.user_id))
    if user_id is not None:
        query = query.where(ApiToken.user_id == user_id)
    return [(t, email) for t, email in session.exec(query.order_by(col(ApiToken.id).desc()))]


def touch(*, session: Session, token_id: int, at: datetime) -> None:
    """Record a use of the token."""
    token = session.get(ApiToken, token_id)
    if token is not None:
        token.last_used_at = at
        session.add(token)
