"""Dramatiq's answer to "one job at a time on this model": a ``ConcurrentRateLimiter``.

The ``cost`` scenario's one-model arm (``bench/dramatiq_arm.py``) starts
``dramatiq bench.dramatiq_jobs --processes 2 --threads 1`` (two worker processes, as
the Celery arms' prefork ``-c 2``). The actor takes the distributed mutex
Dramatiq documents (``ConcurrentRateLimiter(backend, key, limit=1)``) on the
Redis backend; when it is taken, ``RateLimitExceeded`` makes Dramatiq's
``Retries`` middleware retry the message after a backoff of 5 ms (with its
jitter), as plain Celery's lock-and-retry arm retries with ``countdown=0.005``
(Dramatiq's own default backoff, 15 s, would make the comparison meaningless).
Each run appends ``[start, end]`` to a Redis list; each refusal increments a
counter. Needs the optional ``bench`` extra (``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import json
import os
import time

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.rate_limits import ConcurrentRateLimiter, RateLimitExceeded
from dramatiq.rate_limits.backends import RedisBackend

QUEUE = "bench_dramatiq"
MUTEX_KEY = "bench-one-model"
RETRIES_KEY = "bench:dramatiq:retries"
#: Retry backoff in milliseconds, and retries allowed (in effect: until the mutex is free).
BACKOFF_MS = 5
MAX_RETRIES = 1_000_000

URL = os.environ.get("PIPELINE_BROKER_URL", "redis://127.0.0.1:6379/15")
broker = RedisBroker(url=URL)
dramatiq.set_broker(broker)
MUTEX = ConcurrentRateLimiter(RedisBackend(url=URL), MUTEX_KEY, limit=1)
_CLIENT: dict[int, redis.Redis] = {}


def _client() -> redis.Redis:
    pid = os.getpid()
    if pid not in _CLIENT:
        _CLIENT[pid] = redis.Redis.from_url(URL)
    return _CLIENT[pid]


@dramatiq.actor(queue_name=QUEUE, max_retries=MAX_RETRIES, min_backoff=BACKOFF_MS,
                max_backoff=BACKOFF_MS)
def timed(seconds: float, spans_key: str) -> None:
    """Run *seconds* under the mutex; append ``[start, end]`` to *spans_key*."""
    with MUTEX.acquire(raise_on_failure=False) as acquired:
        if not acquired:
            _client().incr(RETRIES_KEY)
            raise RateLimitExceeded(f"{MUTEX_KEY} is taken")
        started = time.time()
        time.sleep(seconds)
        ended = time.time()
    _client().rpush(spans_key, json.dumps([started, ended]))
