"""Benchmark jobs of the pipeline app, run by ``python -m bench``.

Started with ``celery -A tasks.app worker -I tasks.bench``. Each job returns
the time it started, so the benchmark reads start times from the results that
any Celery deployment stores anyway; ``bench/plain_app.py`` has the same jobs
as plain Celery tasks.
"""

from __future__ import annotations

import time

from pipeline.task import PipelineTask
from tasks.app import app

__all__ = ["app", "noop"]


def started_at() -> float:
    """The trivial job: report when it started (seconds since the epoch)."""
    return time.time()


noop = app.task(base=PipelineTask, name="bench.pipeline.noop")(started_at)
