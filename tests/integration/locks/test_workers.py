"""The locks under real worker processes: exclusion, capacity, order, failure paths."""

from __future__ import annotations

import itertools
import signal
from collections.abc import Callable
from typing import Any

import pytest
import redis

from pipeline import explain
from tests.integration.locks.support import by_tag, lock_keys, max_running, overlap, wait_for
from tests.tasks.lockprobes import hold, misbehave, runs, sleep_once

pytestmark = pytest.mark.timeout(240)


def test_second_job_of_same_user_waits_until_first_ends(
        pipeline_app: Any, workers: Callable[..., Any], lock_redis: redis.Redis) -> None:
    workers(concurrency=2)
    jobs = [hold.apply_async((0.8, "alice1"), user="alice"),
            hold.apply_async((0.8, "alice2"), user="alice"),
            hold.apply_async((0.8, "bob1"), user="bob")]
    for job in jobs:
        job.get(timeout=30)
    got = by_tag(lock_redis)
    first, second = sorted((got["alice1"], got["alice2"]), key=lambda r: r["start"])
    assert second["start"] >= first["end"], "the user's jobs overlapped"
    assert overlap(got["bob1"], first), "bob did not run beside alice's first job"


def test_jobs_sharing_a_model_never_overlap_and_disjoint_ones_run_together(
        pipeline_app: Any, workers: Callable[..., Any], lock_redis: redis.Redis) -> None:
    workers(concurrency=3)
    jobs = [hold.apply_async((0.6, "a1"), models=["a"]),
            hold.apply_async((0.6, "a2"), models=["a"]),
            hold.apply_async((0.6, "b1"), models=["b"]),
            hold.apply_async((0.6, "ab"), models=["a", "b"])]
    for job in jobs:
        job.get(timeout=30)
    got = by_tag(lock_redis)
    for x, y in [("a1", "a2"), ("a1", "ab"), ("a2", "ab"), ("b1", "ab")]:
        assert not overlap(got[x], got[y]), f"{x} and {y} share a model but overlapped"
    assert overlap(got["b1"], got["a1"]) or overlap(got["b1"], got["a2"])


def test_job_on_two_models_holds_neither_while_waiting(
        pipeline_app: Any, workers: Callable[..., Any], lock_redis: redis.Redis) -> None:
    workers(concurrency=3)
    blocker = hold.apply_async((1.5, "on-a"), models=["a"])
    wait_for(lambda: explain(blocker.id, pipeline_app).status == "running", what="on-a running")
    both = hold.apply_async((0.1, "ab"), models=["a", "b"])
    wait_for(lambda: explain(both.id, pipeline_app).status == "parked", what="ab parked")
    assert lock_redis.zcard("{pipeline}:res:model:b:w") == 0
    on_b = hold.apply_async((0.1, "on-b"), models=["b"])
    on_b.get(timeout=10)
    both.get(timeout=10)
    got = by_tag(lock_redis)
    assert got["on-b"]["end"] < got["on-a"]["end"], "b stayed locked while ab waited for a"
    assert got["ab"]["start"] >= got["on-a"]["end"]


def test_500_jobs_on_one_model_never_overlap_and_tokens_grow(
        pipeline_app: Any, workers: Callable[..., Any], lock_redis: redis.Redis) -> None:
    workers(concurrency=1)
    workers(concurrency=1)
    jobs = [hold.apply_async((0.0, f"j{i}"), models=["shared"]) for i in range(500)]
    for job in jobs:
        job.get(timeout=120)
    done = sorted(runs(lock_redis), key=lambda r: r["start"])
    assert len(done) == 500
    assert len({r["pid"] for r in done}) == 2, "both worker processes should have run jobs"
    for before, after in itertools.pairwise(done):
        assert after["start"] >= before["end"], "two holders of one model overlapped"
        assert after["tokens"]["model:shared"] > before["tokens"]["model:shared"]
    assert all(r["retries"] == 0 for r in done)


def test_capacity_of_projects_and_global_is_never_exceeded(
        pipeline_app: Any, workers: Callable[..., Any], lock_redis: redis.Redis) -> None:
    workers(concurrency=8)
    jobs = [hold.apply_async((0.05, f"p{i % 4}-{i}"), project=f"p{i % 4}") for i in range(200)]
    for job in jobs:
        job.get(timeout=120)
    done = runs(lock_redis)
    assert len(done) == 200
    assert max_running(done) <= 5
    assert max_running(done) >= 4, "capacity was not used"
    for p in range(4):
        assert max_running([r for r in done if r["tag"].startswith(f"p{p}-")]) <= 2


