"""A critical job published behind a backlog of low-priority jobs: how soon does it start?

The worker (prefork ``-c 2``) is paused while 10,000 ``low`` jobs (9) are
queued, resumed, and once the first of them has run it gets one more second
to be busy; then one ``critical`` job
(0) is published and timed from just before publishing to its own start. The
rest of the backlog is purged instead of drained, which would only cost time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from bench.harness import (
    Context,
    Worker,
    collect,
    publish,
    purge,
    read_results,
    wait_idle,
    wait_until_stored,
)
from bench.scenarios import Scenario
from bench.stats import compare
from bench.targets import versus
from pipeline.priority import Priority

HEAD_START = 1.0


@dataclass(frozen=True)
class CriticalSample:
    """One measurement.

    Attributes:
        wait_ms: from just before publishing the critical job to its start.
        lows_waiting: low jobs not yet started when it was published.
        lows_overtaking: low jobs that started after it was published but before it.
    """

    wait_ms: float
    lows_waiting: int
    lows_overtaking: int


def measure_critical(ctx: Context, worker: Worker, lows: int) -> CriticalSample:
    """Queue *lows* low jobs behind the paused *worker*, resume, then time one critical job."""
    target = worker.target
    worker.pause()
    worker.settle()
    low_ids = publish(target, lows, Priority.LOW)
    worker.resume()
    # A queue added while a BRPOP is pending is read from the next BRPOP on.
    wait_until_stored(ctx.client, target.result_key(low_ids[0]), worker)
    time.sleep(HEAD_START)
    published = time.time()
    critical_id = target.send(Priority.CRITICAL)
    [critical] = collect(ctx.client, target, [critical_id], worker=worker)
    worker.pause()
    worker.settle()
    purge(target, worker.queues)
    wait_idle(worker)
    low_starts = [t.started for t in read_results(ctx.client, target,
                                                  [target.result_key(i) for i in low_ids])
                  if t is not None]
    return CriticalSample(
        wait_ms=(critical.started - published) * 1000.0,
        lows_waiting=lows - sum(1 for s in low_starts if s < published),
        lows_overtaking=sum(1 for s in low_starts if published <= s < critical.started),
    )


def summarise(samples: dict[str, list[CriticalSample]], lows: int, rounds: int,
              base: str, subject: str) -> dict[str, Any]:
    """The comparison of wait times plus the backlog each sample had."""
    waits = {name: [s.wait_ms for s in values] for name, values in samples.items()}
    out: dict[str, Any] = {"low_jobs": lows, "rounds": rounds, "pool": "prefork",
                           **compare(waits, "ms", base=base, subject=subject)}
    for name, values in samples.items():
        out[name]["lows_waiting"] = [s.lows_waiting for s in values]
        out[name]["lows_overtaking"] = [s.lows_overtaking for s in values]
    return out


def run(ctx: Context) -> dict[str, Any]:
    """Measure both apps."""
    lows = ctx.size(10_000, 1_000)
    targets = {target.name: target for target in versus()}
    workers = {name: ctx.worker(target) for name, target in targets.items()}
    ctx.start_workers(list(workers.values()))
    samples = ctx.alternate(list(targets), lambda name, _r: measure_critical(ctx, workers[name],
                                                                             lows))
    base, subject = list(targets)
    return summarise(samples, lows, ctx.rounds, base, subject)


SCENARIO = Scenario("critical_behind_low", "start time of a critical job behind 10k low jobs",
                    run, order=40)
