"""Parking behind one real holder, against the no-op drain of the same processes.

The pipeline as it ships (no task events, results ignored, store off), prefork
``-c 2``. A real job (``benchlocks.hold``) takes a model and holds it, so it keeps
one of the two pool processes; the other one is free. Two kinds of sample, both with
such a holder running, alternating round by round:

``park``
    N jobs (``benchlocks.timed``, zero-length) on the held model are published to
    the paused worker, which is resumed; the clock stops when the lock engine's
    parked count (``RedisLockEngine.parked_counts``, polled every 5 ms) reaches N.
    Then the parked jobs are cancelled and the holder told to end.
``run``
    the same N jobs, each on a model of its own (nothing waits): the clock stops
    when the queue is empty and only the holder's message is unacknowledged
    (polled every 5 ms). The same free process, the same job, one lock each.

Rate = N / (stop - resume). The ratio park / run is the goal's (>= 0.8).
"""

from __future__ import annotations

import itertools
import time
import uuid
from typing import Any

from bench import lockbench, marks
from bench.errors import BenchError
from bench.harness import Worker
from bench.targets import Target
from pipeline.priority import Priority
from pipeline.runtime.services import services_for

POLL = 0.005
HOLD_TIMEOUT_S = 900.0
_ROUNDS = itertools.count()


def _options(target: Target, model: str) -> dict[str, Any]:
    options: dict[str, Any] = {"models": [model]}
    if not target.results:
        options.update(queue=target.queues[0], ignore_result=True)
    return options


class Holder:
    """A real job holding *model* on the worker until :meth:`end`."""

    def __init__(self, worker: Worker, model: str) -> None:
        self.worker = worker
        self.model = model
        tag = uuid.uuid4().hex[:8]
        self.started_key = f"bench:hold:{tag}:started"
        self.release_key = f"bench:hold:{tag}:release"

    def begin(self, timeout: float = 30.0) -> None:
        """Publish the holder to the consuming worker and wait until it runs."""
        task = self.worker.target.app.tasks["benchlocks.hold"]
        task.apply_async((self.started_key, self.release_key, HOLD_TIMEOUT_S),
                         **_options(self.worker.target, self.model))
        if self.worker.client.blpop([self.started_key], timeout=timeout) is None:
            raise BenchError(f"{self.worker.nodename}: the holder of {self.model} did not "
                             f"start in {timeout:.0f} s{self.worker.log_tail()}")

    def end(self) -> None:
        """Let the holder finish (its release hands the model on)."""
        self.worker.client.rpush(self.release_key, "go")


def _publish(worker: Worker, jobs: int, models: list[str]) -> list[str]:
    task = worker.target.app.tasks["benchlocks.timed"]
    return [str(task.apply_async(**_options(worker.target, models[i % len(models)])).id)
            for i in range(jobs)]


def _wait(worker: Worker, done: Any, what: str, progress: Any, stall: float = 30.0) -> float:
    """Poll *done* every 5 ms; return when it held. Raise once *progress* (a count) has not
    moved for *stall* seconds."""
    last, moved = None, time.monotonic()
    checked = moved
    while not done():
        now = time.monotonic()
        if now - checked > 1.0:
            checked, seen = now, progress()
            if seen != last:
                last, moved = seen, now
            elif now - moved > stall:
                raise BenchError(f"{worker.nodename}: {what} not reached, stuck at {seen} for "
                                 f"{stall:.0f} s{worker.log_tail()}")
        time.sleep(POLL)
    return time.time()


def sample(worker: Worker, jobs: int, kind: str) -> float:
    """One ``park`` or ``run`` sample (see the module docstring); jobs per second."""
    n = next(_ROUNDS)
    held = f"costpark-held-{n}"
    holder = Holder(worker, held)
    engine = services_for(worker.target.app).engine
    holder.begin()

    def parked() -> int:
        return engine.parked_counts().get(int(Priority.NORMAL), 0)

    log_offset = worker.log_offset()
    try:
        worker.pause()
        worker.settle()
        models = [held] if kind == "park" else [f"costpark-{n}-{i}" for i in range(jobs)]
        ids = _publish(worker, jobs, models)
        with marks.Backlog(worker.target) as backlog:
            started = time.time()
            worker.resume()
            if kind == "park":
                ended = _wait(worker, lambda: parked() >= jobs, f"{jobs} parked", parked)
            else:
                ended = _wait(worker, lambda: backlog.counts() == (0, 1), "an empty queue",
                              backlog.counts)
            _wait(worker, lambda: backlog.counts() == (0, 1), "every message acknowledged",
                  backlog.counts)
        if kind == "park":
            count = parked()
            cancelled = sum(1 for job in ids if engine.cancel_parked(job, "benchmark"))
            if count != jobs or cancelled != jobs:
                raise BenchError(f"{worker.nodename}: {count} of {jobs} parked, "
                                 f"{cancelled} cancelled")
    finally:
        holder.end()
    marks.wait_drained(worker)
    errors = worker.errors_since(log_offset)
    if errors:
        raise BenchError(f"{worker.nodename} logged {len(errors)} errors, the first: {errors[0]}")
    return jobs / (ended - started)


def target() -> Target:
    """The pipeline as it ships, store off, with the lock benchmark jobs."""
    return lockbench.pipeline_target(lockbench.PIPELINE, as_ships=True)
