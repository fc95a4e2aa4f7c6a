"""Celery as it ships: the settings of the ``as_ships`` baseline, for both apps.

``celeryconfig`` turns on what this project needs to follow jobs: task events
(``worker_send_task_events``), stored results with ``result_extended`` and the
``STARTED`` state (``task_track_started``). Celery ships with all of them off,
and they cost plain Celery more than half its drain rate. The ``as_ships``
baseline turns them off again, on both sides, and keeps everything else of
``celeryconfig``: JSON, ``task_acks_late``, ``worker_prefetch_multiplier = 1``
and the priority transport options. Results are ignored
(``task_ignore_result``); the publisher also sends ``ignore_result`` in each
message, which is what a worker obeys (see :func:`celery.app.task.get_actual_ignore_result`).

Plain Celery gets these settings in ``bench/plain_app.py``
(``$BENCH_PLAIN_CONFIG=as_ships``); the pipeline's worker is started as
``celery -A bench.pipeline_as_ships worker`` (the same app, these settings on top).
"""

from __future__ import annotations

from typing import Any

#: What the ``as_ships`` baseline changes in ``celeryconfig``.
SETTINGS: dict[str, Any] = {
    "worker_send_task_events": False,
    "task_ignore_result": True,
    "task_track_started": False,
    "result_extended": False,
}


def configure(conf: Any) -> None:
    """Apply :data:`SETTINGS` to a Celery app's ``conf``."""
    conf.update(SETTINGS)
