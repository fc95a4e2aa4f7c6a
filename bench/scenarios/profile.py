"""Where a worker's time goes: py-spy on a solo worker during a four-lock drain.

Both apps as Celery ships (no task events, results ignored; the pipeline's store
off), the same trivial job, job i taking ``user:u<i>``, ``project:p<i>``,
``model:m<i>`` and a global slot (``locks_throughput``'s set-up). Each sample
fills the paused worker's queue, attaches ``py-spy record --nonblocking`` to the
worker, drains it (timed by marker jobs) and sorts the samples py-spy took while
the worker was busy (idle stacks are not sampled; the raw profiles stay in
``bench/results/profile-<side>-<round>.raw``, flame-graph input) into the phases of a
job (:data:`PHASES`): the lock call in ``before_start``, the release in ``after_return``,
the acknowledgement (kombu's QoS, or the pipeline's guarded one), the fetch (the BRPOP
reply, decoding, handing the message to the task), Celery's tracer and the body, the rest.

Figures are µs of busy time per job (samples / rate / jobs), per bucket and in
total, and the pipeline's extra µs per job. They are CPU-bound busy time of the
worker process, not Redis's (``locks_throughput`` reports Redis CPU per job).
Needs ``py-spy`` (``pip install py-spy``); without it the scenario says so and
measures nothing. It runs last in a full run and is not part of the ``speed`` group:
``python -m bench --scenario profile``.
"""

from __future__ import annotations

import collections
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import drains, lockbench
from bench.harness import REPO, Context, Worker
from bench.lockbench import PIPELINE_AS_SHIPS, PLAIN_AS_SHIPS
from bench.scenarios import Scenario
from bench.scenarios.locks_throughput import lock_targets
from bench.stats import summary

RATE = 400
#: The worker's pool: ``solo`` (everything in the one process py-spy watches) or, with
#: ``$BENCH_PROFILE_POOL=prefork``, prefork ``-c 2``, py-spy on its main process (the one
#: that fetches, hands jobs to the pool processes and acknowledges them).
POOL = os.environ.get("BENCH_PROFILE_POOL", "solo")
#: Where the raw profiles stay for a closer look (``bench/results/`` is ignored by git).
RAW_DIR = REPO / "bench" / "results"
#: (phase, the name of a frame on the stack that places a sample in it), first match wins.
#: py-spy names a frame ``function (path:line)``, the path relative to its package root.
PHASES: tuple[tuple[str, str], ...] = (
    ("lock call (before_start)", "before_start ("),
    ("release (after_return)", "after_return ("),
    ("acknowledgement (QoS)", "QoS.ack ("),
    ("acknowledgement (QoS)", "QoS.append ("),
    ("acknowledgement (QoS)", "QoS.pipe_or_acquire ("),
    ("fetch (BRPOP reply, decode, hand over)", "_brpop_read ("),
    ("fetch (BRPOP reply, decode, hand over)", "on_readable ("),
    ("fetch (BRPOP reply, decode, hand over)", "_brpop_start ("),
    ("job (Celery's tracer and the body)", "trace_task ("),
)
OTHER = "the rest (event loop, timers)"


def bucket_of(stack: str) -> str:
    """The phase of one sampled stack (py-spy's ``frame;frame;...`` text)."""
    for name, needle in PHASES:
        if needle in stack:
            return name
    return OTHER


def read_raw(path: Path) -> collections.Counter[str]:
    """Samples per bucket from a ``py-spy record --format raw`` file."""
    counts: collections.Counter[str] = collections.Counter()
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            counts[bucket_of(stack)] += int(count)
    return counts


def find_py_spy() -> str | None:
    """The ``py-spy`` beside this interpreter (a venv's), else on ``$PATH``."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.is_file() else shutil.which("py-spy")


def profiled_drain(worker: Worker, jobs: int, out: Path, spy_binary: str
                   ) -> tuple[float, dict[str, float]]:
    """One marked drain with py-spy attached: its rate, and µs per job per bucket."""
    pid = worker.process.pid if worker.process is not None else 0
    spy = subprocess.Popen(
        [spy_binary, "record", "--pid", str(pid), "--rate", str(RATE), "--nonblocking",
         "--format", "raw", "--output", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    try:
        drain = drains.marked_drain(worker, jobs)
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=60)
    counts = read_raw(out)
    per_job = {name: round(n / RATE / drain.jobs * 1e6, 1) for name, n in counts.items()}
    per_job["total"] = round(sum(counts.values()) / RATE / drain.jobs * 1e6, 1)
    return drain.rate, per_job


def run(ctx: Context) -> dict[str, Any]:
    """Alternate profiled drains of plain Celery and the pipeline, both as Celery ships."""
    spy_binary = find_py_spy()
    if spy_binary is None:
        return {"skipped": "py-spy is not installed (pip install py-spy)"}
    jobs = ctx.size(10_000, 1_500)
    RAW_DIR.mkdir(parents=True, exist_ok=True)
    both = lock_targets(None)
    sides = {name: both[name] for name in (PLAIN_AS_SHIPS, PIPELINE_AS_SHIPS)}
    profiles: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
    rates: dict[str, list[float]] = {name: [] for name in sides}

    def sample(name: str, round_no: int) -> float:
        raw = RAW_DIR / f"profile-{name}-{round_no}.raw"
        rate, per_job = profiled_drain(workers[name], jobs, raw, spy_binary)
        profiles[name].append(per_job)
        rates[name].append(rate)
        return rate

    with lockbench.store_off_workers(ctx, both, POOL) as workers:
        ctx.start_workers([workers[name] for name in sides])
        ctx.alternate(list(sides), sample)
    out: dict[str, Any] = {"jobs": jobs, "rounds": ctx.rounds, "pool": POOL, "rate_hz": RATE,
                           "unit": "us of busy worker time per job (median over rounds)"}
    for name, runs in profiles.items():
        keys = sorted({key for run_ in runs for key in run_})
        out[name] = {"rate": summary(rates[name], 1),
                     "per_job": {key: summary([r.get(key, 0.0) for r in runs], 1)["median"]
                                 for key in keys}}
    plain, ours = out[PLAIN_AS_SHIPS]["per_job"], out[PIPELINE_AS_SHIPS]["per_job"]
    out["extra_per_job"] = {key: round(ours.get(key, 0.0) - plain.get(key, 0.0), 1)
                            for key in sorted(set(plain) | set(ours))}
    return out


SCENARIO = Scenario("profile", "py-spy breakdown of a solo worker's time per job, both as "
                    "Celery ships (needs py-spy)", run, order=190)
