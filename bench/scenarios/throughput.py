"""Drain rate: jobs/s of a worker emptying a queue that was filled before it consumed.

For prefork ``-c 2`` and for solo, plain Celery and the pipeline alternate
round by round on workers started once and warmed up; each sample publishes N
trivial jobs while the worker is paused, resumes it, and divides N by the time
from the first job's start to the last job's stored result. The pipeline
worker's recorder may still be writing the job store then: the seconds it
needed after the last result are reported as ``recorder_catch_up_s``, and the
next sample starts only once it is done.
"""

from __future__ import annotations

from typing import Any

from bench.harness import POOLS, Context, DrainSample, measure_drain, publish
from bench.scenarios import Scenario
from bench.stats import compare
from bench.targets import Target, versus


def run(ctx: Context) -> dict[str, Any]:
    """Measure both apps on both pools."""
    jobs = ctx.size(20_000, 1_500)
    targets = {target.name: target for target in versus()}
    out: dict[str, Any] = {"jobs": jobs, "rounds": ctx.rounds}
    for pool in POOLS:
        out[pool] = _compare_on(ctx, pool, targets, jobs)
    return out


def _compare_on(ctx: Context, pool: str, targets: dict[str, Target], jobs: int) -> dict[str, Any]:
    workers = {name: ctx.worker(target, pool) for name, target in targets.items()}
    ctx.start_workers(list(workers.values()))

    def sample(name: str, _round: int) -> DrainSample:
        target = targets[name]
        return measure_drain(workers[name], lambda: publish(target, jobs))

    try:
        samples = ctx.alternate(list(targets), sample)
    finally:
        ctx.stop_workers()
    out = compare({name: [s.rate for s in values] for name, values in samples.items()},
                  "jobs/s", digits=1)
    for name, values in samples.items():
        if targets[name].idle is not None:
            out[name]["recorder_catch_up_s"] = [round(s.idle_after, 2) for s in values]
    return out


SCENARIO = Scenario("throughput", "jobs/s drained from a pre-filled queue (prefork -c 2, solo)",
                    run, order=10)
