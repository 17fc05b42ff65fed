"""Helpers for UI tests with NiceGUI's simulated `user`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from nicegui import ui
from nicegui.testing import User

from core.security import Role
from core.users import Actor, UserCreate, actor_by_id, authenticate, create_user
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD

T = TypeVar("T")

WAIT = 100  # retries of 0.1 s: password hashing and database calls run in worker threads


async def login(user: User, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD) -> None:
    """Sign in through the login form and wait for the signed-in shell."""
    await user.open("/login")
    user.find(marker="email").type(email)
    user.find(marker="password").type(password)
    user.find(marker="login").click()
    await user.should_see(marker="user-menu", retries=WAIT)


def admin_actor() -> Actor:
    """The bootstrap admin of `app_env`."""
    return authenticate(ADMIN_EMAIL, ADMIN_PASSWORD)


def make_user(email: str, password: str, role: Role) -> Actor:
    """Create an account through the service layer, as the admin."""
    created = create_user(admin_actor(), UserCreate(email=email, password=password, role=role))
    return actor_by_id(created.id)


def table_rows(user: User, marker: str) -> list[dict]:
    """The rows of the one table with this marker (should_see does not look inside table cells)."""
    (table,) = [e for e in user.find(marker=marker).elements if isinstance(e, ui.table)]
    return table.rows


def set_value(user: User, marker: str, value: object) -> None:
    """Set the value of the one input/select with this marker."""
    for element in user.find(marker=marker).elements:
        element.value = value


async def eventually(check: Callable[[], T], timeout: float = 20.0) -> T:
    """Poll `check()` until it returns something truthy without raising AssertionError; return that."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
            error: AssertionError | None = None
        except AssertionError as exc:
            error = exc
        if asyncio.get_running_loop().time() > deadline:
            raise error or AssertionError(f"condition still false after {timeout} s")
        await asyncio.sleep(0.1)


def all_text(user: User) -> str:
    """Every prop, value and row of every element of the page, as one string (to look for leaks)."""
    parts = []
    for element in user.current_layout.descendants():
        parts.append(repr(element.props))
        parts.append(repr(getattr(element, "value", None)))
        parts.append(repr(getattr(element, "text", None)))
    return "\n".join(parts)


def stored_pipeline(name: str, mode: str = "CDC_ONLY", engine: str = "embedded") -> int:
    """A pipeline (and a connection it points at) written straight into the app database: for pages
    that only show it, no source or target database behind it."""
    from data.db import session_scope
    from data.models import Connection, Pipeline

    with session_scope() as session:
        c = Connection(name=f"c-{name}", kind="postgresql", host="h", port=5432, database="d", username="u")
        session.add(c)
        session.flush()
        p = Pipeline(
            name=name,
            source_connection_id=c.id,
            target_connection_id=c.id,
            source_database="d",
            source_schema="s",
            target_database="d",
            target_schema="t",
            tables=["x"],
            mode=mode,
            engine=engine,
        )
        session.add(p)
        session.flush()
        return p.id
