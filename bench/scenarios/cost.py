"""What the pipeline costs against what a team would compare it with (issue 27's table).

Arms (``bench/costarms.py``): Celery as it ships (``bench/celery_defaults.py``), the
hand-written lock peer (``bench/lockpeer.py``), the pipeline, and Celery as it ships
on the pipeline's transport. Every comparison alternates its arms round by round in
one run (the order flips every round) and reports medians and the paired ratio of
every round. Phases, each on fresh workers and a flushed database:

``drain`` (prefork ``-c 2``, then solo)
    N no-op jobs (5,000; ``--quick`` 500) per arm, timed by marker jobs; the
    pipeline's and the peer's jobs take user, model and project locks, distinct per
    job. Before the rounds every arm is checked (``bench/armcheck.py``): its
    worker's settings as it claims them, no task event and no result during a small
    drain, and for the peer a contention check (jobs sharing their locks never
    overlap).
``parking`` (prefork ``-c 2``)
    ``bench/costpark.py``: 10,000 jobs (``--quick`` 1,000) parked behind a real
    holder, against the no-op drain of the same free process.
``one_model`` (prefork ``-c 2``; Dramatiq 2 processes)
    1,000 jobs of 5 ms (``--quick`` 200) on one model: wall / serial for the
    pipeline, plain Celery retrying on a ``SET NX`` lock (``bench/plainlocks.py``),
    the lock peer, and Dramatiq's ``ConcurrentRateLimiter`` when installed.
``handoff`` (prefork ``-c 2``)
    a holder's release to the next parked job's start, with 10, 10,000 and (full
    runs) 100,000 jobs parked behind the measured ones (``parked_scale``'s sample).

The table (``bench/cost.py``) goes to stderr and the JSON's ``summary``.
"""

from __future__ import annotations

import statistics
import time
import traceback
from collections.abc import Callable
from typing import Any

from bench import armcheck, costarms, costpark, drains, lockbench, lockpeer
from bench.costarms import CELERY, GUARDED, PEER, PIPELINE
from bench.dramatiq_arm import DramatiqWorker, missing
from bench.harness import POOLS, Context, Worker
from bench.lockbench import Span
from bench.scenarios import Scenario, one_model, parked_scale
from bench.stats import compare, paired_ratios, ratio, summary

#: The result's list of phases that failed (``python -m bench`` then exits 1).
FAILED_PHASES = "failed_phases"
PLAIN_RETRY = "plain_retry"
DRAMATIQ = "dramatiq"
ONE_MODEL = one_model.MODEL
JOB_S = one_model.SECONDS


def run(ctx: Context) -> dict[str, Any]:
    """Every phase; see the module docstring."""
    out: dict[str, Any] = {"rounds": ctx.rounds}
    sizes = (10, 10_000) if ctx.quick else (10, 10_000, 100_000)
    phases: dict[str, Callable[[], dict[str, Any]]] = {
        "drain": lambda: {pool: _drain(ctx, pool, ctx.size(5_000, 500)) for pool in POOLS},
        "parking": lambda: _parking(ctx, ctx.size(10_000, 1_000)),
        "one_model": lambda: _one_model(ctx, ctx.size(1_000, 200)),
        "handoff": lambda: _handoff(ctx, sizes, ctx.size(200, 100)),
    }
    failed: list[str] = []
    out["phase_seconds"] = seconds = {}
    for name, phase in phases.items():
        # One broken phase must not lose the others' figures.
        started = time.monotonic()
        try:
            ctx.flush()
            out[name] = phase()
        except Exception as exc:
            traceback.print_exc()
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
            failed.append(name)
        finally:
            ctx.stop_workers()
            seconds[name] = round(time.monotonic() - started, 1)
    if failed:
        out[FAILED_PHASES] = failed
    return out


def _drain(ctx: Context, pool: str, jobs: int) -> dict[str, Any]:
    sides = costarms.arm_targets()
    with lockbench.store_off_workers(ctx, sides, pool) as workers:
        ctx.start_workers(list(workers.values()))
        checks = {name: costarms.check_arm(ctx, name, worker, settings=True)
                  for name, worker in workers.items()}
        samples = ctx.alternate(list(sides), lambda name, _r: drains.marked_drain(
            workers[name], jobs).rate)
    return {"jobs": jobs, "pool": pool, "timing": "marker jobs (bench/drains.py)",
            "arm_checks": checks,
            "vs_celery": compare(samples, "jobs/s", base=CELERY, subject=PIPELINE, digits=1),
            "vs_peer": compare(samples, "jobs/s", base=PEER, subject=PIPELINE, digits=1),
            "transport": compare(samples, "jobs/s", base=CELERY, subject=GUARDED, digits=1),
            "peer_vs_celery": compare(samples, "jobs/s", base=CELERY, subject=PEER, digits=1)}


def _parking(ctx: Context, jobs: int) -> dict[str, Any]:
    sides = {lockbench.PIPELINE: costpark.target()}
    with lockbench.store_off_workers(ctx, sides) as workers:
        worker = workers[lockbench.PIPELINE]
        worker.start()
        samples = ctx.alternate(["run", "park"],
                                lambda kind, _r: costpark.sample(worker, jobs, kind))
    parked, ran = samples["park"], samples["run"]
    return {"jobs": jobs, "pool": "prefork", "holder": "one job holding the model",
            "unit": "jobs/s", "park": summary(parked, 1), "run": summary(ran, 1),
            "ratio": ratio(statistics.median(parked), statistics.median(ran)),
            **paired_ratios(parked, ran)}


