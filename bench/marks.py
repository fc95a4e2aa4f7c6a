"""Timing a drain without results: marker jobs and the broker's own bookkeeping.

With results ignored (Celery as it ships) the harness cannot read when jobs
started from their results. Two things replace them, and neither adds work to
the jobs being measured:

- **Marker jobs.** The first and the last message of a drain are a marker job
  (``bench.plain.mark`` / ``bench.pipeline.mark``, a job of the same kind and,
  for the pipeline, with the same locks as the others) that writes
  ``time.time()`` into the hash :data:`MARKS_KEY` under its label. The other
  jobs are the usual trivial job, unchanged. Both apps' markers are the same
  function, so the two writes per drain cost both the same.
- **The broker's bookkeeping.** A message is in its queue's lists until a
  worker takes it, and in kombu's ``unacked`` hash until the worker
  acknowledges it (``task_acks_late``: after the job ran, or parked).
  :class:`Backlog` reads both; when both are empty every message was taken
  and acknowledged. The harness polls it only to check that a drain is over
  and to notice a stall, never to time the jobs (see :mod:`bench.drains`).
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

from bench.errors import BenchError
from bench.targets import Target

if TYPE_CHECKING:
    from bench.harness import Worker

#: The hash the marker jobs write into (``label -> time.time()`` as text).
MARKS_KEY = "bench:marks"
FIRST = "first"
LAST = "last"
WARM = "warm"
#: How often the harness reads the marks while it waits (one HGET).
MARK_POLL = 0.02
#: How often the backlog is read while waiting for a mark, to notice a stall.
STALL_CHECK = 2.0


class Backlog:
    """Messages of a target still in its queues, and taken but not yet acknowledged.

    Reads the lists of every priority step of the target's queues and the
    ``unacked`` hash of its app (under the app's ``global_keyprefix``), over
    one broker connection held while the object is open.
    """

    def __init__(self, target: Target) -> None:
        self.target = target
        self._stack = contextlib.ExitStack()
        self._channel: Any = None

    def __enter__(self) -> Backlog:
        connection = self._stack.enter_context(self.target.app.connection_for_read())
        self._channel = connection.default_channel
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def counts(self) -> tuple[int, int]:
        """(messages waiting in the queues, messages taken and not acknowledged)."""
        channel = self._channel
        # kombu's own count of a queue: the lists of all its priority steps.
        queued = sum(int(channel._size(queue)) for queue in self.target.queues)
        unacked = int(channel.client.hlen(channel.unacked_key))
        return queued, unacked


def read_marks(worker: Worker, *labels: str) -> list[float | None]:
    """The times written under *labels* (None where not written yet)."""
    raw: Any = worker.client.hmget(MARKS_KEY, list(labels))
    return [None if value is None else float(value) for value in raw]


def wait_for_mark(worker: Worker, label: str, *, stall: float = 60.0) -> float:
    """Wait until the marker job *label* has run; return the time it wrote.

    Raises:
        BenchError: the worker died, or no message was taken or acknowledged
            for *stall* seconds while the mark was still missing.
    """
    last_counts: tuple[int, int] | None = None
    last_progress = time.monotonic()
    next_check = last_progress + STALL_CHECK
    with Backlog(worker.target) as backlog:
        while True:
            (value,) = read_marks(worker, label)
            if value is not None:
                return value
            now = time.monotonic()
            if now >= next_check:
                worker.check_alive()
                counts = backlog.counts()
                if counts != last_counts:
                    last_counts, last_progress = counts, now
                elif now - last_progress > stall:
                    raise BenchError(f"{worker.nodename}: mark {label!r} not written and "
                                     f"the backlog stuck at {counts} (queued, unacked) for "
                                     f"{stall:.0f} s{worker.log_tail()}")
                next_check = now + STALL_CHECK
            time.sleep(MARK_POLL)


def wait_drained(worker: Worker, *, timeout: float = 60.0, poll: float = 0.05) -> None:
    """Wait until every message of the worker's queues was taken and acknowledged.

    Raises:
        BenchError: still some after *timeout* seconds, or the worker died.
    """
    deadline = time.monotonic() + timeout
    with Backlog(worker.target) as backlog:
        while (counts := backlog.counts()) != (0, 0):
            worker.check_alive()
            if time.monotonic() > deadline:
                raise BenchError(f"{worker.nodename}: {counts[0]} messages queued and "
                                 f"{counts[1]} unacknowledged after {timeout:.0f} s"
                                 f"{worker.log_tail()}")
            time.sleep(poll)
