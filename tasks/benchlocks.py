"""Lock benchmark jobs of the pipeline app, run by ``python -m bench`` (``bench/LOCKS.md``).

Started with ``celery -A tasks.app worker -I tasks.bench,tasks.benchlocks``.
A job returns when its body started and ended (``time.time()``), so the
benchmark can tell how long a model stood free between two jobs.
``bench/plainlocks.py`` has the plain Celery counterparts.
"""

from __future__ import annotations

import time
from typing import Any

import redis

from pipeline.job.task import PipelineTask
from tasks.app import app

__all__ = ["app", "hold", "timed"]
_CLIENTS: dict[str, redis.Redis] = {}


def run_for(seconds: float = 0.0) -> list[float]:
    """Run for *seconds* (0: return at once); return ``[start, end]``."""
    started = time.time()
    if seconds:
        time.sleep(seconds)
    return [started, time.time()]


timed = app.task(base=PipelineTask, name="benchlocks.timed")(run_for)


def hold_until(self: Any, started_key: str, release_key: str, timeout: float = 300.0) -> float:
    """Hold the job's locks until *release_key* gets an item (or *timeout* s).

    Pushes ``time.time()`` onto *started_key* once running, so the driver knows the
    locks are held; returns how long it held them.
    """
    url = str(self.app.conf.broker_url)
    if url not in _CLIENTS:
        _CLIENTS[url] = redis.Redis.from_url(url)
    client = _CLIENTS[url]
    started = time.time()
    client.rpush(started_key, repr(started))
    # Short waits: redis-py's default socket timeout (5 s) ends a longer BLPOP early.
    while time.time() - started < timeout and not client.blpop([release_key], timeout=1):
        pass
    return time.time() - started


hold = app.task(base=PipelineTask, bind=True, name="benchlocks.hold")(hold_until)
