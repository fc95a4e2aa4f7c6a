"""FIFO within one priority: do jobs on one model start in the order they were submitted?

200 jobs of 5 ms on one model, all at the default priority, are published to a
paused prefork ``-c 2`` worker, which is then resumed (as in ``one_model``,
whose drain this reuses). Counted per sample: the jobs that started before a
job submitted earlier (goal 0). Plain Celery's lock-and-retry jobs (see
``one_model``) are the reference; a retried job goes to the back of the queue.
The two alternate round by round. The size is the metric's definition: 200
jobs also with ``--quick``.
"""

from __future__ import annotations

from typing import Any

from bench import lockbench
from bench.harness import Context
from bench.lockbench import PIPELINE, PLAIN
from bench.scenarios import Scenario
from bench.scenarios.one_model import SECONDS, drain_spans

JOBS = 200
GOAL = 0


def run(ctx: Context) -> dict[str, Any]:
    """Alternate the pipeline and plain lock-and-retry; count jobs that overtook an earlier one."""
    targets = {PLAIN: lockbench.plain_target(), PIPELINE: lockbench.pipeline_target()}
    overlapped: dict[str, list[int]] = {PLAIN: [], PIPELINE: []}

    def sample(name: str, _round: int) -> int:
        spans = drain_spans(ctx, name, workers[name], JOBS)
        overlapped[name].append(lockbench.overlaps(spans))
        return lockbench.started_before_earlier(spans)

    with lockbench.store_off_workers(ctx, targets) as workers:
        ctx.start_workers(list(workers.values()))
        samples = ctx.alternate(list(targets), sample)
    out: dict[str, Any] = {"jobs": JOBS, "job_ms": SECONDS * 1000, "rounds": ctx.rounds,
                           "pool": "prefork", "store": "off",
                           "unit": "jobs started before an earlier-submitted one"}
    for name, values in samples.items():
        out[name] = {"started_before_an_earlier_job": values, "max": max(values),
                     "overlapping_jobs": overlapped[name]}
    out[PIPELINE].update(lockbench.goal(out[PIPELINE]["max"], GOAL, at_least=False))
    return out


SCENARIO = Scenario("fifo", "200 jobs on one model: how many started before an earlier one",
                    run, order=135)
