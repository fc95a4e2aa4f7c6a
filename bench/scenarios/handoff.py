"""Hand-off: from a job's release to the start of the job parked on the same model.

Pipeline (prefork ``-c 2``, store off): the driver takes the model under a fake
holder (``bench/parker.py``), publishes N jobs on it (``benchlocks.timed``,
zero-length, returning their own start and end), waits until all N are parked,
and releases the model. From then on each job's release hands the model to the
next parked job and pushes its message to the front of the queue. Hand-off =
next job's start - previous job's end, in start order: storing the previous
job's result, its release script, the broker hop and the next job's lock call.
(The first job's start after the fake release is reported apart.)

Plain Celery (the reference): the gap a *busy* plain worker leaves between two
jobs, one job's end to the next one's start on the same pool process (same
pool, ``-c 2``): N trivial jobs (``benchlocks.plain.busy``, which reports its
pid) drained from a queue filled while the worker was paused. That gap holds
what any job-to-job step through the broker costs: storing the result,
acknowledging, fetching the next message and handing it to the process.

Two modes, as issue 15's speed table has them:

``quiet``
    nothing else parks (or, for plain, arrives) while the N jobs run;
``parking``
    while they run, the driver keeps publishing new jobs on the same model at
    :data:`ARRIVALS_PER_S` (plain: new trivial jobs into the same queue), which
    the pipeline's worker takes and parks between hand-offs. Only gaps whose
    next job started while new jobs were still arriving are counted; the new
    jobs then run too (and are checked never to overlap on the model).

In both modes a gap counts only when the next job was already published when
the previous one ended (it was waiting): a job that arrives at an idle model,
or at an idle plain process, waited for its own arrival, not for a hand-off.

All four sides alternate round by round; each round's p50 ratio is paired.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from bench import lockbench, plainlocks
from bench.harness import Context, Worker
from bench.lockbench import PIPELINE, PLAIN, Span
from bench.parker import Parker
from bench.scenarios import Scenario
from bench.stats import paired_ratios, ratio, rounded
from bench.targets import Target
from pipeline.priority import Priority

QUIET = "quiet"
PARKING = "parking"
MODES = (QUIET, PARKING)
#: New jobs per second published during the ``parking`` mode.
ARRIVALS_PER_S = 100.0
#: Goals of issue 15 (ms, strictly below), in both modes.
GOAL_P50_MS = 2.0
GOAL_P99_MS = 5.0


class Arrivals(threading.Thread):
    """Publishes one job every ``1 / rate`` seconds until :meth:`finish`; keeps their ids."""

    def __init__(self, publish_one: Callable[[], str], rate: float = ARRIVALS_PER_S) -> None:
        super().__init__(name="arrivals", daemon=True)
        self.publish_one = publish_one
        self.interval = 1.0 / rate
        self.published: list[tuple[float, str]] = []
        self.error: BaseException | None = None
        self._stopping = threading.Event()

    def run(self) -> None:
        """Publish on a steady schedule (late publishes do not bunch up)."""
        due = time.monotonic()
        try:
            while not self._stopping.is_set():
                self.published.append(_timed(self.publish_one))
                due = max(due + self.interval, time.monotonic())
                self._stopping.wait(max(0.0, due - time.monotonic()))
        except BaseException as exc:  # reported by finish()
            self.error = exc

    def finish(self) -> tuple[float, list[tuple[float, str]]]:
        """Stop publishing; return when it stopped and (publish time, id) of each job."""
        self._stopping.set()
        self.join(10)
        stopped = time.time()
        if self.error is not None:
            raise self.error
        return stopped, self.published


def _timed(publish_one: Callable[[], str]) -> tuple[float, str]:
    """(the time just before the publish, the job's id)."""
    return time.time(), publish_one()


def _drain(ctx: Context, target: Target, worker: Worker, measured: list[tuple[float, str]],
           arrivals: Arrivals | None) -> tuple[list[tuple[Span, float]], float | None, int]:
    """Wait for the measured jobs, stop the arrivals, wait for theirs; every (span, publish
    time), when the arrivals stopped, how many arrived."""
    spans = lockbench.collect_spans(ctx.client, target, [i for _t, i in measured], worker=worker)
    until, extra = arrivals.finish() if arrivals is not None else (None, [])
    extra_spans = lockbench.collect_spans(ctx.client, target, [i for _t, i in extra],
                                          worker=worker)
    jobs = [(span, published) for span, (published, _id) in
            zip(spans + extra_spans, measured + extra, strict=True)]
    return jobs, until, len(extra)


def pipeline_sample(ctx: Context, target: Target, worker: Worker, jobs: int, mode: str,
                    model: str) -> dict[str, Any]:
    """Hand-offs (ms) of *jobs* jobs parked behind a fake holder of *model*, then released."""
    parker = Parker(target, model)
    parker.hold()
    task = target.app.tasks["benchlocks.timed"]

    def one() -> str:
        return str(task.apply_async(models=[model]).id)

    measured = [_timed(one) for _ in range(jobs)]
    parker.wait_parked(int(Priority.NORMAL), jobs)
    arrivals = Arrivals(one) if mode == PARKING else None
    released = time.time()
    parker.release()
    if arrivals is not None:
        arrivals.start()
    every, until, arrived = _drain(ctx, target, worker, measured, arrivals)
    spans = [span for span, _published in every]
    return {"gaps": lockbench.waiting_gaps(every, per_process=False, until=until),
            "overlaps": lockbench.overlaps(spans), "left_blocked": lockbench.left_blocked(spans),
            "first_start_ms": (min(s.started for s in spans[:jobs]) - released) * 1000.0,
            "arrived": arrived}


def plain_sample(ctx: Context, target: Target, worker: Worker, jobs: int, mode: str
                 ) -> dict[str, Any]:
    """Gaps (ms) between consecutive jobs of one pool process of a busy plain worker."""
    task = target.app.tasks[plainlocks.BUSY]

    def one() -> str:
        return str(task.delay().id)

    worker.pause()
    worker.settle()
    measured = [_timed(one) for _ in range(jobs)]
    arrivals = Arrivals(one) if mode == PARKING else None
    worker.resume()
    if arrivals is not None:
        arrivals.start()
    every, until, arrived = _drain(ctx, target, worker, measured, arrivals)
    worker.pause()
    return {"gaps": lockbench.waiting_gaps(every, per_process=True, until=until),
            "arrived": arrived}


def _summary(values: list[dict[str, Any]]) -> dict[str, Any]:
    every = [g for v in values for g in v["gaps"]]
    return {**lockbench.distribution(every),
            "round_p50s": [lockbench.distribution(v["gaps"]).get("p50") for v in values]}


def _mode_report(samples: dict[str, list[dict[str, Any]]], mode: str) -> dict[str, Any]:
    pipeline, plain = samples[f"{PIPELINE}_{mode}"], samples[f"{PLAIN}_{mode}"]
    handoff = {**_summary(pipeline),
               "release_to_first_start_ms": [rounded(v["first_start_ms"]) for v in pipeline],
               "overlapping_jobs": [v["overlaps"] for v in pipeline],
               "results_left_blocked": [v["left_blocked"] for v in pipeline]}
    busy = _summary(plain)
    if mode == PARKING:
        handoff["jobs_arrived"] = [v["arrived"] for v in pipeline]
        busy["jobs_arrived"] = [v["arrived"] for v in plain]
    out: dict[str, Any] = {"pipeline_handoff": handoff, "plain_busy_gap": busy,
                           "ratio_p50": ratio(handoff.get("p50", 0.0), busy.get("p50", 0.0)),
                           "ratio_p99": ratio(handoff.get("p99", 0.0), busy.get("p99", 0.0)),
                           **paired_ratios(handoff["round_p50s"], busy["round_p50s"])}
    out["goal"] = {"p50": f"< {GOAL_P50_MS} ms", "p99": f"< {GOAL_P99_MS} ms",
                   "met": bool(handoff.get("p50", 1e9) < GOAL_P50_MS
                               and handoff.get("p99", 1e9) < GOAL_P99_MS)}
    return out


def run(ctx: Context) -> dict[str, Any]:
    """Alternate the pipeline's hand-offs with a busy plain worker's gaps, in both modes."""
    jobs = ctx.size(300, 60)
    targets = {PLAIN: lockbench.plain_target(), PIPELINE: lockbench.pipeline_target()}
    names = [f"{side}_{mode}" for mode in MODES for side in (PLAIN, PIPELINE)]

    def sample(name: str, round_no: int) -> dict[str, Any]:
        side, mode = name.split("_", 1)
        if side == PLAIN:
            return plain_sample(ctx, targets[side], workers[side], jobs, mode)
        return pipeline_sample(ctx, targets[side], workers[side], jobs, mode,
                               model=f"handoff-{mode}-{round_no}")

    with lockbench.store_off_workers(ctx, targets) as workers:
        for worker in workers.values():
            worker.spawn()
        for worker in workers.values():
            worker.ready()
        # The pipeline's worker consumes throughout: the jobs park as they arrive.
        workers[PLAIN].pause()
        samples = ctx.alternate(names, sample)
    out: dict[str, Any] = {
        "jobs_per_round": jobs, "rounds": ctx.rounds, "pool": "prefork", "store": "off",
        "unit": "ms", "arrivals_per_s": ARRIVALS_PER_S,
        "reference": "plain Celery, busy: one job's end to the next job's start on the same "
                     "pool process",
    }
    for mode in MODES:
        out[mode] = _mode_report(samples, mode)
    return out


SCENARIO = Scenario("handoff", "release-to-start of the next job parked on the same model, "
                    "against a busy plain worker's gap between jobs", run, order=120)
