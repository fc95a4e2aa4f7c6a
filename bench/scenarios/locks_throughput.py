"""Drain rate of pipeline jobs that each take four locks, against plain Celery's trivial job.

Job i of the pipeline takes ``user:u<i>``, ``project:p<i>``, ``model:m<i>`` and a
global slot (distinct keys: nothing ever waits, so this is the cost of taking and
releasing locks). Each sample publishes N jobs to a paused worker, resumes it,
and divides N by the time from the first job's start to the last job's run,
both written by marker jobs (``bench/drains.py``).

Every variant compares against two baselines, four workers alternating round by
round (the order flips every round; each pair runs back to back):

``configured``
    plain Celery and the pipeline as ``celeryconfig`` sets them up: task events
    on, results stored with ``result_extended`` and ``task_track_started``;
``as_ships``
    both configured as Celery ships (``bench/as_ships.py``): no task events,
    results ignored; the same acks-late, prefetch 1, JSON and priority
    transport options.

Variants, each on fresh workers and a flushed database (prefork ``-c 2`` and solo):

``store_off``
    ``PIPELINE_STORE_ENABLED=false`` for the pipeline's workers and the
    publisher: the lock engine alone.
``sqlite`` / ``postgresql``
    the job store on, written by a separate ``pipeline recorder`` process (niced)
    into a fresh SQLite file or a fresh PostgreSQL database (dropped after). The
    recorder's lag, the age of the oldest event not yet recorded, is sampled
    every 100 ms: p50/p99 over the drains, and how long after the last job it
    had recorded everything (``catch_up_s``; the next sample waits). The
    PostgreSQL variant runs in full runs outside the ``speed`` group.
"""

from __future__ import annotations

import contextlib
import itertools
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import drains, lockbench, recordbench
from bench.harness import POOLS, Context
from bench.lockbench import PIPELINE, PIPELINE_AS_SHIPS, PLAIN, PLAIN_AS_SHIPS
from bench.scenarios import Scenario
from bench.stats import compare
from bench.targets import Target

STORE_OFF = "store_off"
SQLITE = "sqlite"
POSTGRESQL = "postgresql"
CONFIGURED = "configured"
AS_SHIPS = "as_ships"
#: Baseline -> (plain side, pipeline side).
BASELINES = {CONFIGURED: (PLAIN, PIPELINE), AS_SHIPS: (PLAIN_AS_SHIPS, PIPELINE_AS_SHIPS)}
#: Goals of issue 15's speed table, per (store, baseline, pool); and issue 3's for the
#: store-off drain against the configured baseline.
GOALS = {
    (STORE_OFF, AS_SHIPS, "prefork"): 0.95, (STORE_OFF, AS_SHIPS, "solo"): 0.90,
    (SQLITE, CONFIGURED, "prefork"): 0.97, (SQLITE, CONFIGURED, "solo"): 0.93,
    (STORE_OFF, CONFIGURED, "prefork"): 0.95, (STORE_OFF, CONFIGURED, "solo"): 0.90,
}
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


def _variants(ctx: Context) -> list[str]:
    if ctx.quick or not ctx.postgres:
        return [STORE_OFF, SQLITE]
    return [STORE_OFF, SQLITE, POSTGRESQL]


def run(ctx: Context) -> dict[str, Any]:
    """Every pool and variant, against both baselines."""
    jobs = ctx.size(10_000, 600)
    out: dict[str, Any] = {"jobs": jobs, "rounds": ctx.rounds,
                           "locks_per_job": ["user", "project", "model", "global"],
                           "timing": "marker jobs (bench/drains.py)"}
    for pool in POOLS:
        out[pool] = {}
        for variant in _variants(ctx):
            with _store(variant, ctx.workdir) as url:
                out[pool][variant] = _phase(ctx, pool, url, jobs)
            for baseline, result in out[pool][variant].items():
                limit = GOALS.get((variant, baseline, pool))
                if limit is not None:
                    result.update(lockbench.goal(result["ratio"], limit, at_least=True))
    return out


