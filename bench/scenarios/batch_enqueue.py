"""Batch publishing: jobs/s of ``pipeline.job.batch.enqueue_many`` against plain Celery.

No worker runs. Each sample publishes the same number of trivial jobs:

``pipeline_batch``
    ``enqueue_many(app, [noop.s() for _ in range(1000)])`` per batch of 1,000 (job
    store on, as deployed: its ``queued`` events go to the stream from a buffered
    thread, flushed before the next sample);
``pipeline_batch_store_off``
    the same with ``pipeline_store_enabled`` off;
``plain_group``
    ``group(noop.s() for _ in range(1000)).apply_async()`` per batch;
``plain_delay``
    a loop of ``noop.delay()``.

Every sample checks that all its jobs reached the queue, then purges it. The four
alternate, the order reversed every round. Ratios are pipeline / plain.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from celery import group

from bench import lockbench
from bench.errors import BenchError
from bench.harness import Context, purge
from bench.scenarios import Scenario
from bench.stats import ratio, summary
from bench.targets import Target
from pipeline.job.batch import enqueue_many
from pipeline.runtime.services import services_for

BATCH = 1000
PIPELINE_BATCH = "pipeline_batch"
PIPELINE_BATCH_OFF = "pipeline_batch_store_off"
PLAIN_GROUP = "plain_group"
PLAIN_DELAY = "plain_delay"


def _publishers(pipe: Target, plain: Target) -> dict[str, Callable[[int], None]]:
    noop = pipe.app.tasks["bench.pipeline.noop"]
    plain_noop = plain.app.tasks["bench.plain.noop"]

    def pipeline_batch(batches: int) -> None:
        for _ in range(batches):
            enqueue_many(pipe.app, [noop.s() for _ in range(BATCH)])

    def plain_group(batches: int) -> None:
        for _ in range(batches):
            group(plain_noop.s() for _ in range(BATCH)).apply_async()

    def plain_delay(batches: int) -> None:
        for _ in range(batches * BATCH):
            plain_noop.delay()

    return {PIPELINE_BATCH: pipeline_batch, PIPELINE_BATCH_OFF: pipeline_batch,
            PLAIN_GROUP: plain_group, PLAIN_DELAY: plain_delay}


def run(ctx: Context) -> dict[str, Any]:
    """Time each way of publishing, alternating."""
    batches = ctx.size(20, 3)
    pipe, plain = lockbench.pipeline_target(), lockbench.plain_target()
    ctx.flush()
    publishers = _publishers(pipe, plain)
    owner = {PIPELINE_BATCH: pipe, PIPELINE_BATCH_OFF: pipe, PLAIN_GROUP: plain,
             PLAIN_DELAY: plain}
    for name, publisher in publishers.items():  # warm up: imports, connections, scripts
        lockbench.set_publisher_store(pipe.app, name != PIPELINE_BATCH_OFF)
        publisher(1)
        purge(owner[name], owner[name].queues)

    def sample(name: str, _round: int) -> float:
        lockbench.set_publisher_store(pipe.app, name != PIPELINE_BATCH_OFF)
        started = time.perf_counter()
        publishers[name](batches)
        rate = batches * BATCH / (time.perf_counter() - started)
        if name == PIPELINE_BATCH:
            services_for(pipe.app).emitter.flush()
        published = purge(owner[name], owner[name].queues)
        if published != batches * BATCH:
            raise BenchError(f"{name}: {published} of {batches * BATCH} jobs reached the queue")
        ctx.client.delete("{pipeline}:events")
        return rate

    try:
        samples = ctx.alternate(list(publishers), sample)
    finally:
        lockbench.set_publisher_store(pipe.app, True)
    out: dict[str, Any] = {"jobs": batches * BATCH, "batch": BATCH, "rounds": ctx.rounds,
                           "unit": "jobs/s"}
    for name, values in samples.items():
        out[name] = summary(values, 1)
    for subject in (PIPELINE_BATCH, PIPELINE_BATCH_OFF):
        for base in (PLAIN_GROUP, PLAIN_DELAY):
            out[f"ratio_{subject}_vs_{base}"] = {
                "ratio": ratio(out[subject]["median"], out[base]["median"]),
                "paired_ratios": [ratio(s, b) for s, b in zip(samples[subject], samples[base],
                                                              strict=True)]}
    return out


SCENARIO = Scenario("batch_enqueue", "jobs/s of enqueue_many vs plain group and .delay() loop",
                    run, order=160)
