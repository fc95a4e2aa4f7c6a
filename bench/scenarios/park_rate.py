"""Parking rate of one pool process against the same process's run rate of trivial jobs.

One ``solo`` worker (one process takes each message, runs or parks the job and
acknowledges it), store off. Two kinds of sample, alternating round by round:

``park``
    the driver holds a model under a fake holder (``bench/parker.py``) and
    publishes N zero-length jobs on it (``benchlocks.timed``) to the paused
    worker, then resumes it: every job finds the model taken and parks;
``run``
    the same N jobs on a model nobody holds: every job takes it, runs, releases.

Rate = N / (time from resuming the worker to the moment its queue and kombu's
``unacked`` hash are both empty, polled every 5 ms): the same clock for both,
so the ratio park / run (goal >= 0.8) compares what one process spends to park
a job with what it spends to run one. After a ``park`` sample the parked jobs
are cancelled and the model released, so they never run in a later sample.

Both configurations run: ``as_ships`` (no task events, results ignored: the
pipeline's own cost; the figure of issue 15's speed table) and ``configured``
(``celeryconfig``: events, stored results and the ``STARTED``/``BLOCKED``
states on top of both).
"""

from __future__ import annotations

import time
from typing import Any

from bench import lockbench, marks
from bench.errors import BenchError
from bench.harness import Context, Worker
from bench.lockbench import PIPELINE, PIPELINE_AS_SHIPS
from bench.parker import Parker
from bench.scenarios import Scenario
from bench.stats import paired_ratios, ratio, summary
from bench.targets import Target
from pipeline.priority import Priority

PARK = "park"
RUN = "run"
CONFIGS = {"as_ships": PIPELINE_AS_SHIPS, "configured": PIPELINE}
GOAL = 0.8
POLL = 0.005


def _publisher(target: Target, model: str) -> Any:
    task = target.app.tasks["benchlocks.timed"]
    options: dict[str, Any] = {"models": [model]}
    if not target.results:
        options.update(queue=target.queues[0], ignore_result=True)
    return lambda: str(task.apply_async(**options).id)


def timed_backlog(worker: Worker, jobs: int, model: str, *, timeout: float = 120.0
                  ) -> tuple[float, list[str]]:
    """Publish *jobs* jobs on *model* to the paused worker, resume it, and return the
    jobs/s until every message was taken and acknowledged, and the jobs' ids."""
    one = _publisher(worker.target, model)
    worker.pause()
    worker.settle()
    ids = [one() for _ in range(jobs)]
    log_offset = worker.log_offset()
    with marks.Backlog(worker.target) as backlog:
        started = time.time()
        worker.resume()
        deadline = time.monotonic() + timeout
        while backlog.counts() != (0, 0):
            if time.monotonic() > deadline:
                raise BenchError(f"{worker.nodename}: {backlog.counts()} (queued, unacked) "
                                 f"after {timeout:.0f} s{worker.log_tail()}")
            time.sleep(POLL)
        ended = time.time()
    worker.pause()
    worker.check_alive()
    errors = worker.errors_since(log_offset)
    if errors:
        raise BenchError(f"{worker.nodename} logged {len(errors)} errors, the first: {errors[0]}")
    return jobs / (ended - started), ids


def park_sample(worker: Worker, jobs: int, model: str) -> float:
    """Jobs parked per second behind a fake holder of *model*; then cancelled."""
    parker = Parker(worker.target, model)
    parker.hold()
    try:
        rate, ids = timed_backlog(worker, jobs, model)
        parked = parker.locks.parked_counts().get(int(Priority.NORMAL), 0)
        if parked != jobs:
            raise BenchError(f"{worker.nodename}: {parked} of {jobs} jobs parked")
        cancelled = parker.cancel(ids)
        if cancelled != jobs:
            raise BenchError(f"{worker.nodename}: {cancelled} of {jobs} parked jobs cancelled")
    finally:
        parker.release()
    return rate


def run(ctx: Context) -> dict[str, Any]:
    """Alternate parking and running, in both configurations."""
    jobs = ctx.size(2_000, 300)
    targets = {PIPELINE: lockbench.pipeline_target(),
               PIPELINE_AS_SHIPS: lockbench.pipeline_target(PIPELINE_AS_SHIPS, as_ships=True)}
    names = [f"{config}_{kind}" for config in CONFIGS for kind in (RUN, PARK)]

    def sample(name: str, round_no: int) -> float:
        config, kind = name.rsplit("_", 1)
        worker = workers[CONFIGS[config]]
        model = f"parkrate-{name}-{round_no}"
        if kind == PARK:
            return park_sample(worker, jobs, model)
        return timed_backlog(worker, jobs, model)[0]

    with lockbench.store_off_workers(ctx, targets, "solo") as workers:
        ctx.start_workers(list(workers.values()))
        samples = ctx.alternate(names, sample)
    out: dict[str, Any] = {"jobs": jobs, "rounds": ctx.rounds, "pool": "solo", "store": "off",
                           "unit": "jobs/s"}
    for config in CONFIGS:
        parked, ran = samples[f"{config}_{PARK}"], samples[f"{config}_{RUN}"]
        out[config] = {"park": summary(parked, 1), "run": summary(ran, 1),
                       "ratio": ratio(summary(parked)["median"], summary(ran)["median"]),
                       **paired_ratios(parked, ran)}
        out[config].update(lockbench.goal(out[config]["ratio"], GOAL, at_least=True))
    return out


SCENARIO = Scenario("park_rate", "jobs/s one solo process parks vs runs (goal park >= 0.8 run)",
                    run, order=125)
