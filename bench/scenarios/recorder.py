"""What recording the job store costs the pipeline's drain rate on this machine.

``pipeline up`` runs the recorder as its own niced process beside the worker;
on two cores it still competes with the worker for the CPU. This scenario
drains the same pre-filled queue (prefork ``-c 2``) with the recorder process
running and without it. The two set-ups never run together, since the
recorder would also write the other's events: every sample starts from a
flushed database with fresh, warmed-up processes and stops them at the end.
"""

from __future__ import annotations

from typing import Any

from bench.harness import Context, measure_drain, publish
from bench.scenarios import Scenario
from bench.stats import compare
from bench.targets import PIPELINE, PIPELINE_RECORDER_OFF, pipeline, pipeline_recorder_off


def run(ctx: Context) -> dict[str, Any]:
    """Alternate fresh workers with and without the recorder."""
    jobs = ctx.size(10_000, 1_000)
    targets = {PIPELINE_RECORDER_OFF: pipeline_recorder_off(), PIPELINE: pipeline()}
    catch_up: list[float] = []

    def sample(name: str, _round: int) -> float:
        ctx.flush()
        worker = ctx.worker(targets[name])
        ctx.start_workers([worker])
        try:
            drained = measure_drain(worker, lambda: publish(targets[name], jobs))
        finally:
            ctx.stop_workers()
        if name == PIPELINE:
            catch_up.append(round(drained.idle_after, 2))
        return drained.rate

    samples = ctx.alternate(list(targets), sample)
    out: dict[str, Any] = {"jobs": jobs, "rounds": ctx.rounds, "pool": "prefork",
                           **compare(samples, "jobs/s", base=PIPELINE_RECORDER_OFF,
                                     subject=PIPELINE, digits=1)}
    out[PIPELINE]["recorder_catch_up_s"] = catch_up
    return out


SCENARIO = Scenario("recorder", "pipeline drain rate with and without its recorder process",
                    run, order=15)
