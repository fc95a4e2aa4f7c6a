"""Fair share under a real worker: a small project is not stuck behind a big one's backlog."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from pipeline.messages.events import decode
from pipeline.runtime.services import services_for
from tests.integration.locks.support import wait_for
from tests.tasks.admissionprobes import after, started_tags

pytestmark = pytest.mark.timeout(180)

GO = "admission-test:go"


def test_five_jobs_of_a_second_project_start_before_the_tenth_of_the_first(
        pipeline_app: Any, start_workers: Callable[..., Any], lock_redis: redis.Redis) -> None:
    start_workers(concurrency=4, include=("tests.tasks.admissionprobes",),
                  concurrency_global=2)
    locks = services_for(pipeline_app).locks

    def submit(project: str, i: int) -> Any:
        time.sleep(0.002)   # one millisecond each: the order of submission is unambiguous
        return after.apply_async((GO, 0.02, f"{project}-{i}"), project=project,
                                 models=[f"{project}-{i}"])

    # The first two take the global slots and wait for GO (no line to queue in yet).
    big = [submit("p1", i) for i in range(2)]
    wait_for(lambda: len(started_tags(lock_redis)) == 2, timeout=30, what="two running")
    big += [submit("p1", i) for i in range(2, 100)]
    small = [submit("p2", i) for i in range(5)]
    # The running jobs wait for GO: every other job is parked before anything ends.
    wait_for(lambda: sum(locks.parked_counts().values()) == 103, timeout=60,
             what="103 jobs parked behind the global cap")
    lock_redis.set(GO, 1)
    for result in big + small:
        result.get(timeout=60)
    assert len(started_tags(lock_redis)) == 105
    # The order the releases handed the slots on (written inside the scripts), after
    # the two that started at once.
    tags = {r.id: tag for r, tag in zip(big + small, [*(f"p1-{i}" for i in range(100)),
                                                     *(f"p2-{i}" for i in range(5))],
                                        strict=True)}
    granted = [e.job_id for e in (decode(i, f) for i, f in lock_redis.xrange("{pipeline}:events"))
               if e.type == "granted"]
    order = ["p1-0", "p1-1", *(tags[j] for j in granted)]
    assert len(order) == 105
    p1 = [t for t in order if t.startswith("p1-")]
    wrong = [(a, b) for a, b in zip(p1, [f"p1-{i}" for i in range(100)], strict=True) if a != b]
    assert not wrong, f"project p1 did not stay FIFO: {wrong}"
    assert [t for t in order if t.startswith("p2-")] == [f"p2-{i}" for i in range(5)]
    tenth_of_p1 = order.index("p1-9")
    assert all(order.index(f"p2-{i}") < tenth_of_p1 for i in range(5)), order[:20]
