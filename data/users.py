"""Queries for users."""

from __future__ import annotations

from sqlmodel import Session, func, select

from data.models import User


def count_users(*, session: Session) -> int:
    return session.exec(select(func.count()).select_from(User)).one()


def get_user(*, session: Session, user_id: int) -> User | None:
    return session.get(User, user_id)


def get_user_by_email(*, session: Session, email: str) -> User | None:
    return session.exec(select(User).where(func.lower(User.email) == email.lower())).first()


def list_users(*, session: Session) -> list[User]:
    return list(session.exec(select(User).order_by(User.email)))


def add_user(*, session: Session, user: User) -> User:
    session.add(user)
    session.flush()
    session.refresh(user)
    return user


def count_active_admins(*, session: Session, excluding: int | None = None) -> int:
    """Active admin accounts, optionally leaving one user out (the one about to change)."""
    query = select(func.count()).select_from(User).where(User.role == "admin", User.is_active == True)  # noqa: E712
    if excluding is not None:
        query = query.where(User.id != excluding)
    return session.exec(query).one()


def delete_user(*, session: Session, user: User) -> None:
    """Remove an account (the audit trail keeps its email as text)."""
    session.delete(user)
    session.flush()
