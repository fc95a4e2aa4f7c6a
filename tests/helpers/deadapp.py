"""An app whose Redis does not answer (nothing listens on its port): `-A tests.helpers.deadapp`."""

from __future__ import annotations

from celery import Celery

from pipeline.app.install import install
from pipeline.runtime.embedded import free_port

DEAD_URL = f"redis://127.0.0.1:{free_port()}/0"
app = install(Celery("deadapp", broker=DEAD_URL, backend=DEAD_URL))