def _peer_spans(worker: Worker, jobs: int, round_no: int) -> list[Span]:
    """*jobs* peer jobs of 5 ms sharing the model (own user and project each)."""
    task = worker.target.app.tasks[lockpeer.TIMED]
    key = f"bench:lockpeer:one:{round_no}"
    worker.client.delete(key)
    worker.pause()
    worker.settle()
    for i in range(jobs):
        task.apply_async((JOB_S, f"ou{round_no}-{i}", ONE_MODEL, f"op{round_no}-{i}", key))
    worker.resume()
    spans = armcheck.peer_spans(worker, key, jobs, 300, "jobs on one model")
    worker.pause()
    return spans


def _one_model(ctx: Context, jobs: int) -> dict[str, Any]:
    sides = {PLAIN_RETRY: lockbench.plain_target(), lockbench.PIPELINE:
             lockbench.pipeline_target(), PEER: costarms.peer_target()}
    skipped = missing()
    ideal = jobs * JOB_S
    spans_of: dict[str, list[list[Span]]] = {}
    retries: dict[str, list[int]] = {PLAIN_RETRY: [], DRAMATIQ: []}
    dramatiq: DramatiqWorker | None = None
    with lockbench.store_off_workers(ctx, sides) as workers:
        try:
            ctx.start_workers(list(workers.values()))
            names = [PLAIN_RETRY, lockbench.PIPELINE, PEER]
            if skipped is None:
                dramatiq = DramatiqWorker(ctx.workdir, ctx.client).start()
                names.append(DRAMATIQ)

            def sample(name: str, round_no: int) -> float:
                if name == DRAMATIQ:
                    assert dramatiq is not None
                    spans, burned = dramatiq.run(jobs, JOB_S)
                    retries[DRAMATIQ].append(burned)
                elif name == PEER:
                    spans = _peer_spans(workers[PEER], jobs, round_no)
                else:
                    arm = one_model.PLAIN if name == PLAIN_RETRY else one_model.PIPELINE
                    spans = one_model.drain_spans(ctx, arm, workers[name], jobs)
                    if name == PLAIN_RETRY:
                        retries[PLAIN_RETRY].append(sum(s.retries for s in spans))
                spans_of.setdefault(name, []).append(spans)
                return (max(s.ended for s in spans) - min(s.started for s in spans)) / ideal

            samples = ctx.alternate(names, sample)
        finally:
            if dramatiq is not None:
                dramatiq.stop()
    out: dict[str, Any] = {"jobs": jobs, "job_ms": JOB_S * 1000, "pool": "prefork",
                           "unit": "wall / (jobs x 5 ms)"}
    for name, values in samples.items():
        every = spans_of[name]
        out[name] = {"wall_ratio": lockbench.median_of(values),
                     "samples": [round(v, 3) for v in values],
                     "overlapping_jobs": [lockbench.overlaps(s) for s in every],
                     "gap_ms": lockbench.distribution(
                         [g for s in every for g in lockbench.handoff_gaps(s)])}
        if name in retries:
            out[name]["retries_per_job"] = [round(r / jobs, 3) for r in retries[name]]
    pipeline = samples[lockbench.PIPELINE]
    for name in samples:
        if name != lockbench.PIPELINE:
            out[f"vs_{name}"] = {"ratio": ratio(statistics.median(pipeline),
                                                statistics.median(samples[name])),
                                 **paired_ratios(pipeline, samples[name])}
    out["serial"] = {"ratio": lockbench.median_of(pipeline),
                     **paired_ratios(pipeline, [1.0] * len(pipeline))}
    if skipped is not None:
        out[DRAMATIQ] = {"skipped": skipped}
    return out


def _handoff(ctx: Context, sizes: tuple[int, ...], measured: int) -> dict[str, Any]:
    target = lockbench.pipeline_target()
    lockbench.set_publisher_store(target.app, False)
    names = [f"parked_{size}" for size in sizes]
    by_name = dict(zip(names, sizes, strict=True))
    try:
        samples = ctx.alternate(names, lambda name, _r: parked_scale.scale_sample(
            ctx, target, by_name[name], measured))
    finally:
        lockbench.set_publisher_store(target.app, True)
    out: dict[str, Any] = {"measured_jobs": measured, "pool": "prefork", "store": "off",
                           "unit": "ms"}
    for name, values in samples.items():
        gaps = [g for v in values for g in v["gaps"]]
        out[name] = {**lockbench.distribution(gaps),
                     "round_p50s": [lockbench.distribution(v["gaps"])["p50"] for v in values],
                     "round_p99s": [lockbench.distribution(v["gaps"])["p99"] for v in values],
                     "overlapping_jobs": [v["overlaps"] for v in values],
                     "park_rate_per_s": [round(v["parked_per_s"]) for v in values]}
    small, large = out[names[0]], out[names[-1]]
    out["flat"] = {"largest": names[-1], "ratio_p50": ratio(large["p50"], small["p50"]),
                   "ratio_p99": ratio(large["p99"], small["p99"]),
                   **paired_ratios(large["round_p50s"], small["round_p50s"])}
    return out


SCENARIO = Scenario("cost", "the pipeline against Celery as it ships, a hand-written lock peer "
                    "and Dramatiq: drains, transport, parking, one model, hand-off (issue 27)",
                    run, order=160)
