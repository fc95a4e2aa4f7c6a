"""Worker processes, publishing and timing shared by every scenario.

A :class:`Worker` is a real ``celery worker`` subprocess in its own process
group. It is started once per scenario, warmed up, and then paused and resumed
with Celery's remote control (``cancel_consumer`` / ``add_consumer``) so a
scenario can fill its queue first and then let it drain. Jobs report their own
start time as their result; :func:`collect` reads those results back.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import redis

from bench import marks, targets
from bench.errors import BenchError
from bench.targets import Target
from pipeline.priority import Priority

REPO = Path(__file__).resolve().parent.parent
POOLS = ("prefork", "solo")
CONCURRENCY = 2
#: kombu's Redis transport waits at most this long in one BRPOP (``brpop_timeout``);
#: a BRPOP sent before a pause can still take a message until it returns.
PAUSE_SETTLE = 1.5
CHUNK = 1000
T = TypeVar("T")
_NODE_NUMBERS = itertools.count(1)
#: Celery's log format: ``[time: LEVEL/process] message``.
_LOGGED_ERROR = re.compile(r": (ERROR|CRITICAL)/")


@dataclass(frozen=True)
class JobTiming:
    """When one job started (its own clock) and when its result was stored."""

    started: float
    finished: float


class Worker:
    """A ``celery worker`` subprocess for one target, killed by process group.

    Args:
        target: the app under test.
        pool: ``prefork`` (``-c 2``) or ``solo``.
        workdir: where the worker runs and writes its log.
        client: Redis client on the benchmark database (results).
        queues: ``-Q`` in order; default the target's.
    """

    def __init__(self, target: Target, pool: str, workdir: Path, client: redis.Redis,
                 queues: Sequence[str] | None = None) -> None:
        self.target = target
        self.pool = pool
        self.queues = tuple(queues or target.queues)
        self.client = client
        self.nodename = f"bench-{target.name}-{pool}-{next(_NODE_NUMBERS)}@bench"
        self.log_path = workdir / f"{self.nodename.split('@')[0]}.log"
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None
        self.companions: list[subprocess.Popen[bytes]] = []
        self.consuming = False
        self._settled_at = 0.0
        self._terminated = False

    def command(self) -> list[str]:
        """The worker's command line."""
        cmd = [sys.executable, "-m", "celery", "-A", self.target.module, "worker",
               "-P", self.pool, "-Q", ",".join(self.queues), "-n", self.nodename,
               "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "WARNING"]
        if self.pool == "prefork":
            cmd[cmd.index("-Q"):cmd.index("-Q")] = ["-c", str(CONCURRENCY)]
        for module in self.target.includes:
            cmd += ["-I", module]
        return cmd

    def spawn(self) -> Worker:
        """Start the process (see :meth:`ready`)."""
        self._terminated = False
        env = {**os.environ, **self.target.env, "PYTHONPATH": str(REPO)}
        commands = [[sys.executable, *argv] for argv in self.target.companions]
        for number, command in enumerate([*commands, self.command()]):
            log_path = self.log_path.with_suffix(f".{number}.log") if number < len(commands) \
                else self.log_path
            with open(log_path, "wb") as log:
                process = subprocess.Popen(
                    command, cwd=self.workdir, env=env, stdin=subprocess.DEVNULL,
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            if number < len(commands):
                self.companions.append(process)
            else:
                self.process = process
        return self

    def ready(self, timeout: float = 90.0, warm_jobs: int = 50) -> Worker:
        """Wait until the spawned process answers a ping, then run *warm_jobs* jobs."""
        deadline = time.monotonic() + timeout
        while not self._ping():
            self.check_alive()
            if time.monotonic() > deadline:
                raise BenchError(f"{self.nodename} did not answer within {timeout:.0f} s"
                                 f"{self.log_tail()}")
        self.consuming = True
        if warm_jobs:
            self.warm_up(warm_jobs)
        return self

    def warm_up(self, jobs: int) -> None:
        """Run *jobs* trivial jobs and wait for them (by their results, else a marker job)."""
        if self.target.results or self.target.send_mark is None:
            ids = [self.target.send(None) for _ in range(jobs)]
            collect(self.client, self.target, ids, worker=self)
            return
        self.client.hdel(marks.MARKS_KEY, marks.WARM)
        for _ in range(jobs - 1):
            self.target.send(None)
        self.target.send_mark(marks.MARKS_KEY, marks.WARM)
        marks.wait_for_mark(self, marks.WARM)
        marks.wait_drained(self)

    def start(self, timeout: float = 90.0, warm_jobs: int = 50) -> Worker:
        """Spawn the process and wait until it is :meth:`ready`."""
        return self.spawn().ready(timeout, warm_jobs)

    def _ping(self) -> bool:
        replies = self.target.app.control.ping(destination=[self.nodename], timeout=0.5)
        return bool(replies)

    def _control(self, command: str, queue: str) -> None:
        method = getattr(self.target.app.control, command)
        replies = method(queue, destination=[self.nodename], reply=True, timeout=10.0)
        if not replies:
            self.check_alive()
            raise BenchError(f"{self.nodename} did not answer {command}({queue}){self.log_tail()}")

    def pause(self) -> None:
        """Stop consuming every queue.

        A BRPOP sent before the pause may still take a message for up to
        :data:`PAUSE_SETTLE` seconds: call :meth:`settle` before publishing.
        """
        if not self.consuming:
            return
        for queue in self.queues:
            self._control("cancel_consumer", queue)
        self.consuming = False
        self._settled_at = time.monotonic() + PAUSE_SETTLE

    def settle(self) -> None:
        """Wait until no BRPOP sent before the last pause can take a message."""
        time.sleep(max(0.0, self._settled_at - time.monotonic()))

    def resume(self) -> None:
        """Consume the queues again, in the ``-Q`` order."""
        if self.consuming:
            return
        for queue in self.queues:
            self._control("add_consumer", queue)
        self.consuming = True

    def check_alive(self) -> None:
        """Raise ``BenchError`` if the worker or one of its companions has exited."""
        if self.process is None or self.process.poll() is not None:
            code = None if self.process is None else self.process.returncode
            raise BenchError(f"{self.nodename} exited with {code}{self.log_tail()}")
        for number, companion in enumerate(self.companions):
            if companion.poll() is not None:
                command = " ".join(self.target.companions[number])
                log = self.log_path.with_suffix(f".{number}.log")
                raise BenchError(f"{self.nodename}: {command} exited with "
                                 f"{companion.returncode}{self.log_tail(path=log)}")

    def log_offset(self) -> int:
        """The size of the worker's log now (see :meth:`errors_since`)."""
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def errors_since(self, offset: int) -> list[str]:
        """The ERROR and CRITICAL lines the worker logged after *offset* (a job failed)."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(offset)
                text = log.read().decode(errors="replace")
        except OSError:
            return []
        return [line for line in text.splitlines() if _LOGGED_ERROR.search(line)]

    def log_tail(self, lines: int = 25, path: Path | None = None) -> str:
        """The end of the worker's log (or another log of it), to explain a failure."""
        try:
            text = (path or self.log_path).read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return "\n--- worker log ---\n" + "\n".join(text) if text else ""

    def terminate(self) -> None:
        """Send SIGTERM to the process groups (see :meth:`stop`)."""
        if self.process is not None and self.process.poll() is None and not self._terminated:
            _signal_group(self.process.pid, signal.SIGTERM)
            self._terminated = True
        for companion in self.companions:
            if companion.poll() is None:
                _signal_group(companion.pid, signal.SIGTERM)

    def stop(self) -> None:
        """SIGTERM the process groups, SIGKILL them if still there after 10 s."""
        for companion in self.companions:
            _stop_group(companion, terminated=False)
        self.companions.clear()
        process, self.process = self.process, None
        if process is not None:
            _stop_group(process, terminated=self._terminated)


def _stop_group(process: subprocess.Popen[bytes], *, terminated: bool) -> None:
    """SIGTERM (unless sent already), wait 10 s, SIGKILL; then SIGKILL what is left."""
    if process.poll() is None:
        if not terminated:
            _signal_group(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            _signal_group(process.pid, signal.SIGKILL)
            process.wait(10)
    # A warm shutdown may leave pool children behind for a moment.
    _signal_group(process.pid, signal.SIGKILL)


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def _timestamp(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def collect(client: redis.Redis, target: Target, task_ids: Sequence[str], *,
            worker: Worker | None = None, stall: float = 60.0) -> list[JobTiming]:
    """Wait until every job of *task_ids* stored its result, read and delete them.

    Polls the last published keys every quarter second and counts all of them
    every two seconds (to notice a stall), so waiting costs Redis little.

    Raises:
        BenchError: a job failed, the worker died, or nothing finished for *stall* s.
    """
    keys = [target.result_key(task_id) for task_id in task_ids]
    tail = keys[-64:]
    done, last_progress, next_count = -1, time.monotonic(), 0.0
    while True:
        now = time.monotonic()
        tail_done = int(client.exists(*tail)) == len(tail)
        if tail_done or now >= next_count:
            # Counting every key costs Redis more: only every few seconds, or at the end.
            count = sum(int(client.exists(*chunk)) for chunk in _chunks(keys))
            if count == len(keys):
                break
            if count != done:
                done, last_progress = count, now
            next_count = now + 2.0
        if worker is not None:
            worker.check_alive()
        if now - last_progress > stall:
            tail_text = worker.log_tail() if worker is not None else ""
            raise BenchError(f"{target.name}: {done} of {len(keys)} jobs finished, none in the "
                             f"last {stall:.0f} s{tail_text}")
        time.sleep(0.25)
    return [t for t in read_results(client, target, keys) if t is not None]


def wait_until_stored(client: redis.Redis, key: str, worker: Worker, timeout: float = 30.0
                      ) -> None:
    """Wait until a result exists under *key*, without reading it."""
    deadline = time.monotonic() + timeout
    while not client.exists(key):
        worker.check_alive()
        if time.monotonic() > deadline:
            raise BenchError(f"{worker.nodename}: no result within {timeout:.0f} s"
                             f"{worker.log_tail()}")
        time.sleep(0.01)


def read_results(client: redis.Redis, target: Target, keys: Sequence[str]
                 ) -> list[JobTiming | None]:
    """The timings stored under *keys* (None where there is no result yet), then delete them.

    Raises:
        BenchError: a job ended in another state than SUCCESS.
    """
    timings: list[JobTiming | None] = []
    for chunk in _chunks(keys):
        for raw in client.mget(chunk):
            if raw is None:
                timings.append(None)
                continue
            meta = json.loads(raw)
            if meta.get("status") != "SUCCESS":
                raise BenchError(f"{target.name}: job {meta.get('task_id')} ended "
                                 f"{meta.get('status')}: {meta.get('traceback') or meta}")
            timings.append(JobTiming(float(meta["result"]), _timestamp(meta["date_done"])))
        client.delete(*chunk)
    return timings


def purge(target: Target, queues: Sequence[str]) -> int:
    """Delete every message waiting in *queues* (all priority lists); return how many."""
    with target.app.connection_for_write() as connection:
        channel = connection.default_channel
        return sum(int(channel.queue_purge(queue) or 0) for queue in queues)


def _chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def publish(target: Target, count: int, level: Priority | None = None) -> list[str]:
    """Publish *count* trivial jobs at *level* and return their ids."""
    return [target.send(level) for _ in range(count)]


def publish_mixed(target: Target, count: int) -> list[str]:
    """Publish *count* jobs cycling through the four levels."""
    levels = list(Priority)
    return [target.send(levels[i % len(levels)]) for i in range(count)]


#: Mean gap between jobs sent one at a time to an idle worker (randomised ±50 %).
IDLE_GAP = 0.020


def publish_to_start(client: redis.Redis, target: Target, worker: Worker, jobs: int,
                     jitter: random.Random) -> list[float]:
    """Publish-to-start (ms) of *jobs* trivial jobs sent one at a time to an idle worker.

    The clock starts just before each publish, so publishing work counts.
    """
    published: list[float] = []
    ids: list[str] = []
    for _ in range(jobs):
        published.append(time.time())
        ids.append(target.send(None))
        time.sleep(IDLE_GAP * jitter.uniform(0.5, 1.5))
    timings = collect(client, target, ids, worker=worker)
    return [(t.started - p) * 1000.0 for t, p in zip(timings, published, strict=True)]


def wait_idle(worker: Worker, timeout: float = 600.0) -> float:
    """Wait until the worker's background work is done (see ``Target.idle``); seconds waited."""
    idle = worker.target.idle
    started = time.monotonic()
    if idle is None:
        return 0.0
    while not idle(worker.client):
        worker.check_alive()
        if time.monotonic() - started > timeout:
            raise BenchError(f"{worker.nodename}: background work not done after "
                             f"{timeout:.0f} s{worker.log_tail()}")
        time.sleep(0.1)
    return time.monotonic() - started


def drain_rate(timings: Sequence[JobTiming]) -> float:
    """Jobs per second from the first job's start to the last job's result."""
    first = min(t.started for t in timings)
    last = max(t.finished for t in timings)
    return len(timings) / (last - first)


@dataclass(frozen=True)
class DrainSample:
    """One drain: jobs/s to the last result, and the background work left after it."""

    rate: float
    idle_after: float


def measure_drain(worker: Worker, publisher: Callable[[], list[str]]) -> DrainSample:
    """Fill the paused worker's queue, let it drain, measure (see :func:`drain_rate`)."""
    worker.pause()
    worker.settle()
    ids = publisher()
    worker.resume()
    rate = drain_rate(collect(worker.client, worker.target, ids, worker=worker))
    worker.pause()
    return DrainSample(rate, wait_idle(worker))


@dataclass
class Context:
    """What a scenario gets: the Redis under test, sizes, and worker bookkeeping.

    Attributes:
        redis_url: the benchmark database (flushed before each scenario).
        quick: run the small sizes (whole run under two minutes).
        rounds: alternating rounds per comparison.
        postgres: run the variants on a PostgreSQL job store too (full runs).
    """

    redis_url: str
    quick: bool
    rounds: int
    postgres: bool = True
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="bench-")))
    workers: list[Worker] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.client = redis.Redis.from_url(self.redis_url)

    def size(self, full: int, quick: int) -> int:
        """*full* normally, *quick* with ``--quick``."""
        return quick if self.quick else full

    def flush(self) -> None:
        """Empty the benchmark database; only while none of our workers runs.

        The queues of every app built so far are declared again, so their
        messages are routed (see :func:`bench.targets.declare`).
        """
        if any(w.process is not None for w in self.workers):
            raise BenchError("refusing to flush the database while a worker is connected")
        self.client.flushdb()
        for target in targets.built():
            targets.declare(target)

    def worker(self, target: Target, pool: str = "prefork",
               queues: Sequence[str] | None = None) -> Worker:
        """A new (not yet started) worker that :meth:`stop_workers` will kill."""
        worker = Worker(target, pool, self.workdir, self.client, queues)
        self.workers.append(worker)
        return worker

    def start_workers(self, workers: Sequence[Worker], warm_jobs: int = 50) -> None:
        """Start *workers* side by side, then wait for each, warm it up and pause it."""
        for worker in workers:
            worker.spawn()
        for worker in workers:
            worker.ready(warm_jobs=warm_jobs)
            worker.pause()

    def stop_workers(self) -> None:
        """Kill every worker this context started (all at once, then wait for each)."""
        for worker in self.workers:
            worker.terminate()
        for worker in self.workers:
            worker.stop()
        self.workers.clear()

    def alternate(self, names: Sequence[str], sample: Callable[[str, int], T]
                  ) -> dict[str, list[T]]:
        """Run ``sample(name, round)`` for each name, in an order that flips every round.

        Round 0 runs A then B, round 1 B then A, and so on, so a machine that
        slowly speeds up or slows down favours neither side.
        """
        samples: dict[str, list[T]] = {name: [] for name in names}
        for round_no in range(self.rounds):
            order = names if round_no % 2 == 0 else list(reversed(names))
            for name in order:
                samples[name].append(sample(name, round_no))
        return samples
