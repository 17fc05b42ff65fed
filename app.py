"""CDC Studio entry point: settings -> database -> services -> API and pages -> ui.run."""

from __future__ import annotations

import hashlib
import sys

from nicegui import app, ui

import pages
from components.api_docs import install_api_docs
from core.api import install_api
from core.api.http_guard import install_http_guards
from core.app_state import prepare, start_services, stop_services
from core.config import get_settings
from core.keys import KeyProblem
from core.security import token_signing_key

get_settings.cache_clear()  # tests re-run this file with a new environment
settings = get_settings()
try:
    prepare()  # check the key, migrate before the first request; cheap when already at head
except KeyProblem as exc:  # a wrong or missing key: say so and stop before anything is written
    sys.exit(f"CDC Studio cannot start. {exc}")
app.on_startup(start_services)
app.on_shutdown(stop_services)
install_api(app)
install_api_docs(app)  # /docs and /redoc with their scripts served here, not from a CDN
pages.register(app)
# last, so it wraps the pages' login redirect too: security headers everywhere, a body size limit on /api/
install_http_guards(app)

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
    )
