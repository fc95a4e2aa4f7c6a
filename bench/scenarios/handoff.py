"""Hand-off latency: from one job's end to the start of the next job parked on the same model.

N pipeline jobs (``benchlocks.timed``, a body that returns its own start and end
times) are published at once on one model to a running prefork ``-c 2`` worker:
one runs, the others park, and each release hands the model to the next parked
job and pushes its message to the front of the queue. Latency = next job's start
- previous job's end, in start order (so it includes storing the previous job's
result, its release script, the broker hop and the next job's lock call).

The reference is plain Celery's publish-to-start latency of an idle worker (jobs
published one at a time about 20 ms apart, as in ``latency``): any hand-off that
goes through the broker pays at least that, so it is the floor, not an
equivalent. The two alternate round by round.
"""

from __future__ import annotations

import random
from typing import Any

from bench import lockbench
from bench.harness import Context, Worker, publish_to_start
from bench.lockbench import PIPELINE, PLAIN
from bench.scenarios import Scenario
from bench.stats import ratio
from bench.targets import Target

MODEL = "handoff"


def handoff_sample(ctx: Context, target: Target, worker: Worker, jobs: int
                   ) -> tuple[list[float], int, int]:
    """Hand-off latencies (ms) of *jobs* jobs on one model, overlaps, results left BLOCKED."""
    task = target.app.tasks["benchlocks.timed"]
    ids = [str(task.apply_async(models=[MODEL]).id) for _ in range(jobs)]
    spans = lockbench.collect_spans(ctx.client, target, ids, worker=worker)
    return lockbench.handoff_gaps(spans), lockbench.overlaps(spans), lockbench.left_blocked(spans)


def run(ctx: Context) -> dict[str, Any]:
    """Alternate the pipeline's hand-offs with plain Celery's idle publish-to-start."""
    jobs = ctx.size(300, 60)
    targets = {PLAIN: lockbench.plain_target(), PIPELINE: lockbench.pipeline_target()}
    jitter = random.Random(1)
    overlapped: list[int] = []
    left_blocked: list[int] = []

    def sample(name: str, _round: int) -> list[float]:
        if name == PLAIN:
            return publish_to_start(ctx.client, targets[name], workers[name], jobs, jitter)
        gaps, overlaps, blocked = handoff_sample(ctx, targets[name], workers[name], jobs)
        overlapped.append(overlaps)
        left_blocked.append(blocked)
        return gaps

    with lockbench.store_off_workers(ctx, targets) as workers:
        for worker in workers.values():  # consuming from the start: they are never paused
            worker.spawn()
        for worker in workers.values():
            worker.ready()
        samples = ctx.alternate(list(targets), sample)
    every = {name: [v for r in rounds for v in r] for name, rounds in samples.items()}
    out: dict[str, Any] = {
        "jobs_per_round": jobs, "rounds": ctx.rounds, "pool": "prefork", "unit": "ms",
        "store": "off",
        "pipeline_handoff": {**lockbench.distribution(every[PIPELINE]),
                             "round_p50s": [lockbench.distribution(r)["p50"]
                                            for r in samples[PIPELINE]],
                             "overlapping_jobs": overlapped,
                             "results_left_blocked": left_blocked},
        "plain_idle_publish_to_start": {**lockbench.distribution(every[PLAIN]),
                                        "round_p50s": [lockbench.distribution(r)["p50"]
                                                       for r in samples[PLAIN]]},
        "reference": "plain Celery publish-to-start with an idle worker: the floor of any "
                     "hand-off through the broker",
    }
    out["ratio_p50"] = ratio(out["pipeline_handoff"]["p50"],
                             out["plain_idle_publish_to_start"]["p50"])
    out["ratio_p99"] = ratio(out["pipeline_handoff"]["p99"],
                             out["plain_idle_publish_to_start"]["p99"])
    return out


SCENARIO = Scenario("handoff", "release-to-start of the next job parked on the same model",
                    run, order=120)
