"""Lock benchmark jobs of the pipeline app, run by ``python -m bench`` (``bench/LOCKS.md``).

Started with ``celery -A tasks.app worker -I tasks.bench,tasks.benchlocks``.
A job returns when its body started and ended (``time.time()``), so the
benchmark can tell how long a model stood free between two jobs.
``bench/plainlocks.py`` has the plain Celery counterparts.
"""

from __future__ import annotations

import time

from pipeline.job.task import PipelineTask
from tasks.app import app

__all__ = ["app", "timed"]


def run_for(seconds: float = 0.0) -> list[float]:
    """Run for *seconds* (0: return at once); return ``[start, end]``."""
    started = time.time()
    if seconds:
        time.sleep(seconds)
    return [started, time.time()]


timed = app.task(base=PipelineTask, name="benchlocks.timed")(run_for)
