"""CDC Studio entry point: settings -> database -> services -> API and pages -> ui.run."""

from __future__ import annotations

import hashlib

from nicegui import app, ui

import pages
from core.api import install_api
from core.app_state import prepare, start_services, stop_services
from core.config import get_settings
from core.security import token_signing_key

get_settings.cache_clear()  # tests re-run this file with a new environment
settings = get_settings()
prepare()  # migrate before the first request; cheap when already at head
app.on_startup(start_services)
app.on_shutdown(stop_services)
install_api(app)
pages.register(app)

if __name__ in {"__main__", "__mp_main__"}:
    ui.run(
        host=settings.host,
        port=settings.port,
        title="CDC Studio",
        favicon="🔁",
        storage_secret=hashlib.sha256(token_signing_key()).hexdigest(),
        reload=False,
        show=False,
        show_welcome_message=True,
        fastapi_docs={
            "title": "CDC Studio API",
            "version": "0.1.0",
            "description": "Automation API of CDC Studio. Get a token at POST /api/v1/auth/token.",
        },
    )
