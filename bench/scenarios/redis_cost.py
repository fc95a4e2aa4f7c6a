"""What one job costs Redis: commands and server CPU per job while a solo worker drains.

Two passes per app, on a solo worker, each lasting until the last result is
stored and (for the pipeline) its recorder has written every event:

* a short pass under ``MONITOR`` counts the commands issued on the benchmark
  database, split into commands sent by clients and commands run by Lua
  scripts -- exact, whatever else the server is doing;
* the timed passes (alternating rounds, no MONITOR) read ``INFO cpu`` and
  ``INFO commandstats`` around the drain. Both are server-wide: the share of
  the commands counted there that the MONITOR pass does not explain is
  reported as ``foreign_share``, and a CPU figure with a large one is
  inflated by other clients of the same Redis.

The harness's own polling (EXISTS, MGET, DEL, INFO, XINFO) is left out.
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import redis

from bench.harness import Context, Worker, collect, publish, wait_idle
from bench.scenarios import Scenario
from bench.stats import compare, rounded
from bench.targets import versus

HARNESS_COMMANDS = frozenset({"exists", "mget", "del", "info", "xinfo", "monitor"})
MONITOR_LINE = re.compile(r'^[\d.]+ \[(\d+) (\S+)\] "([^"]+)"')


def drain(ctx: Context, worker: Worker, jobs: int) -> None:
    """Let the settled, paused *worker* run *jobs* pre-published jobs and finish their work."""
    target = worker.target
    worker.settle()
    ids = publish(target, jobs)
    worker.resume()
    collect(ctx.client, target, ids, worker=worker)
    wait_idle(worker)  # the recorder's reads and writes belong to the job too
    worker.pause()


def monitored(ctx: Context, worker: Worker, jobs: int) -> dict[str, dict[str, float]]:
    """Commands per job on the benchmark database, by sender (``client`` or ``lua``)."""
    path = Path(ctx.workdir) / f"monitor-{worker.target.name}.txt"
    db = str(ctx.client.connection_pool.connection_kwargs.get("db", 0))
    with open(path, "wb") as out:
        monitor = subprocess.Popen(["redis-cli", "-u", ctx.redis_url, "monitor"], stdout=out,
                                   stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.3)
            drain(ctx, worker, jobs)
            worker.settle()
        finally:
            monitor.terminate()
            monitor.wait(10)
    counts: dict[str, Counter[str]] = {"client": Counter(), "lua": Counter()}
    with open(path, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            found = MONITOR_LINE.match(line)
            if found is None or found.group(1) != db:
                continue
            command = found.group(3).lower()
            if command not in HARNESS_COMMANDS:
                counts["lua" if found.group(2) == "lua" else "client"][command] += 1
    return {sender: {c: rounded(n / jobs, 2) for c, n in counter.most_common()}
            for sender, counter in counts.items()}


def server_counters(client: redis.Redis) -> tuple[float, int]:
    """Server CPU seconds (user + system) and commands run, since the server started."""
    cpu = client.info("cpu")
    stats = client.info("commandstats")
    calls = sum(int(v["calls"]) for name, v in stats.items()
                if name.removeprefix("cmdstat_").split("|")[0] not in HARNESS_COMMANDS)
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]), calls


def run(ctx: Context) -> dict[str, Any]:
    """Count commands under MONITOR, then time alternating drains."""
    jobs = ctx.size(3_000, 300)
    targets = {target.name: target for target in versus()}
    workers = {name: ctx.worker(target, "solo") for name, target in targets.items()}
    ctx.start_workers(list(workers.values()))
    out: dict[str, Any] = {"jobs": jobs, "rounds": ctx.rounds, "pool": "solo"}
    own: dict[str, float] = {}
    if shutil.which("redis-cli"):
        monitor_jobs = ctx.size(500, 100)
        for name, worker in workers.items():
            table = monitored(ctx, worker, monitor_jobs)
            out[name] = {"monitor_jobs": monitor_jobs, "commands_per_job": table}
            own[name] = sum(sum(t.values()) for t in table.values())
    shares: dict[str, list[float]] = {name: [] for name in targets}

    def sample(name: str, _round: int) -> float:
        cpu, calls = server_counters(ctx.client)
        drain(ctx, workers[name], jobs)
        cpu_after, calls_after = server_counters(ctx.client)
        if name in own:
            counted = (calls_after - calls) / jobs
            shares[name].append(max(0.0, 1 - own[name] / counted) if counted else 0.0)
        return (cpu_after - cpu) * 1e6 / jobs

    out["redis_cpu_us_per_job"] = compare(ctx.alternate(list(targets), sample), "µs",
                                          digits=1)
    for name, values in shares.items():
        if values:
            out["redis_cpu_us_per_job"][name]["foreign_share"] = [rounded(v, 2) for v in values]
            out[name]["foreign_share_median"] = rounded(statistics.median(values), 2)
    return out


SCENARIO = Scenario("redis_cost", "Redis commands (exact) and server CPU per job, solo worker",
                    run, order=60)
