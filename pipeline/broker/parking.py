"""Parking in the fetch: a job whose resources are visibly held never reaches a pool process.

Without it, a job that cannot run is taken off its queue, handed to a pool
process, runs ``before_start``, finds its resources taken, parks (acquire.lua)
and is acknowledged: a pool process spends a whole delivery on a job that does
nothing. With ``pipeline_park_in_fetch`` (on by default) the worker's fetch
(``fetch.lua``, :mod:`pipeline.broker.fetch`) looks at each message it takes:
a pipeline job whose claims are visibly held, or that would queue behind jobs
already parked on them, is parked by that same Lua call (``park.lua``, with
``blocking()`` and ``park()`` of the lock scripts' ``lib.lua``): the same park
record, lines, counters, fair-share rank and ``blocked`` event as a job parked
by ``before_start``, and it wakes the same way, by the release that hands it
its locks. Nothing is taken in the fetch; locks are taken only when a job
starts (``before_start``). A job the fetch cannot judge exactly as its start
would (a plain Celery task, a workflow's step, a guest, an agent pool's job,
an ETA, a redelivered copy, an unreadable header) is delivered as before.

The claims are computed in Lua from the job header's demand with this
worker's capacities (:func:`transport_options`, set by
:func:`pipeline.app.install.use_guarded_broker`), as
:func:`pipeline.locks.resources.claims` computes them in Python.

The worker reports each job parked here (:func:`report`): an INFO log line,
and, through the reporter its consumer registers
(:mod:`pipeline.job.fetch_parked`), Flower's ``task-blocked`` event and the
BLOCKED state in the result backend.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.conf import Settings
from pipeline.keys import Keys
from pipeline.locks.ticket import blocked_reason
from pipeline.messages.header import NAME, RECHECK, VERSION
from pipeline.runtime.net import HOST

logger = logging.getLogger(__name__)

#: Jobs parked by one fetch call at most (the worker calls again at once when more wait).
LIMIT = 64
#: The transport option carrying the parking settings (absent or empty: parking off).
OPTION = "park_in_fetch"


@dataclass(frozen=True)
class FetchParking:
    """What the fetch needs to park jobs: where the locks are and this worker's capacities.

    Attributes:
        base: the lock keys' base (``{tag}:``).
        capacities: user, project, model and global capacity (0 = not locked).
        grant_ms: how long a hand-off's grant waits for its job to start.
        wait_ms: how long a job may stay parked.
        maxlen: the event stream's cap.
        limit: jobs parked per fetch call at most.
    """

    base: str
    capacities: tuple[int, int, int, int]
    grant_ms: int
    wait_ms: int
    maxlen: int
    limit: int = LIMIT

    def args(self) -> tuple[str | int, ...]:
        """The parking part of ``fetch.lua``'s ARGV."""
        return (self.base, HOST, self.limit, *self.capacities, self.grant_ms, self.wait_ms,
                self.maxlen, NAME, VERSION, RECHECK)

    @classmethod
    def of(cls, options: Mapping[str, Any] | None) -> FetchParking | None:
        """The parking of the transport option written by :func:`transport_options`;
        None when it is off."""
        if not options:
            return None
        user, project, model, global_ = (int(c) for c in options["capacities"])
        return cls(str(options["base"]), (user, project, model, global_),
                   int(options["grant_ms"]), int(options["wait_ms"]), int(options["maxlen"]),
                   int(options.get("limit", LIMIT)))


#: The parking part of ``fetch.lua``'s ARGV when parking is off.
OFF_ARGS: tuple[str, ...] = ("",)


def transport_options(settings: Settings) -> dict[str, Any]:
    """The transport option of a worker with *settings* (empty when parking is off).

    Off with ``pipeline_park_in_fetch = False``, and while
    ``pipeline_redis_wait_replicas`` asks for replicas: a park in the fetch
    acknowledges nothing a worker could wait on, so a failover could lose it.
    """
    if not settings.park_in_fetch or settings.replicas_to_wait:
        return {}
    return {"base": Keys(settings.redis_prefix).base,
            "capacities": [settings.capacity_user, settings.capacity_project,
                           settings.capacity_model, settings.capacity_global],
            "grant_ms": int(settings.grant_ttl * 1000),
            "wait_ms": int(settings.wait_timeout * 1000),
            "maxlen": settings.events_maxlen, "limit": LIMIT}


@dataclass(frozen=True)
class FetchParked:
    """A job the fetch parked.

    Attributes:
        job_id: its id.
        task: its task's name.
        resource: the first resource it waits for.
        blocked_by: the holder of that resource, or the job ahead of it in line.
        position: its place in that resource's line (1 = next).
        ignore_result: the message's ``ignore_result`` (None: the task's own).
    """

    job_id: str
    task: str
    resource: str
    blocked_by: str
    position: int
    ignore_result: bool | None = None

    @property
    def reason(self) -> str:
        """Why it waits, in words (as a job parked by ``before_start`` says it)."""
        return blocked_reason(self.resource, self.blocked_by, self.position)


#: Fields per parked job in ``fetch.lua``'s reply.
FIELDS = 6


def parse(flat: Sequence[Any]) -> list[FetchParked]:
    """The parked jobs of ``fetch.lua``'s reply (:data:`FIELDS` values each)."""
    out = []
    for at in range(0, len(flat) - FIELDS + 1, FIELDS):
        job, task, resource, by, position, ignore = (
            v.decode() if isinstance(v, bytes) else v for v in flat[at:at + FIELDS])
        out.append(FetchParked(str(job), str(task), str(resource), str(by), int(position),
                               None if ignore == "" else ignore == "1"))
    return out


Reporter = Callable[[list[FetchParked]], None]
#: The reporter of this process (pid -> reporter; a forked child has none).
_REPORTERS: dict[int, Reporter] = {}


def set_reporter(reporter: Reporter | None) -> None:
    """Have *reporter* told of every job this process's fetch parks (None: nobody)."""
    _REPORTERS.clear()
    if reporter is not None:
        _REPORTERS[os.getpid()] = reporter


def report(parked: list[FetchParked]) -> None:
    """Log each job parked in the fetch and tell this process's reporter (never raises)."""
    for job in parked:
        logger.info("job %s (%s) parked: %s (by the fetch that took its message)", job.job_id,
                    job.task, job.reason)
    reporter = _REPORTERS.get(os.getpid())
    if reporter is None:
        return
    try:
        reporter(parked)
    except Exception:  # the jobs are parked already: a report that fails must not stop the fetch
        logger.exception("could not report %d job(s) parked in the fetch as BLOCKED", len(parked))
