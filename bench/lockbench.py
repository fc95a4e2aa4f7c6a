"""Shared parts of the lock benchmarks (``bench/LOCKS.md``): targets, spans, figures.

The lock scenarios run pipeline jobs that declare resources, and plain Celery
jobs of their own (``bench/plainlocks.py``), so their workers load one more
task module: ``-I tasks.bench,tasks.benchlocks`` for the pipeline and
``-I bench.plainlocks`` for plain Celery. Jobs of these modules return
``[start, end]`` of their body; :func:`collect_spans` reads them back and,
unlike :func:`bench.harness.collect`, waits for ``SUCCESS``: a parked job has a
``BLOCKED`` result before it runs.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import redis

from bench import targets
from bench.errors import BenchError
from bench.harness import Context, JobTiming, Worker, collect
from bench.stats import percentile, rounded
from bench.targets import NO_RECORDER_THREAD, MarkSender, Sender, Target
from pipeline.priority import Priority

PLAIN = "plain"
PIPELINE = "pipeline"
PLAIN_AS_SHIPS = targets.PLAIN_AS_SHIPS
PIPELINE_AS_SHIPS = targets.PIPELINE_AS_SHIPS
#: One -I option: Celery keeps only the last of several.
PIPELINE_INCLUDES = ("tasks.bench,tasks.benchlocks",)
PLAIN_INCLUDES = ("bench.plainlocks",)
#: Worker and publisher settings of the locks-only figures.
STORE_OFF = {"PIPELINE_STORE_ENABLED": "false"}
_FAILED = ("FAILURE", "REVOKED")
STREAM = "{pipeline}:events"
_CHUNK = 1000


@dataclass(frozen=True)
class Span:
    """One job: when its body started and ended, when its result was stored, its retries."""

    started: float
    ended: float
    stored: float
    retries: int = 0
    #: Its stored result said BLOCKED after it had run: the span was read from its
    #: ``completed`` event (see :func:`collect_spans`).
    from_event: bool = False
    #: The pool process that ran it, for jobs that say (0 otherwise).
    pid: int = 0


def pipeline_target(name: str = PIPELINE, env: dict[str, str] | None = None,
                    send: Sender | None = None, *, as_ships: bool = False,
                    send_mark: MarkSender | None = None) -> Target:
    """The pipeline app with the lock benchmark jobs; store off unless *env* says otherwise.

    With *as_ships*, the pipeline configured as Celery ships (no task events,
    results ignored: ``bench.targets.pipeline_as_ships``); its *send* and
    *send_mark* must publish with ``ignore_result=True`` to its queue (see
    :func:`distinct_senders`).
    """
    base = targets.pipeline_as_ships() if as_ships else targets.pipeline()
    import tasks.benchlocks  # noqa: F401  (registers the jobs in this process)

    # No recorder beside the worker: the store-on scenarios run their own.
    return replace(base, name=name, includes=PIPELINE_INCLUDES,
                   env={**NO_RECORDER_THREAD, **(STORE_OFF if env is None else env)},
                   idle=None, send=send or base.send, companions=(),
                   send_mark=send_mark or base.send_mark)


def plain_target(name: str = PLAIN, *, as_ships: bool = False) -> Target:
    """Plain Celery with the lock benchmark jobs (configured as Celery ships with *as_ships*)."""
    base = targets.plain_as_ships() if as_ships else targets.plain()
    from bench import plainlocks

    plainlocks.register(base.app)
    return replace(base, name=name, includes=PLAIN_INCLUDES)


@contextlib.contextmanager
def store_off_workers(ctx: Context, sides: dict[str, Target], pool: str = "prefork"
                      ) -> Iterator[dict[str, Worker]]:
    """A worker per side (not started) on a flushed database, this process publishing with
    the store off (the ``PIPELINE`` side's app); every worker stopped and the store on again
    after."""
    app = sides[PIPELINE].app
    set_publisher_store(app, False)
    try:
        ctx.flush()
        yield {name: ctx.worker(target, pool) for name, target in sides.items()}
    finally:
        ctx.stop_workers()
        set_publisher_store(app, True)


def set_publisher_store(app: Any, enabled: bool) -> None:
    """Turn this process's ``queued`` events on or off (``pipeline_store_enabled``).

    The workers get the same setting from their environment; the publisher is
    this process, whose settings were read once, so they are replaced here.
    """
    from pipeline.runtime.services import services_for

    services = services_for(app)
    if services.settings.store_enabled and not enabled:
        services.emitter.flush()
    app.conf.pipeline_store_enabled = enabled
    services.settings = replace(services.settings, store_enabled=enabled)


#: Job numbers of :func:`distinct_senders`, shared by every sender of this process:
#: no two jobs of a run share a user, project or model.
_DISTINCT = itertools.count()


def distinct_senders(app: Any, target: Target | None = None) -> tuple[Sender, MarkSender]:
    """Publishers of the trivial job and of the marker job, each with its own user, project
    and model (job i: ``u<i>``, ``p<i>``, ``m<i>``; the global slot besides).

    With *target* the pipeline as it ships (``bench.targets.pipeline_as_ships``),
    they publish to its queue with ``ignore_result=True``.
    """
    noop = app.tasks["bench.pipeline.noop"]
    mark = app.tasks["bench.pipeline.mark"]
    extra: dict[str, Any] = {}
    if target is not None and not target.results:
        extra = {"queue": target.queues[0], "ignore_result": True}

    def options(level: Priority | None) -> dict[str, Any]:
        i = next(_DISTINCT)
        out: dict[str, Any] = {"user": f"u{i}", "project": f"p{i}", "models": [f"m{i}"], **extra}
        if level is not None:
            out["priority"] = level.label
        return out

    def send(level: Priority | None) -> str:
        return str(noop.apply_async(**options(level)).id)

    def send_mark(key: str, label: str) -> str:
        return str(mark.apply_async((key, label), **options(None)).id)

    return send, send_mark


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process *pid* (all its threads); 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of *pid* and its children (a worker and its pool processes)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as handle:
            children = [int(c) for c in handle.read().split()]
    except OSError:
        children = []
    return cpu_seconds(pid) + sum(cpu_seconds(c) for c in children)


def redis_cpu_seconds(client: redis.Redis) -> float:
    """The Redis server's CPU seconds (server-wide: every client of it counts)."""
    info: Any = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


@dataclass(frozen=True)
class Drained:
    """One drain: the jobs' timings and CPU seconds spent meanwhile."""

    timings: list[JobTiming]
    worker_cpu: float
    redis_cpu: float


def drain(worker: Worker, publisher: Callable[[], list[str]]) -> Drained:
    """Fill the paused worker's queue, let it drain (harness ``collect``), with CPU used."""
    worker.pause()
    worker.settle()
    ids = publisher()
    pid = worker.process.pid if worker.process is not None else 0
    cpu, server = tree_cpu_seconds(pid), redis_cpu_seconds(worker.client)
    worker.resume()
    timings = collect(worker.client, worker.target, ids, worker=worker)
    cpu, server = tree_cpu_seconds(pid) - cpu, redis_cpu_seconds(worker.client) - server
    worker.pause()
    return Drained(timings, cpu, server)


def _chunks(items: Sequence[int]) -> Iterator[Sequence[int]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start:start + _CHUNK]


def _span(meta: dict[str, Any], stored: float | None = None) -> Span:
    result = meta["result"]
    if stored is None:
        stored = datetime.fromisoformat(meta["date_done"]).timestamp()
    if isinstance(result, list):
        retries = int(result[2]) if len(result) > 2 else 0
        pid = int(result[3]) if len(result) > 3 else 0
        return Span(float(result[0]), float(result[1]), stored, retries, pid=pid)
    return Span(float(result), stored, stored)


def _completed_events(client: redis.Redis, ids: set[str]) -> dict[str, Span]:
    """Spans of the jobs of *ids* read from their ``completed`` events (newest first)."""
    found: dict[str, Span] = {}
    end = "+"
    while len(found) < len(ids):
        entries: Any = client.xrevrange(STREAM, max=end, min="-", count=10_000)
        if not entries:
            break
        for _entry, fields in entries:
            job = fields[b"j"].decode()
            if job in ids and job not in found and fields[b"e"] == b"completed":
                result = json.loads(json.loads(fields[b"d"])["result"])
                stored = int(fields[b"t"]) / 1000.0
                span = _span({"result": result, "date_done": ""}, stored)
                found[job] = replace(span, from_event=True)
        end = "(" + entries[-1][0].decode()
    return found


def collect_spans(client: redis.Redis, target: Target, ids: Sequence[str], *,
                  worker: Worker | None = None, stall: float = 60.0,
                  poll: float = 0.25, recheck: float = 3.0) -> list[Span]:
    """Wait until every job of *ids* succeeded; return their spans (in *ids* order).

    Results are read and deleted. Only the jobs not yet done are read again.
    A job can run before the process that parked it has stored its BLOCKED
    state, which then overwrites SUCCESS for good: when every job still
    waiting has been BLOCKED for *recheck* s without progress, their spans are
    read from their ``completed`` events instead (``Span.from_event``).

    Raises:
        BenchError: a job failed, the worker died, or none finished for *stall* s.
    """
    keys = [target.result_key(i) for i in ids]
    found: dict[int, Span] = {}
    waiting = list(range(len(keys)))
    last_progress = time.monotonic()
    next_recheck = 0.0
    while waiting:
        still: list[int] = []
        blocked = 0
        for chunk in _chunks(waiting):
            for index, raw in zip(chunk, client.mget([keys[i] for i in chunk]), strict=True):
                meta = json.loads(raw) if raw else {}
                status = meta.get("status")
                if status == "SUCCESS":
                    found[index] = _span(meta)
                elif status in _FAILED:
                    raise BenchError(f"{target.name}: job {ids[index]} ended {status}: "
                                     f"{meta.get('traceback') or meta}")
                else:
                    blocked += status == "BLOCKED"
                    still.append(index)
        if len(still) < len(waiting):
            last_progress = time.monotonic()
        waiting = still
        if not waiting:
            break
        now = time.monotonic()
        if blocked == len(waiting) and now - last_progress > recheck and now > next_recheck:
            next_recheck = now + recheck
            events = _completed_events(client, {ids[i] for i in waiting})
            for index in waiting:
                if ids[index] in events:
                    found[index] = events[ids[index]]
            waiting = [i for i in waiting if i not in found]
            if not waiting:
                break
        if worker is not None:
            worker.check_alive()
        if time.monotonic() - last_progress > stall:
            tail = worker.log_tail() if worker is not None else ""
            raise BenchError(f"{target.name}: {len(ids) - len(waiting)} of {len(ids)} jobs "
                             f"succeeded, none in the last {stall:.0f} s{tail}")
        time.sleep(poll)
    for start in range(0, len(keys), _CHUNK):
        client.delete(*keys[start:start + _CHUNK])
    return [found[i] for i in range(len(keys))]


def left_blocked(spans: Sequence[Span]) -> int:
    """Jobs that ran but whose stored result still said BLOCKED (read from their events)."""
    return sum(1 for s in spans if s.from_event)


def handoff_gaps(spans: Sequence[Span]) -> list[float]:
    """Milliseconds from each job's end to the next job's start, in start order."""
    ordered = sorted(spans, key=lambda s: s.started)
    return [(b.started - a.ended) * 1000.0 for a, b in itertools.pairwise(ordered)]


def waiting_gaps(jobs: list[tuple[Span, float]], *, per_process: bool,
                 until: float | None = None) -> list[float]:
    """Milliseconds from each job's end to the next job's start, where the next job was
    already published when the previous one ended (it was waiting: a hand-off, or a busy
    worker's step) and, with *until*, started by then.

    *jobs* are (span, publish time). In start order over all jobs (the model's
    sequence), or per pool process with *per_process*. A job that arrives at an
    idle model or worker starts after a wait that is no hand-off: not counted.
    """
    groups: dict[int, list[tuple[Span, float]]] = {}
    for span, published in jobs:
        groups.setdefault(span.pid if per_process else 0, []).append((span, published))
    gaps: list[float] = []
    for group in groups.values():
        group.sort(key=lambda job: job[0].started)
        for (previous, _), (after, published) in itertools.pairwise(group):
            if published < previous.ended and (until is None or after.started <= until):
                gaps.append((after.started - previous.ended) * 1000.0)
    return gaps


def started_before_earlier(spans: Sequence[Span]) -> int:
    """Jobs that started before a job submitted earlier (*spans* in submission order).

    0 means the jobs started in the order they were submitted (FIFO).
    """
    overtook, latest = 0, float("-inf")
    for span in spans:
        if span.started < latest:
            overtook += 1
        latest = max(latest, span.started)
    return overtook


def overlaps(spans: Sequence[Span]) -> int:
    """Jobs that started before the previous one (in start order) ended: 0 under a lock."""
    ordered = sorted(spans, key=lambda s: s.started)
    return sum(1 for a, b in itertools.pairwise(ordered) if b.started < a.ended)


def distribution(values: Sequence[float], digits: int = 3) -> dict[str, Any]:
    """p50, p99, mean, min, max and count of *values*."""
    if not values:
        return {"n": 0}
    return {"n": len(values), "p50": rounded(percentile(values, 50), digits),
            "p99": rounded(percentile(values, 99), digits),
            "mean": rounded(statistics.fmean(values), digits),
            "min": rounded(min(values), digits), "max": rounded(max(values), digits)}


def median_of(values: Sequence[float], digits: int = 3) -> float:
    """The median, rounded for the report."""
    return rounded(statistics.median(values), digits)


def goal(value: float | None, limit: float, *, at_least: bool) -> dict[str, Any]:
    """Whether *value* meets the goal (``>= limit`` or ``<= limit``) and by how much it misses."""
    if value is None:
        return {"goal": limit, "met": False}
    met = value >= limit if at_least else value <= limit
    out: dict[str, Any] = {"goal": f"{'>=' if at_least else '<='} {limit}", "met": met}
    if not met:
        out["missed_by"] = rounded(abs(value - limit))
    return out
