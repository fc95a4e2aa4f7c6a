"""One queue with kombu priority steps, or one queue per level?

Both layouts run plain Celery tasks (the layout is a broker matter) with the
pipeline's settings and ``queue_order_strategy='priority'``:

``single``
    one queue, ``priority_steps`` [0, 3, 6, 9]: kombu keeps one Redis list per
    step and BRPOPs them most urgent first (the current design);
``per_level``
    four queues ``bench.level.critical`` ... ``bench.level.low``, one step each,
    the worker consuming ``-Q critical,high,normal,low``.

kombu builds its BRPOP key list as ``for step in priority_steps for queue in
queues``; with the ``priority`` cycle the queue list keeps the order in which
the worker started consuming (``-Q`` order) and is never rotated, so Redis
serves the first non-empty list of that order. ``order_check`` verifies this
on a solo worker, including a reversed ``-Q`` that must serve ``low`` first.
"""

from __future__ import annotations

import itertools
from typing import Any

from bench import targets
from bench.harness import Context, collect, measure_drain, publish_mixed
from bench.scenarios import Scenario
from bench.scenarios.critical_behind_low import measure_critical, summarise
from bench.stats import compare
from bench.targets import Target
from pipeline.priority import Priority

SINGLE = "single"
PER_LEVEL = "per_level"
ORDER_JOBS_PER_LEVEL = 10
#: Medians closer than this (relative) are within the noise of this machine.
NOISE = 0.10


def order_check(ctx: Context, target: Target, queues: tuple[str, ...]) -> dict[str, Any]:
    """Queue jobs of every level (least urgent first), start a solo worker, read the order."""
    levels = list(reversed(Priority))
    by_id: dict[str, Priority] = {}
    for _ in range(ORDER_JOBS_PER_LEVEL):
        for level in levels:
            by_id[target.send(level)] = level
    worker = ctx.worker(target, "solo", queues).start(warm_jobs=0)
    ids = list(by_id)
    timings = collect(ctx.client, target, ids, worker=worker)
    worker.stop()
    started = sorted(zip((t.started for t in timings), ids, strict=True))
    served = [by_id[task_id].label for _, task_id in started]
    runs = [served[0]] + [b for a, b in itertools.pairwise(served) if a != b]
    return {"queues": list(queues), "served_level_runs": runs,
            "most_urgent_first": runs == [p.label for p in Priority]}


def clearly_below(low: dict[str, Any], high: dict[str, Any], margin: float) -> bool:
    """Whether every sample of *low* is below every sample of *high*, medians *margin* apart."""
    return bool(low["max"] < high["min"] and low["median"] < high["median"] * (1 - margin))


def recommend(drain: dict[str, Any], critical: dict[str, Any],
              checks: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The layout to use, from the measured figures and the order check.

    ``per_level`` is chosen only if it is clearly better on one measure (its
    samples do not overlap the single queue's and the medians differ by more
    than :data:`NOISE`) and not clearly worse on the other.
    """
    single, per_level = drain[SINGLE], drain[PER_LEVEL]
    faster = clearly_below(single, per_level, NOISE)
    slower = clearly_below(per_level, single, NOISE)
    single, per_level = critical[SINGLE], critical[PER_LEVEL]
    sooner = clearly_below(per_level, single, NOISE)
    later = clearly_below(single, per_level, NOISE)
    choice = PER_LEVEL if (faster or sooner) and not (slower or later) else SINGLE
    reasons = [
        f"per_level drained at {drain['ratio']}x the single queue's rate "
        f"({'faster' if faster else 'slower' if slower else 'equal within noise'})",
        f"per_level started the critical job in {critical['ratio']}x the single queue's time "
        f"({'sooner' if sooner else 'later' if later else 'equal within noise'})",
    ]
    if not checks["per_level_reversed_q"]["most_urgent_first"]:
        reasons.append("per_level serves levels in whatever order -Q lists the queues "
                       "(a reversed -Q served low first), while the single queue serves by "
                       "the message's priority with any -Q")
    return {"layout": choice, "reasons": reasons}


def run(ctx: Context) -> dict[str, Any]:
    """Drain rate, critical-behind-low and the order check for both layouts."""
    layouts = {SINGLE: targets.layout(SINGLE), PER_LEVEL: targets.layout(PER_LEVEL)}
    jobs = ctx.size(20_000, 1_500)
    lows = ctx.size(10_000, 1_000)
    workers = {name: ctx.worker(target) for name, target in layouts.items()}
    ctx.start_workers(list(workers.values()))

    def drain(name: str, _round: int) -> float:
        return measure_drain(workers[name], lambda: publish_mixed(layouts[name], jobs)).rate

    drain_out = {"jobs": jobs, "levels": "cycled critical/high/normal/low",
                 **compare(ctx.alternate(list(layouts), drain), "jobs/s",
                           base=SINGLE, subject=PER_LEVEL, digits=1)}
    critical = ctx.alternate(list(layouts),
                             lambda name, _r: measure_critical(ctx, workers[name], lows))
    critical_out = summarise(critical, lows, ctx.rounds, SINGLE, PER_LEVEL)
    ctx.stop_workers()

    per_level = layouts[PER_LEVEL]
    checks = {
        SINGLE: order_check(ctx, layouts[SINGLE], layouts[SINGLE].queues),
        PER_LEVEL: order_check(ctx, per_level, per_level.queues),
        "per_level_reversed_q": order_check(ctx, per_level, tuple(reversed(per_level.queues))),
    }
    return {
        "drain": drain_out,
        "critical_behind_low": critical_out,
        "order_check": checks,
        "recommendation": recommend(drain_out, critical_out, checks),
    }


SCENARIO = Scenario("queue_layout", "one queue with priority steps vs one queue per level",
                    run, order=50)
