"""Drain rate of pipeline jobs that each take four locks, against plain Celery's trivial job.

Job i of the pipeline takes ``user:u<i>``, ``project:p<i>``, ``model:m<i>`` and a
global slot (distinct keys: nothing ever waits, so this is the cost of taking and
releasing locks). As in ``throughput``, each sample publishes N jobs to a paused
worker, resumes it, and divides N by the time from the first job's start to the
last job's stored result; plain Celery and the pipeline alternate round by round.

Variants, each on fresh workers and a flushed database (prefork ``-c 2`` and solo):

``store_off``
    ``PIPELINE_STORE_ENABLED=false`` for the workers and the publisher: the lock
    engine alone (its scripts still append their events to the stream).
``sqlite`` / ``postgresql``
    the job store on, written by a separate ``pipeline recorder`` process (niced)
    into a fresh SQLite file or a fresh PostgreSQL database (dropped after). The
    recorder's lag, the age of the oldest event not yet recorded, is sampled
    every 100 ms: p50/p99 over the drains, and how long after the last job's
    result it had recorded everything (``catch_up_s``; the next sample waits).
"""

from __future__ import annotations

import contextlib
import itertools
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import lockbench, recordbench
from bench.harness import POOLS, Context, drain_rate, publish
from bench.lockbench import PIPELINE, PLAIN
from bench.scenarios import Scenario
from bench.stats import compare
from bench.targets import Target

STORE_OFF = "store_off"
SQLITE = "sqlite"
POSTGRESQL = "postgresql"
GOALS = {"prefork": 0.95, "solo": 0.90}
_SQLITE_FILES = itertools.count(1)


@contextlib.contextmanager
def _store(variant: str, workdir: Path) -> Iterator[str | None]:
    if variant == STORE_OFF:
        yield None
    elif variant == SQLITE:
        yield f"sqlite:///{workdir / f'locks-{next(_SQLITE_FILES)}.db'}"
    else:
        with recordbench.postgres_database() as url:
            yield url


def _variants(ctx: Context, pool: str) -> list[str]:
    if ctx.quick:  # the store's variants need more jobs to say much anyway
        return [STORE_OFF, SQLITE] if pool == "prefork" else [STORE_OFF]
    return [STORE_OFF, SQLITE, POSTGRESQL]


def run(ctx: Context) -> dict[str, Any]:
    """Every pool and variant."""
    jobs = ctx.size(10_000, 600)
    out: dict[str, Any] = {"jobs": jobs, "rounds": ctx.rounds,
                           "locks_per_job": ["user", "project", "model", "global"]}
    for pool in POOLS:
        out[pool] = {}
        for variant in _variants(ctx, pool):
            with _store(variant, ctx.workdir) as url:
                out[pool][variant] = _phase(ctx, pool, url, jobs)
        out[pool][STORE_OFF].update(lockbench.goal(out[pool][STORE_OFF]["ratio"],
                                                   GOALS[pool], at_least=True))
    return out


def _phase(ctx: Context, pool: str, store_url: str | None, jobs: int) -> dict[str, Any]:
    env = lockbench.STORE_OFF if store_url is None else {
        "PIPELINE_STORE_ENABLED": "true", "PIPELINE_DATABASE_URL": store_url}
    app = lockbench.pipeline_target().app
    target = lockbench.pipeline_target(env=env, send=lockbench.distinct_sender(app))
    targets: dict[str, Target] = {PLAIN: lockbench.plain_target(), PIPELINE: target}
    lockbench.set_publisher_store(target.app, store_url is not None)
    ctx.flush()
    workers = {name: ctx.worker(t, pool) for name, t in targets.items()}
    recorder: recordbench.RecorderProcess | None = None
    sampler: recordbench.LagSampler | None = None
    lags: list[list[float]] = []
    catch_up: list[float] = []
    cpu: dict[str, list[tuple[float, float, float]]] = {PLAIN: [], PIPELINE: []}
    try:
        if store_url is not None:
            recorder = recordbench.RecorderProcess(ctx.workdir, store_url).start(ctx.client)
            sampler = recordbench.LagSampler(ctx.redis_url)
            sampler.start()
        ctx.start_workers(list(workers.values()))

        def sample(name: str, _round: int) -> float:
            if sampler is not None:
                sampler.caught_up(time.time())  # nothing of the last sample left to record
            recorded = recorder.cpu_seconds() if recorder is not None else 0.0
            drained = lockbench.drain(workers[name], lambda: publish(targets[name], jobs))
            timings = drained.timings
            if sampler is not None and name == PIPELINE:
                first = min(t.started for t in timings)
                last = max(t.finished for t in timings)
                lags.append(sampler.between(first, last))
                catch_up.append(round(sampler.caught_up(last), 2))
            if recorder is not None:
                recorded = recorder.cpu_seconds() - recorded
            cpu[name].append((drained.worker_cpu, drained.redis_cpu, recorded))
            return drain_rate(timings)

        samples = ctx.alternate(list(targets), sample)
    finally:
        ctx.stop_workers()
        if sampler is not None:
            sampler.stop()
        if recorder is not None:
            recorder.stop()
        lockbench.set_publisher_store(target.app, True)
    out = compare(samples, "jobs/s", digits=1)
    for name, values in cpu.items():
        # CPU microseconds per job during the drains: the worker (main process and
        # pool), the Redis server (every client of it), the recorder process.
        out[name]["cpu_us_per_job"] = {
            part: round(statistics.median(v[i] for v in values) / jobs * 1e6)
            for i, part in enumerate(("worker", "redis_server", "recorder"))
            if store_url is not None or i < 2}
    if store_url is not None:
        every = [lag * 1000.0 for values in lags for lag in values]
        out["recorder"] = {
            "store": store_url.split(":", 1)[0],
            "lag_ms": lockbench.distribution(every, 1),
            "round_lag_p99_ms": [lockbench.distribution([v * 1000 for v in r], 1).get("p99")
                                 for r in lags],
            "catch_up_s": catch_up,
        }
    return out


SCENARIO = Scenario("locks_throughput",
                    "drain rate of jobs taking user+project+model+global locks vs plain Celery",
                    run, order=110)
