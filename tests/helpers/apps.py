"""Pointing the test process's app at another Redis (a test database, a private server)."""

from __future__ import annotations

import threading
from typing import Any


def point_app_at(app: Any, broker: str, backend: str) -> None:
    """Make *app* publish to *broker* and read results from *backend* from now on."""
    from pipeline.runtime.services import _SERVICES

    app.conf.broker_url = broker
    app.conf.result_backend = backend
    app._after_fork()  # drop connection and producer pools made for the old URL
    app._backend_cache = None
    app._local = threading.local()
    _SERVICES.clear()
