"""Benchmark jobs of the pipeline app, run by ``python -m bench``.

Started with ``celery -A tasks.app worker -I tasks.bench``. Each job returns
the time it started, so the benchmark reads start times from the results that
any Celery deployment stores anyway; ``bench/plain_app.py`` has the same jobs
as plain Celery tasks.

``mark`` times a drain whose results are ignored: the first and the last
message of the drain are a ``mark`` job, which writes when it ran into a Redis
hash (``bench/marks.py``); the jobs between them are the trivial job, unchanged.
"""

from __future__ import annotations

import os
import time
from typing import Any

import redis

from pipeline.task import PipelineTask
from tasks.app import app

__all__ = ["app", "mark", "noop"]

_CLIENTS: dict[tuple[int, str], redis.Redis] = {}


def started_at() -> float:
    """The trivial job: report when it started (seconds since the epoch)."""
    return time.time()


def record_mark(task: Any, key: str, label: str) -> float:
    """A drain's first or last job: write when it ran into the hash *key* under *label*.

    The same function as ``bench.plain_app.record_mark`` (plain Celery's marker).
    """
    url, pid = str(task.app.conf.broker_url), os.getpid()
    if (pid, url) not in _CLIENTS:
        _CLIENTS[(pid, url)] = redis.Redis.from_url(url)
    now = time.time()
    _CLIENTS[(pid, url)].hset(key, label, repr(now))
    return now


noop = app.task(base=PipelineTask, name="bench.pipeline.noop")(started_at)
mark = app.task(base=PipelineTask, bind=True, name="bench.pipeline.mark")(record_mark)
