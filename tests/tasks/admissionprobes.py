"""Jobs of the admission tests (loaded into their workers with ``-I``)."""

from __future__ import annotations

import time
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from pipeline import PipelineTask
from tasks.app import app


@app.task(base=PipelineTask, bind=True, name="admission_tests.stubborn")
def stubborn(self: Any, seconds: float) -> str:
    """Run for *seconds*, ignoring the soft time limit: only the hard one stops it."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            time.sleep(0.05)
        except SoftTimeLimitExceeded:
            continue
    return "finished"


RUNS_KEY = "admissionprobe:runs"


@app.task(base=PipelineTask, bind=True, name="admission_tests.after")
def after(self: Any, key: str, seconds: float, tag: str) -> float:
    """Record that the job started, wait until *key* exists in Redis, then run *seconds*."""
    import redis

    from pipeline.conf import broker_redis_url

    started = time.time()
    client = redis.Redis.from_url(broker_redis_url(app))
    client.rpush(RUNS_KEY, f"{started:.6f} {tag}")
    while not client.exists(key):
        time.sleep(0.01)
    time.sleep(seconds)
    client.close()
    return started


def started_tags(client: Any) -> list[str]:
    """Tags of the ``after`` jobs in the order they started."""
    rows = [raw.decode().split(" ", 1) for raw in client.lrange(RUNS_KEY, 0, -1)]
    return [tag for _, tag in sorted(rows, key=lambda row: float(row[0]))]
