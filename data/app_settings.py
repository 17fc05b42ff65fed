"""Queries for the installation's admin settings (a key/value table)."""

from __future__ import annotations

from sqlmodel import Session, select

from data.models import AppSetting, utcnow


def get_setting(*, session: Session, key: str) -> AppSetting | None:
    """The stored setting of a key, None if it was never set."""
    return session.get(AppSetting, key)


def all_settings(*, session: Session) -> dict[str, dict]:
    """Every stored setting as key -> JSON value."""
    return {s.key: s.value for s in session.exec(select(AppSetting))}


def put_setting(*, session: Session, key: str, value: dict, updated_by: str | None) -> AppSetting:
    """Insert or replace a setting's value."""
    setting = session.get(AppSetting, key)
    if setting is None:
        setting = AppSetting(key=key, value=value, updated_by=updated_by)
    else:
        setting.value = value
        setting.updated_by = updated_by
        setting.updated_at = utcnow()
    session.add(setting)
    session.flush()
    return setting
