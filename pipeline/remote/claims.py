"""Claiming a pool's job for an agent: the most urgent one whose locks can all be taken.

One claim call (``claim.lua``, :meth:`pipeline.locks.leases.RedisLeases.claim`)
looks at a bounded number of messages; :func:`claim` calls again while there
are more, and reports what the calls did to the jobs it did not hand out, where
Celery users look: a parked job BLOCKED (Flower, and the result backend as a
worker writes it), a cancelled one REVOKED, an expired one REVOKED.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from celery.app.task import Context

from pipeline.broker.setaside import set_aside_or_log
from pipeline.errors import InvalidJobError
from pipeline.job.blocked_state import store_blocked
from pipeline.job.pools import pool_lists
from pipeline.job.release import release_hold
from pipeline.job.revoked import ids_in_message, mark_revoked, report_expired
from pipeline.keys import pool_queue
from pipeline.locks.leases import ClaimNote, Granted
from pipeline.locks.ticket import blocked_reason
from pipeline.messages.events import FAILED
from pipeline.messages.record import Record
from pipeline.priority import DEFAULT_PRIORITY
from pipeline.remote.message import PoolMessage
from pipeline.runtime.services import Services

logger = logging.getLogger(__name__)
#: Claim calls one claim makes at most (each looks at ``CLAIM_BUDGET`` messages).
MAX_CALLS = 8


def worker_name(agent: str, pool: str) -> str:
    """The name an agent goes by where Celery names workers (Flower, ``result_extended``)."""
    return f"{agent}@{pool_queue(pool)}"


@dataclass(frozen=True)
class ClaimedJob(Record):
    """A job an agent claimed: the call to run, and the lease to show on every later call.

    Attributes:
        id: the job id.
        task: its task name.
        args: positional arguments (JSON values).
        kwargs: keyword arguments (JSON values).
        priority: its priority, 0 (most urgent) to 9.
        resources: the resources it holds (``user:alice``, ``model:bert``, ``global``).
        lease: the lease token (opaque; it carries the fencing token).
        lease_expires_at: when the lease runs out unless renewed (seconds since the epoch).
        lease_seconds: how long a heartbeat renews it for.
        fencing_token: the hold's fencing token, for stores that refuse late writers.
        attempt: 1 for the first attempt.
        pool: the pool it was claimed from.
        agent: the agent that claimed it.
        workflow: the workflow it is a step of, if any.
    """

    id: str
    task: str
    args: list[Any]
    kwargs: dict[str, Any]
    priority: int
    resources: tuple[str, ...]
    lease: str
    lease_expires_at: float
    lease_seconds: float
    fencing_token: int
    attempt: int
    pool: str
    agent: str
    workflow: str | None = None


@dataclass(frozen=True)
class ClaimOutcome:
    """A claimed job, or None with when the pool's next delayed job is due (or None)."""

    job: ClaimedJob | None
    next_due: float | None = None
    parked: tuple[str, ...] = field(default_factory=tuple)


def claim(services: Services, pool: str, agent: str) -> ClaimOutcome:
    """Claim for *agent* the most urgent job of *pool* whose locks can all be taken.

    Jobs whose locks are taken are parked on the way (FIFO within a priority
    is kept: the first one that can run is claimed). Returns no job when none
    can run now.
    """
    app = services.app
    lists = pool_lists(app, pool)
    default = app.conf.task_default_priority
    priority = int(DEFAULT_PRIORITY if default is None else default)
    parked: list[str] = []
    for _ in range(MAX_CALLS):
        reply = services.leases.claim(pool, pool_queue(pool), lists, agent,
                                      default_priority=priority)
        parked += _report(services, reply.notes, worker_name(agent, pool))
        if reply.granted is not None:
            claimed = _claimed(services, reply.granted, pool, agent)
            if claimed is not None:
                return ClaimOutcome(claimed, parked=tuple(parked))
            continue
        if not reply.more:
            return ClaimOutcome(None, reply.next_due, tuple(parked))
    return ClaimOutcome(None, parked=tuple(parked))


def _claimed(services: Services, granted: Granted, pool: str, agent: str) -> ClaimedJob | None:
    """The job granted, announced like a worker's start; None if its message is unusable."""
    try:
        message = PoolMessage.decode(granted.message)
    except InvalidJobError as exc:
        _set_aside(services, granted, pool, str(exc))
        return None
    hostname = worker_name(agent, pool)
    try:
        services.send_task_event(
            "task-received", hostname, uuid=message.id, name=message.task,
            args=repr(message.args), kwargs=repr(message.kwargs), retries=message.retries,
            root_id=message.headers.get("root_id"), parent_id=message.headers.get("parent_id"),
            eta=message.headers.get("eta"), expires=message.headers.get("expires"))
    except Exception:  # Flower's view must not cost the claim
        logger.exception("could not announce the claim of job %s", message.id)
    header = message.header
    return ClaimedJob(
        id=message.id, task=message.task, args=message.args, kwargs=message.kwargs,
        priority=message.priority, resources=granted.resources, lease=granted.lease,
        lease_expires_at=granted.deadline, lease_seconds=services.settings.lease,
        fencing_token=granted.token,
        attempt=message.retries + 1 + (header.earlier_attempts or 0), pool=pool, agent=agent,
        workflow=header.workflow if header.steps or header.step else None)


def _set_aside(services: Services, granted: Granted, pool: str, reason: str) -> None:
    """A claimed message no agent can run: set aside, its lease and locks ended."""
    services.leases.finish(granted.job_id, granted.lease)
    set_aside_or_log(services.redis, services.keys, granted.message, queue=pool_queue(pool),
                     reason=reason, limit=services.settings.set_aside_max)
    release_hold(services.locks, granted.holder, granted.job_id, event=FAILED,
                 detail={"error": f"set aside: {reason}"}, token=granted.token)


def _report(services: Services, notes: tuple[ClaimNote, ...], hostname: str) -> list[str]:
    """Report the jobs a claim parked, dropped as cancelled or found expired; the parked."""
    parked = []
    expired = False
    for note in notes:
        if note.kind == "cancelled":
            mark_revoked(services, ids_in_message(note.text) or [note.job_id],
                         f"job {note.job_id} was cancelled before it started",
                         hostname=hostname)
        elif note.kind == "expired":
            expired = True
        elif note.kind == "parked":
            parked.append(note.job_id)
            _report_blocked(services, note, hostname)
    if expired:
        report_expired(services)
    return parked


def _report_blocked(services: Services, note: ClaimNote, hostname: str) -> None:
    """BLOCKED for Flower and, as a worker writes it, in the result backend."""
    try:
        found = _json(note.text)
        meta = {"reason": blocked_reason(str(found.get("resource", "")),
                                         str(found.get("blocked_by", "")),
                                         int(found.get("position") or 0)),
                "resource": found.get("resource"), "blocked_by": found.get("blocked_by"),
                "position": found.get("position")}
        services.send_task_event("task-blocked", hostname, uuid=note.job_id, **meta)
        if services.app.conf.task_track_started:
            store_blocked(services.app.backend, note.job_id, meta,
                          Context(id=note.job_id, hostname=hostname))
    except Exception:  # the job is parked already: a report that fails must not fail the claim
        logger.exception("could not report job %s as BLOCKED", note.job_id)


def _json(text: str) -> dict[str, Any]:
    value = json.loads(text)
    return value if isinstance(value, dict) else {}


def wait_seconds(outcome: ClaimOutcome, remaining: float) -> float:
    """How long a long poll may wait for a wake before it claims again."""
    if outcome.next_due is None:
        return remaining
    return max(0.0, min(remaining, outcome.next_due - time.time()))
