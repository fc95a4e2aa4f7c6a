"""Probe jobs for the tests and benchmarks: they record that they ran, and nothing else.

A probe appends a label to a Redis list on the broker's server (``RPUSH``), so
a test reads the order jobs started in with one ``LRANGE``. ``record`` is a
pipeline job; ``plain_record`` is a plain Celery task on the same app, for
comparing against what Celery does without the pipeline.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import redis

from pipeline import PipelineTask
from tasks.app import app

_CLIENTS: dict[tuple[int, str], redis.Redis] = {}


def client() -> redis.Redis:
    """A client on the app's broker Redis, one per process and URL (tests repoint the app)."""
    from pipeline.conf import broker_redis_url

    key = (os.getpid(), broker_redis_url(app))
    if key not in _CLIENTS:
        if any(pid != key[0] for pid, _ in _CLIENTS):
            _CLIENTS.clear()  # a forked child: those clients were its parent's
        _CLIENTS[key] = redis.Redis.from_url(key[1])
    return _CLIENTS[key]


def push(key: str, label: str) -> None:
    """Append *label* to the list *key* (what every probe does when it starts)."""
    client().rpush(key, label)


@app.task(base=PipelineTask, name="tests.tasks.probes.record")
def record(key: str, label: str, seconds: float = 0.0) -> str:
    """Push *label* to *key*, then sleep *seconds*; returns *label*."""
    push(key, label)
    if seconds:
        time.sleep(seconds)
    return label


@app.task(name="tests.tasks.probes.plain_record")
def plain_record(key: str, label: str, seconds: float = 0.0) -> str:
    """The same as :func:`record` as a plain Celery task (no locks, no pipeline hooks)."""
    push(key, label)
    if seconds:
        time.sleep(seconds)
    return label


@app.task(base=PipelineTask, name="tests.tasks.probes.stamp")
def stamp(key: str, label: str) -> dict[str, Any]:
    """Push a JSON record of *label*, the pid and the time to *key*; return it."""
    entry = {"label": label, "pid": os.getpid(), "time": time.time()}
    push(key, json.dumps(entry))
    return entry
