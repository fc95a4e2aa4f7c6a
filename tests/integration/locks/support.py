"""Helpers shared by the lock tests: waiting, and reading what the probe jobs recorded."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import redis

from pipeline.messages.events import decode
from tests.helpers import redisdb
from tests.tasks.lockprobes import runs


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    """Poll *predicate* until it returns something true; fail naming *what* after *timeout*."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")


def by_tag(client: redis.Redis) -> dict[str, dict[str, Any]]:
    """The recorded runs by their tag."""
    return {r["tag"]: r for r in runs(client)}


def started_order(client: redis.Redis) -> list[str]:
    """Tags of the recorded runs in the order they started."""
    return [r["tag"] for r in sorted(runs(client), key=lambda r: r["start"])]


def overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two recorded runs overlapped in time."""
    return bool(a["start"] < b["end"] and b["start"] < a["end"])


def max_running(intervals: list[dict[str, Any]]) -> int:
    """The most runs that were running at the same moment."""
    edges = sorted([(r["start"], 1) for r in intervals] + [(r["end"], -1) for r in intervals])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


def events_of(client: redis.Redis, job_id: str) -> list[str]:
    """Types of the stream events of one job, in order."""
    return [e.type for e in (decode(i, f) for i, f in client.xrange("{pipeline}:events"))
            if e.job_id == job_id]


def queue_length(client: redis.Redis) -> int:
    """Messages waiting in the pipeline queue's lists."""
    return redisdb.queued(client)


def lock_keys(client: redis.Redis) -> list[bytes]:
    """Every key that holds, parks or records a hold."""
    return [k for pattern in ("{pipeline}:res:*", "{pipeline}:hold:*", "{pipeline}:park:*")
            for k in client.keys(pattern)]
