"""One flushed Redis database per test process, for the fixtures of each test family.

Each family has its own base number (the root conftest 1, locks 5, store 9) plus
the xdist worker index, so families and workers never share a database.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import redis

REDIS_URL = os.environ.get("PIPELINE_TEST_REDIS", "redis://127.0.0.1:6379").rstrip("/")


def db_number(base: int) -> int:
    """*base* plus this test process's xdist worker index."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return base + int(worker.removeprefix("gw") or 0)


def db_url(base: int) -> str:
    """The URL of this test process's database of the family numbered from *base*."""
    return f"{REDIS_URL}/{db_number(base)}"


def flushed(base: int, **options: Any) -> Iterator[redis.Redis]:
    """A client on the family's database, flushed before and after; fails if Redis is down."""
    client = redis.Redis.from_url(db_url(base), **options)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"Redis at {REDIS_URL} is not reachable ({exc}); start it before the tests")
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def queue_keys(client: redis.Redis, pattern: str = "{pipeline}:pipeline*") -> list[bytes]:
    """The broker's message lists matching *pattern*: not the queues' wake lists."""
    from pipeline.keys import WAKE_SUFFIX

    return [key for key in client.keys(pattern)
            if not key.endswith(WAKE_SUFFIX.encode()) and client.type(key) == b"list"]


def queued(client: redis.Redis, pattern: str = "{pipeline}:pipeline*") -> int:
    """Messages waiting in the lists matching *pattern*."""
    return sum(int(client.llen(key)) for key in queue_keys(client, pattern))
