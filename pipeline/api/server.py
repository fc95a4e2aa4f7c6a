"""Serving the API with uvicorn: the address check, then one process serving until stopped."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery

from pipeline import conf
from pipeline.api.auth import TokenSet, require_safe_bind

log = logging.getLogger(__name__)


def build(celery: Celery, host: str) -> Any:
    """The ASGI app for *celery*, after checking that *host* may be bound.

    Raises:
        ConfigurationError: a non-loopback *host* without a token configured,
            or a malformed token setting.
    """
    from pipeline.api.app import create_app

    tokens = TokenSet.from_settings(conf.read(celery.conf))
    require_safe_bind(host, tokens)
    if not tokens:
        log.warning("the REST API has no token configured: every caller on %s is admin "
                    "(set pipeline_api_tokens or pipeline_api_token_file)", host)
    return create_app(celery, tokens=tokens)


def serve(celery: Celery, host: str | None = None, port: int | None = None,
          log_level: str = "info") -> None:
    """Serve the API and dashboard on *host*:*port* (the settings' when None) until stopped.

    Raises:
        ConfigurationError: see :func:`build`.
    """
    import uvicorn

    settings = conf.read(celery.conf)
    host = host or settings.api_host
    port = settings.api_port if port is None else port
    api = build(celery, host)
    # Access logs name paths and statuses, never headers: tokens stay out of logs.
    uvicorn.run(api, host=host, port=port, log_level=log_level, proxy_headers=False,
                server_header=False)
