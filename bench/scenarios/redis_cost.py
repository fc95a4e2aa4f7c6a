"""What one job costs Redis: server CPU and commands per job while a solo worker drains.

Read from ``INFO cpu`` and ``INFO commandstats`` just before the worker
resumes and after the last result. Both are server-wide, so other clients of
the same Redis add a little; the medians of alternating rounds are reported,
and commands issued less than once per ten jobs are left out as someone
else's. Redis 7 counts the commands a Lua script calls in commandstats too,
so the pipeline's table lists what its scripts do, and ``evalsha`` time
includes them. The harness's own polling (EXISTS, MGET, DEL, INFO) is left out.
"""

from __future__ import annotations

import statistics
from typing import Any

import redis

from bench.harness import Context, collect, publish
from bench.scenarios import Scenario
from bench.stats import compare, rounded
from bench.targets import versus

HARNESS_COMMANDS = frozenset({"exists", "mget", "del", "info"})
MIN_CALLS_PER_JOB = 0.1


def server_cpu(client: redis.Redis) -> float:
    """Seconds of CPU the Redis server used since it started (user + system)."""
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def commands(client: redis.Redis) -> dict[str, tuple[int, int]]:
    """Command name -> (calls, microseconds) since the server started."""
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"]))
            for name, v in stats.items()}


def per_job(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]],
            jobs: int) -> dict[str, tuple[float, float]]:
    """Command -> (calls per job, microseconds per call) between two readings."""
    out: dict[str, tuple[float, float]] = {}
    for name, (calls, usec) in after.items():
        old_calls, old_usec = before.get(name, (0, 0))
        if name not in HARNESS_COMMANDS and calls - old_calls >= MIN_CALLS_PER_JOB * jobs:
            out[name] = ((calls - old_calls) / jobs, (usec - old_usec) / (calls - old_calls))
    return out


def run(ctx: Context) -> dict[str, Any]:
    """Drain N jobs per app and round on a solo worker, reading the counters around it."""
    jobs = ctx.size(3_000, 500)
    targets = {target.name: target for target in versus()}
    workers = {name: ctx.worker(target, "solo") for name, target in targets.items()}
    ctx.start_workers(list(workers.values()))
    tables: dict[str, list[dict[str, tuple[float, float]]]] = {name: [] for name in targets}

    def sample(name: str, _round: int) -> float:
        worker = workers[name]
        worker.settle()
        ids = publish(targets[name], jobs)
        cpu, before = server_cpu(ctx.client), commands(ctx.client)
        worker.resume()
        collect(ctx.client, targets[name], ids, worker=worker)
        tables[name].append(per_job(before, commands(ctx.client), jobs))
        used = server_cpu(ctx.client) - cpu
        worker.pause()
        return used * 1e6 / jobs

    cpu = ctx.alternate(list(targets), sample)
    out: dict[str, Any] = {"jobs": jobs, "rounds": ctx.rounds, "pool": "solo",
                           "redis_cpu_us_per_job": compare(cpu, "µs", digits=1)}
    for name, rounds in tables.items():
        names = sorted({c for table in rounds for c in table},
                       key=lambda c: -statistics.median(t.get(c, (0.0, 0.0))[0] for t in rounds))
        out[name] = {"commands": {
            c: {"calls_per_job": rounded(statistics.median(t.get(c, (0.0, 0.0))[0]
                                                           for t in rounds), 2),
                "us_per_call": rounded(statistics.median(t.get(c, (0.0, 0.0))[1]
                                                         for t in rounds), 1)}
            for c in names}}
    return out


SCENARIO = Scenario("redis_cost", "Redis CPU and commands per job while a solo worker drains",
                    run, order=60)
