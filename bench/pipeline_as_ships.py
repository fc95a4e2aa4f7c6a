"""The pipeline app configured as Celery ships: ``celery -A bench.pipeline_as_ships worker``.

The same app as ``tasks.app`` with :data:`bench.as_ships.SETTINGS` on top:
no task events, results ignored. The benchmark starts it with the job store
off (``PIPELINE_STORE_ENABLED=false``) or on, as each comparison says.
"""

from __future__ import annotations

from bench import as_ships
from tasks.app import app

__all__ = ["app"]

as_ships.configure(app.conf)
