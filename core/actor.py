"""Who an action is performed for: the signed-in user (or a personal API token of theirs)."""

from __future__ import annotations

from dataclasses import dataclass

from data.models import User


@dataclass(frozen=True)
class Actor:
    """The signed-in user an action is performed for."""

    id: int
    email: str
    role: str
    token_id: int | None = None  # set when the request came with a personal API token (its role is `role`)
    must_change_password: bool = False  # an admin forced a reset: only the password change is allowed

    @classmethod
    def of(cls, user: User) -> Actor:
        assert user.id is not None
        return cls(id=user.id, email=user.email, role=user.role, must_change_password=user.must_change_password)