def lock_targets(store_url: str | None) -> dict[str, Target]:
    """The four sides: plain and the pipeline (four locks per job), configured and as ships."""
    env = lockbench.STORE_OFF if store_url is None else {
        "PIPELINE_STORE_ENABLED": "true", "PIPELINE_DATABASE_URL": store_url}
    app = lockbench.pipeline_target().app
    send, send_mark = lockbench.distinct_senders(app)
    shipped = lockbench.pipeline_target(PIPELINE_AS_SHIPS, env=env, as_ships=True)
    ship_send, ship_mark = lockbench.distinct_senders(app, shipped)
    return {
        PLAIN_AS_SHIPS: lockbench.plain_target(PLAIN_AS_SHIPS, as_ships=True),
        PIPELINE_AS_SHIPS: lockbench.pipeline_target(PIPELINE_AS_SHIPS, env=env, as_ships=True,
                                                     send=ship_send, send_mark=ship_mark),
        PLAIN: lockbench.plain_target(),
        PIPELINE: lockbench.pipeline_target(env=env, send=send, send_mark=send_mark),
    }


def _phase(ctx: Context, pool: str, store_url: str | None, jobs: int) -> dict[str, Any]:
    sides = lock_targets(store_url)
    app = sides[PIPELINE].app
    lockbench.set_publisher_store(app, store_url is not None)
    ctx.flush()
    workers = {name: ctx.worker(t, pool) for name, t in sides.items()}
    recorder: recordbench.RecorderProcess | None = None
    sampler: recordbench.LagSampler | None = None
    lags: dict[str, list[list[float]]] = {PIPELINE: [], PIPELINE_AS_SHIPS: []}
    catch_up: dict[str, list[float]] = {PIPELINE: [], PIPELINE_AS_SHIPS: []}
    cpu: dict[str, list[tuple[float, float, float]]] = {name: [] for name in sides}
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
            drained = drains.marked_drain(workers[name], jobs)
            if sampler is not None and name in lags:
                lags[name].append(sampler.between(drained.first, drained.last))
                catch_up[name].append(round(sampler.caught_up(drained.last), 2))
            if recorder is not None:
                recorded = recorder.cpu_seconds() - recorded
            cpu[name].append((drained.worker_cpu, drained.redis_cpu, recorded))
            return drained.rate

        samples = ctx.alternate(list(sides), sample)
    finally:
        ctx.stop_workers()
        if sampler is not None:
            sampler.stop()
        if recorder is not None:
            recorder.stop()
        lockbench.set_publisher_store(app, True)
    out: dict[str, Any] = {}
    for baseline, (base, subject) in BASELINES.items():
        result = compare(samples, "jobs/s", base=base, subject=subject, digits=1)
        for name in (base, subject):
            result[name]["cpu_us_per_job"] = _cpu_per_job(cpu[name], jobs, store_url is not None)
        if store_url is not None:
            result["recorder"] = _recorder(store_url, lags[subject], catch_up[subject])
        out[baseline] = result
    return out


def _cpu_per_job(values: list[tuple[float, float, float]], jobs: int, store: bool
                 ) -> dict[str, int]:
    """CPU microseconds per job during the drains: the worker (main process and pool),
    the Redis server (every client of it), the recorder process (store on)."""
    parts = ("worker", "redis_server", "recorder") if store else ("worker", "redis_server")
    return {part: round(statistics.median(v[i] for v in values) / jobs * 1e6)
            for i, part in enumerate(parts)}


def _recorder(store_url: str, lags: list[list[float]], catch_up: list[float]) -> dict[str, Any]:
    every = [lag * 1000.0 for values in lags for lag in values]
    return {
        "store": store_url.split(":", 1)[0],
        "lag_ms": lockbench.distribution(every, 1),
        "round_lag_p99_ms": [lockbench.distribution([v * 1000 for v in r], 1).get("p99")
                             for r in lags],
        "catch_up_s": catch_up,
    }


SCENARIO = Scenario("locks_throughput",
                    "drain rate of jobs taking user+project+model+global locks vs plain Celery, "
                    "configured and as it ships",
                    run, order=110)
