"""Checks that each arm of the ``cost`` scenario is what it claims to be.

- :class:`EventWatch`: Celery task events published while it is open (kombu's
  Redis transport publishes them with ``PUBLISH`` on a ``celeryev`` channel); an
  arm that claims task events off must publish none during a drain.
- :func:`worker_settings`: the settings a running worker really has, asked over
  Celery's remote control (``inspect conf`` and ``inspect stats``: its prefetch
  count), compared with what the arm claims by :func:`mismatches`.
- :func:`peer_contention`: jobs of the hand-written lock peer that share their
  three locks, each holding them a while: no two may overlap, or the peer does not
  really lock.

That no job of a results-ignored arm stored a result is checked by every marked
drain (``bench.drains.marked_drain``).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Mapping
from typing import Any

import redis

from bench import lockpeer
from bench.errors import BenchError
from bench.harness import Worker
from bench.lockbench import Span, overlaps

#: The pattern of Celery's event channels on kombu's Redis transport.
EVENT_CHANNELS = "*celeryev*"


class EventWatch:
    """Counts Celery task events (``task-*``) published while open, from a listening thread."""

    def __init__(self, redis_url: str) -> None:
        self._pubsub = redis.Redis.from_url(redis_url).pubsub(ignore_subscribe_messages=True)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="event-watch", daemon=True)
        self.task_events = 0
        self.other_events = 0

    def __enter__(self) -> EventWatch:
        self._pubsub.psubscribe(EVENT_CHANNELS)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.2)  # events of the last jobs still on their way
        self._stopping.set()
        self._thread.join(5)
        self._pubsub.close()

    def _listen(self) -> None:
        while not self._stopping.is_set():
            message = self._pubsub.get_message(timeout=0.1)
            if message is None:
                continue
            if is_task_event(message.get("channel"), message.get("data")):
                self.task_events += 1
            else:
                self.other_events += 1


def probe(app: Any) -> None:
    """Publish one synthetic ``task-succeeded`` event through *app*'s broker connection.

    An open :class:`EventWatch` must count it: the proof that it would see the
    arm's task events, had its worker sent any.
    """
    with app.connection_for_write() as connection, \
            app.events.Dispatcher(connection, enabled=True) as dispatcher:
        dispatcher.send("task-succeeded", uuid="bench-event-probe", runtime=0.0)


def is_task_event(channel: Any, data: Any) -> bool:
    """Whether a ``celeryev`` pub/sub message is a task event (routing key ``task.*``)."""
    text = channel.decode(errors="replace") if isinstance(channel, bytes) else str(channel)
    if "/task." in text or text.endswith(".task"):
        return True
    try:
        body = json.loads(data)
        return str(body.get("properties", {}).get("delivery_info", {})
                   .get("routing_key", "")).startswith("task.")
    except (TypeError, ValueError, AttributeError):
        return False


def worker_settings(worker: Worker, names: tuple[str, ...]) -> dict[str, Any]:
    """The worker's values of the settings *names*, and its ``prefetch_count``.

    Raises:
        BenchError: the worker did not answer.
    """
    inspect = worker.target.app.control.inspect(destination=[worker.nodename], timeout=5.0)
    conf = (inspect.conf(with_defaults=True) or {}).get(worker.nodename)
    stats = (inspect.stats() or {}).get(worker.nodename)
    if conf is None or stats is None:
        raise BenchError(f"{worker.nodename} did not answer inspect conf/stats"
                         f"{worker.log_tail()}")
    out = {name: conf.get(name) for name in names}
    out["prefetch_count"] = stats.get("prefetch_count")
    out["transport"] = stats.get("broker", {}).get("transport")
    return out


def mismatches(observed: Mapping[str, Any], expected: Mapping[str, Any]) -> list[str]:
    """``name: observed != expected`` for each expected setting the worker does not have."""
    return [f"{name}: {observed.get(name)!r} != {value!r}" for name, value in expected.items()
            if observed.get(name) != value]


_CONTENTION = itertools.count()


def peer_contention(worker: Worker, jobs: int = 12, seconds: float = 0.02,
                    timeout: float = 60.0) -> dict[str, Any]:
    """Run *jobs* peer jobs that all take the same three locks; none may overlap.

    The worker (prefork ``-c 2``) must be consuming. Returns the spans' overlaps
    (must be 0), the wall time against the serial time, and raises if they overlapped.

    Raises:
        BenchError: two jobs overlapped, or they did not all run in *timeout* s.
    """
    task = worker.target.app.tasks[lockpeer.TIMED]
    n = next(_CONTENTION)
    key = f"bench:lockpeer:spans:{n}"
    names = (f"cu{n}", f"cm{n}", f"cp{n}")
    worker.client.delete(key)
    for _ in range(jobs):
        task.apply_async((seconds, *names, key))
    spans = peer_spans(worker, key, jobs, timeout, "contending jobs")
    overlapped = overlaps(spans)
    wall = max(s.ended for s in spans) - min(s.started for s in spans)
    result = {"jobs": jobs, "hold_s": seconds, "overlapping_jobs": overlapped,
              "wall_over_serial": round(wall / (jobs * seconds), 3)}
    if overlapped:
        raise BenchError(f"lock peer: {overlapped} of {jobs} jobs sharing their locks "
                         "overlapped: the peer does not really lock")
    return result


def peer_spans(worker: Worker, key: str, jobs: int, timeout: float, what: str) -> list[Span]:
    """The spans the peer's *jobs* push to list *key* (``lockpeer.TIMED``), once all ran.

    Raises:
        BenchError: fewer ran within *timeout* seconds, or the worker died.
    """
    deadline = time.monotonic() + timeout
    while int(worker.client.llen(key)) < jobs:
        worker.check_alive()
        if time.monotonic() > deadline:
            raise BenchError(f"lock peer: {worker.client.llen(key)} of {jobs} {what} ran in "
                             f"{timeout:.0f} s{worker.log_tail()}")
        time.sleep(0.05)
    raw: Any = worker.client.lrange(key, 0, -1)
    return [Span(s, e, e) for s, e in (json.loads(item) for item in raw)]
