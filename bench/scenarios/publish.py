"""Publish rate: jobs/s one process sends with ``.delay()``, no worker running.

Each sample checks that every job reached the queue, then purges it.
"""

from __future__ import annotations

import time
from typing import Any

from bench.harness import BenchError, Context, publish, purge
from bench.scenarios import Scenario
from bench.stats import compare
from bench.targets import versus


def run(ctx: Context) -> dict[str, Any]:
    """Time N ``.delay()`` calls per app, alternating, on an emptied database."""
    jobs = ctx.size(5_000, 1_000)
    targets = {target.name: target for target in versus()}
    warm = {name: len(publish(target, 50)) for name, target in targets.items()}

    def sample(name: str, _round: int) -> float:
        target = targets[name]
        started = time.perf_counter()
        publish(target, jobs)
        rate = jobs / (time.perf_counter() - started)
        published = purge(target, target.queues)
        if published != jobs + warm[name]:
            raise BenchError(f"{name}: {published} of {jobs} jobs reached the queue")
        warm[name] = 0
        return rate

    samples = ctx.alternate(list(targets), sample)
    return {"jobs": jobs, "rounds": ctx.rounds, **compare(samples, "jobs/s", digits=1)}


SCENARIO = Scenario("publish", "jobs/s published with .delay() from one process", run, order=20)
