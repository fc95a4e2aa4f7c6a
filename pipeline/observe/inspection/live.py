"""What Redis holds right now: the broker's lists, the holds and the parked jobs.

Every view reads a bounded amount: the four lists' lengths, the live holds
(bounded by the global capacity and the worker processes), or the *limit*
longest-parked jobs. None of them reads every parked job.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from pipeline.broker.layout import queue_lists
from pipeline.locks.records import HoldRecord
from pipeline.locks.resources import SHARED
from pipeline.locks.ticket import blocked_reason
from pipeline.messages.record import Record
from pipeline.priority import PRIORITY_STEPS, Priority, level_of
from pipeline.runtime.services import Services

#: Level labels, most urgent first.
LEVELS: tuple[str, ...] = tuple(Priority(step).label for step in PRIORITY_STEPS)


def label(priority: int | None) -> str:
    """The level label of a priority 0-9 (``""`` when unknown)."""
    return "" if priority is None else level_of(priority).label


def queue_depth(services: Services, queue: str | None = None) -> dict[str, int]:
    """Messages waiting in the broker per level (``critical`` ... ``low``), in one round trip.

    The critical lane also holds the jobs a release has just handed their locks
    and the next steps of running workflows: they go first.
    """
    pipe = services.redis.pipeline(transaction=False)
    for key in queue_lists(services.app, queue):
        pipe.llen(key)
    return dict(zip(LEVELS, (int(n) for n in pipe.execute()), strict=True))


@dataclass(frozen=True)
class RunningJob(Record):
    """One live hold: a job running, granted its locks, or a workflow between steps.

    Attributes:
        holder: the id the locks are held under (the job, or its workflow).
        job_id: the job running (or granted, or last run) under the hold.
        state: ``running``, ``granted`` or ``between``.
        resources: the resource ids held.
        host: worker host (empty while granted or between steps).
        pid: worker process.
        since: when the hold was granted (seconds since the epoch).
        expires: lease deadline (seconds since the epoch).
        token: the grant's fencing token.
        lease_expired: the deadline has passed (the holder stopped renewing;
            the next sweep hands its resources on).
    """

    holder: str
    job_id: str
    state: str
    resources: tuple[str, ...]
    host: str
    pid: str
    since: float
    expires: float
    token: int
    lease_expired: bool


def _running(hold: HoldRecord, now: float) -> RunningJob:
    return RunningJob(holder=hold.holder, job_id=hold.job or hold.holder, state=hold.state,
                      resources=tuple(c.resource for c in hold.claims), host=hold.host,
                      pid=hold.pid, since=hold.since, expires=hold.expires, token=hold.token,
                      lease_expired=hold.expires <= now)


def running_jobs(services: Services, limit: int = 1000) -> list[RunningJob]:
    """Every live hold, longest held first."""
    now = time.time()
    found = [_running(h, now) for h in services.lock_reads.holds(limit)]
    return sorted(found, key=lambda r: (r.since, r.holder))


@dataclass(frozen=True)
class ParkedJob(Record):
    """A job parked in Redis until the resources it needs are free.

    Attributes:
        job_id: the job.
        priority: its level label; ``priority_value`` the int 0-9.
        waiting_for: the resource it waits for.
        blocked_by: the holder of that resource, or the job ahead of it in line.
        position: its place in that resource's line (1 = next).
        parked_at: when it was parked (seconds since the epoch).
        needs: every resource it needs.
        holder: the hold it will run under (its workflow for a workflow step).
        reason: one line saying why it waits.
    """

    job_id: str
    priority: str
    priority_value: int | None
    waiting_for: str
    blocked_by: str
    position: int
    parked_at: float | None
    needs: tuple[str, ...]
    holder: str
    reason: str


def parked_jobs(services: Services, limit: int = 100) -> list[ParkedJob]:
    """The *limit* jobs parked longest, oldest first (O(limit), whatever the number parked)."""
    return [ParkedJob(
        job_id=e.job_id, priority=label(e.priority), priority_value=e.priority,
        waiting_for=e.waiting_for, blocked_by=e.blocked_by, position=e.position,
        parked_at=e.parked_at, needs=e.resources, holder=e.holder,
        reason=blocked_reason(e.waiting_for, e.blocked_by, e.position),
    ) for e in services.lock_reads.parked_jobs(limit)]


@dataclass(frozen=True)
class LockHeld(Record):
    """One resource held by one holder.

    Attributes:
        resource: the resource id (``model:bert``, ``user:alice``, ``global``).
        kind: ``user``, ``project``, ``model`` or ``global``.
        name: the part after the kind (empty for ``global``).
        mode: ``exclusive`` or ``shared`` (readers of a model).
        capacity: how many may hold it at once in that mode.
        holder: the hold's id; ``job_id`` the job running under it.
        state: the hold's state (``running``, ``granted``, ``between``).
        expires: the lease deadline (seconds since the epoch).
        lease_expired: the deadline has passed (the sweep will free it).
    """

    resource: str
    kind: str
    name: str
    mode: str
    capacity: int
    holder: str
    job_id: str
    state: str
    expires: float
    lease_expired: bool


def split_resource(resource: str) -> tuple[str, str]:
    """(kind, name) of a resource id; ``global`` has no name."""
    kind, _, name = resource.partition(":")
    return kind, name


def locks(services: Services, limit: int = 1000) -> list[LockHeld]:
    """Every resource held, by resource id then holder (from the live holds)."""
    now = time.time()
    found = []
    for hold in services.lock_reads.holds(limit):
        for claim in hold.claims:
            kind, name = split_resource(claim.resource)
            found.append(LockHeld(
                resource=claim.resource, kind=kind, name=name,
                mode="shared" if claim.mode == SHARED else "exclusive",
                capacity=claim.capacity, holder=hold.holder, job_id=hold.job or hold.holder,
                state=hold.state, expires=hold.expires, lease_expired=hold.expires <= now))
    return sorted(found, key=lambda lock: (lock.resource, lock.holder))
