"""The embedded Redis server used when no broker URL is configured.

PLACEHOLDER owned by the runtime work: ``broker_url_from_env`` is final, the
server management below it is being written.
"""

from __future__ import annotations

import os

DEFAULT_DATA_DIR = ".pipeline"
URL_FILE = "redis.url"


def broker_url_from_env() -> str:
    """The broker URL: $PIPELINE_BROKER_URL, $CELERY_BROKER_URL, else the embedded server's."""
    for var in ("PIPELINE_BROKER_URL", "CELERY_BROKER_URL"):
        value = os.environ.get(var)
        if value:
            return value
    path = os.path.join(os.environ.get("PIPELINE_DATA_DIR", DEFAULT_DATA_DIR), URL_FILE)
    try:
        with open(path, encoding="utf-8") as handle:
            url = handle.read().strip()
    except OSError:
        url = ""
    return url or "redis://127.0.0.1:6379/0"
