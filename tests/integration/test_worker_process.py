"""A real prefork worker process runs pipeline and plain jobs; stopping it leaves nothing."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psutil
import redis

from tests.helpers.workers import SubprocessWorker


def running(pid: int) -> bool:
    """Whether *pid* is a live process (not a zombie)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_prefork_worker_runs_jobs_in_its_pool_and_stops_with_its_pool(
        app: Any, redis_client: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    from tests.tasks.probes import plain_record, stamp

    with SubprocessWorker(redis_url, tmp_path, concurrency=2) as worker:
        pids = worker.pids()
        assert len(pids) == 3, worker.log()  # the worker and two pool processes
        entry = stamp.apply_async(("probe:process", "pipeline"), priority="high").get(timeout=30)
        assert entry["pid"] in pids[1:]
        assert plain_record.delay("probe:process", "plain").get(timeout=30) == "plain"

    deadline = time.monotonic() + 10
    while any(running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in pids if running(pid)]
    assert redis_client.llen("probe:process") == 2
