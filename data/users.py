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
