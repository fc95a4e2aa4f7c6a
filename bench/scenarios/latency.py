"""Publish-to-start latency with an idle worker (prefork ``-c 2``).

Jobs are published one at a time with a randomised gap of about 20 ms, long
enough for the worker to be idle again; the latency of a job is its own start
time minus the time just before its ``.delay()`` call, so the pipeline's extra
publishing work counts as users would feel it.
"""

from __future__ import annotations

import random
import statistics
from typing import Any

from bench.harness import IDLE_GAP, Context, publish_to_start, wait_idle
from bench.scenarios import Scenario
from bench.stats import paired_ratios, percentile, ratio, rounded
from bench.targets import versus


def run(ctx: Context) -> dict[str, Any]:
    """Measure p50 and p99 per app over all rounds."""
    jobs = ctx.size(300, 60)
    targets = {target.name: target for target in versus()}
    workers = {name: ctx.worker(target) for name, target in targets.items()}
    ctx.start_workers(list(workers.values()))
    for worker in workers.values():
        worker.resume()
    jitter = random.Random(1)

    def sample(name: str, _round: int) -> list[float]:
        latencies = publish_to_start(ctx.client, targets[name], workers[name], jobs, jitter)
        wait_idle(workers[name])
        return latencies

    samples = ctx.alternate(list(targets), sample)
    out: dict[str, Any] = {"jobs_per_round": jobs, "rounds": ctx.rounds, "gap_ms": IDLE_GAP * 1000,
                           "pool": "prefork", "unit": "ms"}
    for name, rounds in samples.items():
        values = [v for values in rounds for v in values]
        out[name] = {
            "p50": rounded(percentile(values, 50)),
            "p99": rounded(percentile(values, 99)),
            "mean": rounded(statistics.fmean(values)),
            "max": rounded(max(values)),
            "round_p50s": [rounded(percentile(r, 50)) for r in rounds],
        }
    out["ratio_p50"] = ratio(out["pipeline"]["p50"], out["plain"]["p50"])
    out["ratio_p99"] = ratio(out["pipeline"]["p99"], out["plain"]["p99"])
    # Each round's p50 ratio, paired, for the spread check.
    out.update(paired_ratios(out["pipeline"]["round_p50s"], out["plain"]["round_p50s"]))
    return out


SCENARIO = Scenario("latency", "publish-to-start p50/p99 with an idle worker", run, order=30)
