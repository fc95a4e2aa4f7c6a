"""Plain Celery counterparts of ``tasks/benchlocks.py``, for the lock benchmarks.

A plain worker loads them with ``celery -A bench.plain_app worker -I bench.plainlocks``;
the driver calls :func:`register` on its own plain app to publish them.

``busy`` is the trivial job of a busy worker, which also returns the pid of
the pool process that ran it (the gap between two jobs of one process).

``locked`` is how a plain Celery application serialises jobs on one resource
without the pipeline: a Redis lock (``SET NX PX 30000`` on one key, deleted at
the end by its owner) and, when the lock is taken, ``self.retry(countdown=0.005,
max_retries=None)``.
"""

from __future__ import annotations

import os
import time
from typing import Any

import redis

from bench import plain_app

TIMED = "benchlocks.plain.timed"
LOCKED = "benchlocks.plain.locked"
BUSY = "benchlocks.plain.busy"
LOCK_KEY = "benchlocks:plain:lock"
LOCK_PX = 30_000
RETRY_COUNTDOWN = 0.005
# Delete the lock only if this job still owns it.
_RELEASE = ("if redis.call('GET', KEYS[1]) == ARGV[1] then "
            "return redis.call('DEL', KEYS[1]) end return 0")
_CLIENTS: dict[int, redis.Redis] = {}


def _client(app: Any) -> redis.Redis:
    pid = os.getpid()
    if pid not in _CLIENTS:
        _CLIENTS.clear()
        _CLIENTS[pid] = redis.Redis.from_url(str(app.conf.broker_url))
    return _CLIENTS[pid]


def run_for(seconds: float = 0.0) -> list[float]:
    """Run for *seconds*; return ``[start, end]``."""
    started = time.time()
    if seconds:
        time.sleep(seconds)
    return [started, time.time()]


def run_busy() -> list[float]:
    """A trivial job that says which pool process ran it: ``[start, end, 0, pid]``."""
    started = time.time()
    return [started, time.time(), 0.0, float(os.getpid())]


def run_locked(self: Any, seconds: float = 0.0) -> list[float]:
    """Take the Redis lock or retry in 5 ms; return ``[start, end, retries]``."""
    client = _client(self.app)
    owner = str(self.request.id)
    if not client.set(LOCK_KEY, owner, nx=True, px=LOCK_PX):
        raise self.retry(countdown=RETRY_COUNTDOWN, max_retries=None)
    try:
        started = time.time()
        if seconds:
            time.sleep(seconds)
        ended = time.time()
    finally:
        client.eval(_RELEASE, 1, LOCK_KEY, owner)
    return [started, ended, float(self.request.retries or 0)]


def register(app: Any) -> None:
    """Add the plain lock benchmark tasks to *app* (once)."""
    if TIMED not in app.tasks:
        app.task(name=TIMED)(run_for)
        app.task(name=BUSY)(run_busy)
        # max_retries=None on the task too: retry(max_retries=None) alone means
        # "the task's max_retries" (3 by default), not "forever".
        app.task(name=LOCKED, bind=True, max_retries=None)(run_locked)


register(plain_app.app)
