"""The password policy on every way a password is set: not the email nor its name, not a common password,
long enough; refused with a clear message that never repeats the password."""

from __future__ import annotations

import httpx
import pytest

from core.errors import ValidationFailed
from core.users import check_password
from tests.api.conftest import make_user, token_for


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("ann.lee@example.com", "your email"),
        ("ANN.LEE", "your email"),
        ("password1", "most common"),
        ("Qwerty123", "most common"),
        ("iloveyou", "most common"),
    ],
)
def test_refused_passwords(password: str, why: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        check_password(password, "ann.lee@example.com")
    assert why in refused.value.message and password not in refused.value.message


@pytest.mark.parametrize("password", ["admin-pass-1", "correct horse battery", "ann.lee-2026-x"])
def test_accepted_passwords(password: str) -> None:
    check_password(password, "ann.lee@example.com")


async def test_every_way_of_setting_a_password_applies_it(client: httpx.AsyncClient, admin) -> None:  # noqa: ANN001
    r = await client.post("/api/v1/users", headers=admin, json={"email": "bo@example.com", "password": "password1"})
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"][-1] == "password" and "common" in r.json()["detail"][0]["msg"]
    assert "password1" not in r.text
    same = {"email": "bo@example.com", "password": "bo@example.com"}
    r = await client.post("/api/v1/users", headers=admin, json=same)
    assert r.status_code == 422 and "email" in r.json()["detail"][0]["msg"], r.text
    assert "bo@example.com" not in [u["email"] for u in (await client.get("/api/v1/users", headers=admin)).json()]

    viewer = await make_user(client, admin, "viewer")
    vid = next(u["id"] for u in (await client.get("/api/v1/users", headers=admin)).json() if u["role"] == "viewer")
    r = await client.post(f"/api/v1/users/{vid}/password", headers=admin, json={"password": "sunshine1"})
    assert r.status_code == 422 and "common" in r.text, r.text
    change = {"current_password": "viewer-password-1", "new_password": "viewer"}
    r = await client.post("/api/v1/auth/password", headers=viewer, json=change)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "new_password", r.text
    # nothing changed: the old password still signs in
    await token_for(client, "viewer@example.com", "viewer-password-1")
