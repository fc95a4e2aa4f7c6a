"""Pointing the test process's app at another Redis (a test database, a private server)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
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


@contextlib.contextmanager
def app_on_redis_without_store(app: Any, url: str) -> Iterator[Any]:
    """*app* pointed at the Redis of *url* (broker and results), its job store off; restored
    on exit (the history of such runs is the event stream)."""
    old = (app.conf.broker_url, app.conf.result_backend)
    old_store = app.conf.get("pipeline_store_enabled")
    app.conf.pipeline_store_enabled = False
    point_app_at(app, url, url)
    try:
        yield app
    finally:
        if old_store is None:
            app.conf.changes.pop("pipeline_store_enabled", None)
        else:
            app.conf.pipeline_store_enabled = old_store
        point_app_at(app, *old)
