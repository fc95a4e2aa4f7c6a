"""The benchmark's job bodies, shared by both arms so they run the same code.

``tasks.bench`` wraps them as pipeline tasks and ``bench.plain_app`` as plain
Celery tasks; this module imports nothing of the pipeline.
"""

from __future__ import annotations

import os
import time
from typing import Any

import redis

_CLIENTS: dict[tuple[int, str], redis.Redis] = {}


def started_at() -> float:
    """The trivial job: report when it started (seconds since the epoch)."""
    return time.time()


def record_mark(task: Any, key: str, label: str) -> float:
    """A drain's first or last job: write when it ran into the hash *key* under *label*."""
    url, pid = str(task.app.conf.broker_url), os.getpid()
    if (pid, url) not in _CLIENTS:
        _CLIENTS[(pid, url)] = redis.Redis.from_url(url)
    now = time.time()
    _CLIENTS[(pid, url)].hset(key, label, repr(now))
    return now
