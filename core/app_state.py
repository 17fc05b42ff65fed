"""Start-up and shut-down of the app's services (no UI here)."""

from __future__ import annotations

import logging

from core.config import get_settings
from core.users import bootstrap_admin
from data import db

log = logging.getLogger(__name__)


def startup() -> None:
    """Migrate the app database and create the first admin from the environment if asked."""
    settings = get_settings()
    db.init(settings.resolved_database_url())
    bootstrap_admin(settings)
