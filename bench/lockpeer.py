"""The hand-written lock peer: plain Celery tasks that take user, model and project locks
by hand with redis-py's ``Lock``, the way a team without the pipeline would.

Each job takes three ``redis.lock.Lock`` objects in a fixed order (user, model,
project, so two jobs never deadlock), each a blocking ``acquire`` with a timeout
(:data:`WAIT_S`) and a lease (:data:`LEASE_S`), runs its body, and releases what it
took in a ``finally``, in reverse order. A lock it cannot get within the timeout
fails the job (:class:`LockNotAcquired`): there is no parking, the job holds its
worker process while it waits (redis-py polls every 0.1 s, its default).

A worker loads them with ``celery -A bench.plain_app worker -I bench.lockpeer``
and ``$BENCH_PLAIN_CONFIG=as_ships``: the pipeline arm's settings (the project's
``celeryconfig``: JSON, ``task_acks_late``, prefetch 1, priority steps; no task
events, results ignored). The driver calls :func:`register` on its own plain app.

Tasks:

``lockpeer.noop(user, model, project)``
    the trivial job under the three locks (the drain's jobs);
``lockpeer.mark(key, label, user, model, project)``
    the drain's first and last job (``bench/marks.py``), under three locks too,
    as the pipeline's markers take theirs;
``lockpeer.timed(seconds, user, model, project, spans_key)``
    holds the locks *seconds*, then appends ``[start, end]`` (JSON) to the list
    *spans_key*: the contention check (``bench/armcheck.py``) asserts that no two
    jobs sharing a lock overlapped.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from typing import Any

import redis

from bench import plain_app
from tasks.marks import record_mark, started_at

NOOP = "lockpeer.noop"
MARK = "lockpeer.mark"
TIMED = "lockpeer.timed"
KINDS = ("user", "model", "project")
#: Seconds a lock is held at most (its lease), and waited for at most.
LEASE_S = 30.0
WAIT_S = 30.0
_CLIENTS: dict[tuple[int, str], redis.Redis] = {}


class LockNotAcquired(Exception):
    """A lock of the peer was still taken after :data:`WAIT_S` seconds."""


def lock_name(kind: str, name: str) -> str:
    """The Redis key of the peer's lock on resource *name* of *kind*."""
    return f"lockpeer:{kind}:{name}"


def _client(app: Any) -> redis.Redis:
    key = (os.getpid(), str(app.conf.broker_url))
    if key not in _CLIENTS:
        _CLIENTS[key] = redis.Redis.from_url(key[1])
    return _CLIENTS[key]


@contextlib.contextmanager
def held(app: Any, user: str, model: str, project: str) -> Iterator[None]:
    """Hold the user, model and project locks; release in a ``finally``.

    Raises:
        LockNotAcquired: one of them stayed taken for :data:`WAIT_S` seconds.
    """
    client = _client(app)
    taken: list[redis.lock.Lock] = []
    try:
        for kind, name in zip(KINDS, (user, model, project), strict=True):
            lock = client.lock(lock_name(kind, name), timeout=LEASE_S, blocking=True,
                               blocking_timeout=WAIT_S)
            if not lock.acquire():
                raise LockNotAcquired(f"{kind} lock {name!r} still taken after {WAIT_S:.0f} s")
            taken.append(lock)
        yield
    finally:
        for lock in reversed(taken):
            lock.release()


def run_noop(self: Any, user: str, model: str, project: str) -> float:
    """The trivial job under the three locks."""
    with held(self.app, user, model, project):
        return started_at()


def run_mark(self: Any, key: str, label: str, user: str, model: str, project: str) -> float:
    """The marker job under the three locks."""
    with held(self.app, user, model, project):
        return record_mark(self, key, label)


def run_timed(self: Any, seconds: float, user: str, model: str, project: str,
              spans_key: str) -> list[float]:
    """Hold the three locks *seconds*; append ``[start, end]`` to *spans_key*."""
    with held(self.app, user, model, project):
        started = time.time()
        time.sleep(seconds)
        span = [started, time.time()]
        _client(self.app).rpush(spans_key, json.dumps(span))
    return span


def register(app: Any) -> None:
    """Add the peer's tasks to *app* (once)."""
    if NOOP not in app.tasks:
        app.task(name=NOOP, bind=True)(run_noop)
        app.task(name=MARK, bind=True)(run_mark)
        app.task(name=TIMED, bind=True)(run_timed)


register(plain_app.app)
