"""One model, many short jobs: how close to back to back do they run?

1,000 jobs of 5 ms each on one model are published to a paused prefork ``-c 2``
worker, which is then resumed. Wall ratio = (last job's end - first job's start)
/ (1,000 x 5 ms): 1.0 would be a model never idle.

Plain Celery runs the same 1,000 jobs as plain tasks guarded by a Redis lock
(``SET NX PX 30000`` on one key, deleted by its owner at the end; when the lock is
taken, ``self.retry(countdown=0.005, max_retries=None)``), the usual way to
serialise plain Celery jobs; its retries burned are reported. Both alternate.

Order: ``started_before_an_earlier_job`` counts, per sample, the jobs that
started before a job submitted earlier (all at one priority; 0 = FIFO). The
``fifo`` scenario measures it on 200 jobs, as issue 15's speed table has it.
"""

from __future__ import annotations

from typing import Any

from bench import lockbench, plainlocks
from bench.harness import Context, Worker
from bench.lockbench import PIPELINE, PLAIN, Span
from bench.scenarios import Scenario
from bench.stats import paired_ratios, ratio
from bench.targets import Target

MODEL = "one"
SECONDS = 0.005
GOAL = 1.1


def _publish(name: str, target: Target, jobs: int) -> list[str]:
    if name == PLAIN:
        task = target.app.tasks[plainlocks.LOCKED]
        return [str(task.apply_async((SECONDS,)).id) for _ in range(jobs)]
    task = target.app.tasks["benchlocks.timed"]
    return [str(task.apply_async((SECONDS,), models=[MODEL]).id) for _ in range(jobs)]


def drain_spans(ctx: Context, name: str, worker: Worker, jobs: int) -> list[Span]:
    """Publish *jobs* to the paused *worker*, resume it, wait for every result."""
    worker.pause()
    worker.settle()
    ctx.client.delete(lockbench.STREAM)
    ids = _publish(name, worker.target, jobs)
    worker.resume()
    spans = lockbench.collect_spans(ctx.client, worker.target, ids, worker=worker, stall=120)
    worker.pause()
    return spans


def after_parking(ctx: Context, spans: list[Span]) -> dict[str, Any]:
    """How many jobs parked, and the wall ratio of the jobs that started after the last park.

    Every job published while the model is taken is delivered twice: once to
    park, once to run. Once all are parked only hand-offs remain.
    """
    entries: Any = ctx.client.xrange(lockbench.STREAM)
    parks = [int(f[b"t"]) / 1000.0 for _i, f in entries if f[b"e"] == b"blocked"]
    out: dict[str, Any] = {"parked": len(parks)}
    if parks:
        later = sorted((s for s in spans if s.started > max(parks)), key=lambda s: s.started)
        out["last_park_s"] = round(max(parks) - min(s.started for s in spans), 3)
        out["jobs_after_last_park"] = len(later)
        if len(later) > 1:
            wall = later[-1].ended - later[0].started
            out["wall_ratio_after_last_park"] = round(wall / (len(later) * SECONDS), 3)
    return out


def run(ctx: Context) -> dict[str, Any]:
    """Alternate the pipeline and the plain lock-and-retry jobs."""
    jobs = ctx.size(1_000, 200)
    targets = {PLAIN: lockbench.plain_target(), PIPELINE: lockbench.pipeline_target()}
    ideal = jobs * SECONDS
    retries: list[int] = []
    overlapped: dict[str, list[int]] = {PLAIN: [], PIPELINE: []}
    overtaking: dict[str, list[int]] = {PLAIN: [], PIPELINE: []}
    left_blocked: list[int] = []
    parking: list[dict[str, Any]] = []
    gaps: dict[str, list[float]] = {PLAIN: [], PIPELINE: []}
    durations: dict[str, list[float]] = {PLAIN: [], PIPELINE: []}

    def sample(name: str, _round: int) -> float:
        spans = drain_spans(ctx, name, workers[name], jobs)
        overlapped[name].append(lockbench.overlaps(spans))
        overtaking[name].append(lockbench.started_before_earlier(spans))
        gaps[name].extend(lockbench.handoff_gaps(spans))
        durations[name].extend((s.ended - s.started) * 1000.0 for s in spans)
        if name == PIPELINE:
            left_blocked.append(lockbench.left_blocked(spans))
            parking.append(after_parking(ctx, spans))
        if name == PLAIN:
            retries.append(sum(s.retries for s in spans))
        wall = max(s.ended for s in spans) - min(s.started for s in spans)
        return wall / ideal

    with lockbench.store_off_workers(ctx, targets) as workers:
        ctx.start_workers(list(workers.values()))
        samples = ctx.alternate(list(targets), sample)
    out: dict[str, Any] = {"jobs": jobs, "job_ms": SECONDS * 1000, "rounds": ctx.rounds,
                           "pool": "prefork", "store": "off", "unit": "wall / (jobs x 5 ms)"}
    for name, values in samples.items():
        out[name] = {"wall_ratio": lockbench.median_of(values),
                     "samples": [round(v, 3) for v in values],
                     "wall_s": lockbench.median_of([v * ideal for v in values]),
                     "job_ms": lockbench.distribution(durations[name]),
                     "gap_ms": lockbench.distribution(gaps[name]),
                     "overlapping_jobs": overlapped[name],
                     "started_before_an_earlier_job": overtaking[name]}
    out[PIPELINE]["results_left_blocked"] = left_blocked
    out[PIPELINE]["parking"] = parking
    out[PLAIN]["retries_burned"] = retries
    out[PLAIN]["retries_per_job"] = lockbench.median_of([r / jobs for r in retries])
    out[PIPELINE].update(lockbench.goal(out[PIPELINE]["wall_ratio"], GOAL, at_least=False))
    out["pipeline_vs_plain"] = ratio(out[PIPELINE]["wall_ratio"], out[PLAIN]["wall_ratio"])
    out.update(paired_ratios(samples[PIPELINE], samples[PLAIN]))
    return out


SCENARIO = Scenario("one_model", "1,000 jobs of 5 ms on one model: wall / ideal, vs lock+retry",
                    run, order=130)