def test_parked_jobs_wake_critical_first_then_in_order(
        pipeline_app: Any, workers: Callable[..., Any], lock_redis: redis.Redis) -> None:
    workers(concurrency=2)
    holder = hold.apply_async((1.5, "holder"), models=["m"])
    wait_for(lambda: explain(holder.id, pipeline_app).status == "running", what="holder runs")
    order = [("low1", "low"), ("normal1", "normal"), ("critical", "critical"),
             ("normal2", "normal"), ("low2", "low")]
    parked = []
    for tag, priority in order:
        job = hold.apply_async((0.05, tag), models=["m"], priority=priority)
        wait_for(lambda j=job: explain(j.id, pipeline_app).status == "parked", what=tag)
        parked.append(job)
    late = hold.apply_async((0.05, "late"), models=["m"])
    wait_for(lambda: explain(late.id, pipeline_app).status == "parked", what="late parked")
    for job in [*parked, late]:
        job.get(timeout=30)
    started = [r["tag"] for r in sorted(runs(lock_redis), key=lambda r: r["start"])]
    assert started == ["holder", "critical", "normal1", "normal2", "late", "low1", "low2"]


@pytest.mark.parametrize("how", ["retry", "ignore", "reject", "raise"])
def test_unusual_endings_release_at_once(how: str, pipeline_app: Any,
                                         workers: Callable[..., Any],
                                         lock_redis: redis.Redis) -> None:
    workers(concurrency=1)
    job = misbehave.apply_async((how,), models=["m"], user="u")
    wait_for(lambda: len(runs(lock_redis)) >= (2 if how == "retry" else 1), what=how)
    follower = hold.apply_async((0.0, "after"), models=["m"], user="u")
    follower.get(timeout=20)
    wait_for(lambda: not lock_keys(lock_redis), timeout=5, what="no lock keys left")
    if how == "retry":
        assert job.get(timeout=10) == "retry"


def test_soft_time_limit_releases(pipeline_app: Any, workers: Callable[..., Any],
                                  lock_redis: redis.Redis) -> None:
    workers(concurrency=1)
    job = misbehave.apply_async(("sleep", 5.0), models=["m"], soft_time_limit=0.5)
    with pytest.raises(Exception, match=r"SoftTimeLimitExceeded|TimeLimit"):
        job.get(timeout=20)
    wait_for(lambda: not lock_keys(lock_redis), timeout=5, what="no lock keys left")


def test_child_killed_by_the_os_releases_and_the_job_runs_again(
        pipeline_app: Any, workers: Callable[..., Any], lock_redis: redis.Redis) -> None:
    worker = workers(concurrency=1, lock_lease=30)
    job = sleep_once.apply_async((30.0, "victim"), models=["m"])
    wait_for(lambda: explain(job.id, pipeline_app).status == "running", what="victim runs")
    pid = int(explain(job.id, pipeline_app).pid)
    assert pid in worker.pids()[1:]
    import os

    os.kill(pid, signal.SIGKILL)
    # released by the worker's main process long before the 30 s lease runs out
    job.get(timeout=20)
    assert [r["tag"] for r in runs(lock_redis)] == ["victim"]
    wait_for(lambda: not lock_keys(lock_redis), timeout=5, what="no lock keys left")


def test_stopped_holder_loses_its_lease_and_cannot_free_the_new_holder(
        pipeline_app: Any, workers: Callable[..., Any], lock_redis: redis.Redis) -> None:
    import os

    both = [workers(concurrency=1, lock_lease=2), workers(concurrency=1, lock_lease=2)]
    old = hold.apply_async((1.0, "old"), models=["m"])
    wait_for(lambda: explain(old.id, pipeline_app).status == "running", what="old runs")
    pid = int(explain(old.id, pipeline_app).pid)
    assert pid in [p for w in both for p in w.pids()[1:]]
    os.kill(pid, signal.SIGSTOP)
    try:
        new = hold.apply_async((3.0, "new"), models=["m"])
        wait_for(lambda: explain(new.id, pipeline_app).status == "running", timeout=15,
                 what="new holder after the lease ran out")
    finally:
        os.kill(pid, signal.SIGCONT)
    old.get(timeout=20)
    # the old holder's release came while the new one runs: the new hold is intact
    assert explain(new.id, pipeline_app).status == "running"
    new.get(timeout=20)
    got = by_tag(lock_redis)
    assert got["new"]["tokens"]["model:m"] > got["old"]["tokens"]["model:m"]
    assert got["new"]["start"] < got["old"]["end"], "old did resume while new held the lock"
