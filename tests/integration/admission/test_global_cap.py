"""Seed 004's scenario: 8 jobs, a global cap of 5: 5 run, 3 wait at positions 1-3."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis

from pipeline import explain
from pipeline.actions import control
from pipeline.runtime.services import services_for
from tests.integration.locks.support import max_running, wait_for
from tests.tasks.lockprobes import hold, runs

pytestmark = pytest.mark.timeout(120)

#: How long each of the first five runs: they end one after the other.
FIRST = [1.0, 1.5, 2.0, 2.5, 3.0]


def test_eight_jobs_with_a_global_cap_of_five_five_run_three_wait_each_starts_on_a_free_slot(
        pipeline_app: Any, start_workers: Callable[..., Any], lock_redis: redis.Redis) -> None:
    start_workers(concurrency=8, concurrency_global=5)
    jobs = [hold.apply_async((FIRST[i] if i < 5 else 0.5, f"j{i}")) for i in range(8)]

    def states() -> list[str]:
        return [explain(j.id, pipeline_app).status for j in jobs]

    wait_for(lambda: sorted(states()) == ["parked"] * 3 + ["running"] * 5, timeout=20,
             what="5 running and 3 parked")
    waiting = [j for j in jobs if explain(j.id, pipeline_app).status == "parked"]
    places = [control.position(services_for(pipeline_app), j.id) for j in waiting]
    assert sorted(p.place for p in places) == [1, 2, 3]
    assert {p.resource for p in places} == {"global"}

    for job in jobs:
        job.get(timeout=30)
    done = {r["id"]: r for r in runs(lock_redis)}
    assert max_running(list(done.values())) == 5
    # Each waiting job started as soon as a slot freed: shortly after some job ended.
    ends = [r["end"] for r in done.values()]
    for job in waiting:
        started = done[job.id]["start"]
        gaps = [started - end for end in ends if end <= started + 0.01]
        assert gaps and min(gaps) < 0.5, f"{job.id} waited {min(gaps, default=None)} s " \
            "after the last slot freed before it"
