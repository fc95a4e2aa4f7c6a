"""The default time limit: a job over it is stopped and its locks freed (prefork workers)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from tests.integration.locks.support import lock_keys, wait_for
from tests.tasks.admissionprobes import stubborn
from tests.tasks.lockprobes import hold, runs

pytestmark = pytest.mark.timeout(120)

LIMITS = {"time_limit": 1.0, "time_limit_grace": 1.5, "retry_max": 3}


def test_job_over_the_soft_limit_is_stopped_not_retried_and_frees_its_locks(
        pipeline_app: Any, start_workers: Callable[..., Any], lock_redis: redis.Redis) -> None:
    start_workers(concurrency=2, **LIMITS)
    started = time.monotonic()
    slow = hold.apply_async((30.0, "slow"), models=["m"], user="u")
    follower = hold.apply_async((0.0, "next"), models=["m"], user="u")
    with pytest.raises(Exception, match="SoftTimeLimitExceeded"):
        slow.get(timeout=30)
    assert follower.get(timeout=30)["tag"] == "next"
    assert time.monotonic() - started < 15, "the job was not stopped at its limit"
    assert [r["tag"] for r in runs(lock_redis)] == ["next"]   # slow never finished or retried
    assert slow.state == "FAILURE"
    wait_for(lambda: not lock_keys(lock_redis), timeout=5, what="no lock keys left")


def test_job_ignoring_the_soft_limit_is_killed_at_the_hard_one_and_frees_its_locks(
        pipeline_app: Any, start_workers: Callable[..., Any], lock_redis: redis.Redis) -> None:
    start_workers(concurrency=2, include=("tests.tasks.admissionprobes",), **LIMITS)
    started = time.monotonic()
    stuck = stubborn.apply_async((30.0,), models=["m"])
    follower = hold.apply_async((0.0, "next"), models=["m"])
    with pytest.raises(Exception, match=r"(?<!Soft)TimeLimitExceeded"):
        stuck.get(timeout=30)
    assert follower.get(timeout=30)["tag"] == "next"
    assert time.monotonic() - started < 15, "the job was not killed at its hard limit"
    wait_for(lambda: not lock_keys(lock_redis), timeout=5, what="no lock keys left")
