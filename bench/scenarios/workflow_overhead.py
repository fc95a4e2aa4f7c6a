"""A 3-step workflow against a plain Celery chain of three trivial tasks.

N chains are published to a paused prefork ``-c 2`` worker, which is then resumed.
Pipeline: ``pipeline.workflow(noop.si(), noop.si(), noop.si())`` of the trivial
``bench.pipeline.noop`` job; plain: ``chain(noop.si(), noop.si(), noop.si())`` of
plain Celery's. Per-step time = (last result of a last step - first start of a
first step) / (3 N). The two alternate round by round.

A workflow holds its locks (here a global slot: the steps declare no other
resource) from its first step's start to its last step's end, including while its
next step waits in the queue; so with ``pipeline_concurrency_global`` = 5 at
most five workflows are under way and the first steps of the others park until
one ends. The events of each pipeline sample are counted by type (``blocked`` =
first steps that parked). To tell that parking from the per-step cost, a third
side runs the same workflows on a worker with ``PIPELINE_CONCURRENCY_GLOBAL=0``
(no global cap: nothing parks; the lock scripts still run for every step).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from celery import chain

from bench import lockbench
from bench.harness import Context, Worker
from bench.lockbench import PIPELINE, PLAIN
from bench.scenarios import Scenario
from bench.stats import compare
from bench.targets import Target
from pipeline import workflow

GOAL = 1.1
STREAM = "{pipeline}:events"
UNCAPPED = "pipeline_uncapped"


def _chain_publisher(name: str, target: Target) -> Callable[[], Any]:
    noop = target.app.tasks["bench.plain.noop" if name == PLAIN else "bench.pipeline.noop"]
    if name != PLAIN:
        return lambda: workflow(noop.si(), noop.si(), noop.si()).apply_async()
    return lambda: chain(noop.si(), noop.si(), noop.si()).apply_async()


def chains_sample(ctx: Context, name: str, worker: Worker, chains: int
                  ) -> tuple[float, dict[str, int]]:
    """Drain *chains* 3-step chains; per-step ms and the pipeline's events by type."""
    target = worker.target
    publish = _chain_publisher(name, target)
    worker.pause()
    worker.settle()
    ctx.client.delete(STREAM)
    steps: list[list[str]] = [[], [], []]
    for _ in range(chains):
        last = publish()
        steps[2].append(str(last.id))
        steps[1].append(str(last.parent.id))
        steps[0].append(str(last.parent.parent.id))
    worker.resume()
    ends = lockbench.collect_spans(ctx.client, target, steps[2], worker=worker)
    worker.pause()
    starts = lockbench.collect_spans(ctx.client, target, steps[0], worker=worker)
    middles = lockbench.collect_spans(ctx.client, target, steps[1], worker=worker)
    wall = max(s.stored for s in ends) - min(s.started for s in starts)
    events: Counter[str] = Counter()
    events["results_left_blocked"] = sum(lockbench.left_blocked(s) for s in (starts, middles, ends))
    if name != PLAIN:
        entries: Any = ctx.client.xrange(STREAM)
        for _id, fields in entries:
            events[fields[b"e"].decode()] += 1
    return wall / (3 * chains) * 1000.0, dict(events)


def run(ctx: Context) -> dict[str, Any]:
    """Alternate workflows and plain chains."""
    chains = ctx.size(500, 100)
    targets = {PLAIN: lockbench.plain_target(), PIPELINE: lockbench.pipeline_target(),
               UNCAPPED: lockbench.pipeline_target(UNCAPPED, env={
                   **lockbench.STORE_OFF, "PIPELINE_CONCURRENCY_GLOBAL": "0"})}
    events: dict[str, list[dict[str, int]]] = {PIPELINE: [], UNCAPPED: []}

    def sample(name: str, _round: int) -> float:
        per_step, counted = chains_sample(ctx, name, workers[name], chains)
        if name != PLAIN:
            events[name].append(counted)
        return per_step

    with lockbench.store_off_workers(ctx, targets) as workers:
        ctx.start_workers(list(workers.values()))
        samples = ctx.alternate(list(targets), sample)
    out: dict[str, Any] = {"chains": chains, "steps": 3, "rounds": ctx.rounds, "pool": "prefork",
                           "store": "off", **compare(samples, "ms per step", digits=3)}
    out[PIPELINE]["events"] = events[PIPELINE]
    out.update(lockbench.goal(out["ratio"], GOAL, at_least=False))
    uncapped = compare(samples, "ms per step", subject=UNCAPPED, digits=3)
    out[UNCAPPED] = {**uncapped[UNCAPPED], "events": events[UNCAPPED],
                     **{key: uncapped[key] for key in ("ratio", "paired_ratios", "spread",
                                                       "quotable", "flag") if key in uncapped}}
    return out


SCENARIO = Scenario("workflow_overhead", "3-step workflow vs plain chain: time per step",
                    run, order=150)
