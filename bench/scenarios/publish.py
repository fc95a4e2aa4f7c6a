"""Publish rate: jobs/s one process sends with ``.delay()``, no worker running.

Against both baselines (see ``locks_throughput``): ``configured`` (plain Celery
and the pipeline as ``celeryconfig`` sets them up, the pipeline's store on: each
publish also buffers a ``queued`` event) and ``as_ships`` (both publish with
``ignore_result``, so Celery skips the result backend's per-job set-up; the
pipeline's store off). Each sample checks that every job reached the queue,
then purges it.
"""

from __future__ import annotations

import time
from typing import Any

from bench import lockbench
from bench.errors import BenchError
from bench.harness import Context, publish, purge
from bench.scenarios import Scenario
from bench.stats import compare
from bench.targets import (
    PIPELINE,
    PIPELINE_AS_SHIPS,
    PLAIN,
    PLAIN_AS_SHIPS,
    pipeline_as_ships,
    plain_as_ships,
    versus,
)

BASELINES = {"configured": (PLAIN, PIPELINE), "as_ships": (PLAIN_AS_SHIPS, PIPELINE_AS_SHIPS)}


def run(ctx: Context) -> dict[str, Any]:
    """Time N ``.delay()`` calls per app, alternating, on an emptied database."""
    jobs = ctx.size(5_000, 1_000)
    targets = {target.name: target
               for target in (plain_as_ships(), pipeline_as_ships(), *versus())}
    app = targets[PIPELINE].app

    def store_for(name: str) -> None:
        lockbench.set_publisher_store(app, name != PIPELINE_AS_SHIPS)

    warm: dict[str, int] = {}
    for name, target in targets.items():
        store_for(name)
        warm[name] = len(publish(target, 50))

    def sample(name: str, _round: int) -> float:
        target = targets[name]
        store_for(name)
        started = time.perf_counter()
        publish(target, jobs)
        rate = jobs / (time.perf_counter() - started)
        published = purge(target, target.queues)
        if published != jobs + warm[name]:
            raise BenchError(f"{name}: {published} of {jobs} jobs reached the queue")
        warm[name] = 0
        return rate

    try:
        samples = ctx.alternate(list(targets), sample)
    finally:
        lockbench.set_publisher_store(app, True)
    out: dict[str, Any] = {"jobs": jobs, "rounds": ctx.rounds}
    for baseline, (base, subject) in BASELINES.items():
        out[baseline] = compare(samples, "jobs/s", base=base, subject=subject, digits=1)
    return out


SCENARIO = Scenario("publish", "jobs/s published with .delay() from one process, configured "
                    "and as Celery ships", run, order=20)
