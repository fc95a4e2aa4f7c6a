"""What an agent reports on a job it claimed: start, heartbeat, give back, complete, fail.

Each call shows the job's lease; one that is not the current lease raises
:class:`~pipeline.errors.LeaseRefused` and changes nothing. An outcome ends the
lease first (one Lua call, so a late or second report cannot pass), then does
what a worker's tracer and ``after_return`` do for a job that ran
(:mod:`pipeline.remote.outcome`).
"""

from __future__ import annotations

import logging

from celery import states

from pipeline.errors import LeaseRefused
from pipeline.locks.leases import Ended, Refused
from pipeline.remote.claims import worker_name
from pipeline.remote.message import PoolMessage
from pipeline.runtime.services import Services

logger = logging.getLogger(__name__)

_WHY = {
    "none": "job {job} holds no lease: it is not claimed (never, or no longer: it finished, "
            "was given back or cancelled)",
    "stale": "the lease shown is not job {job}'s current one (a late agent: its lease ran "
             "out and the job was given back; or a lease of another job): nothing changed",
    "expired": "the lease of job {job} ran out before this call: the job was given back to "
               "its pool",
    "lost": "the locks of job {job} were released by hand while it ran: the job was given "
            "back to its pool",
    "cancelled": "job {job} was cancelled: its lease and locks are gone",
}


def refused(services: Services, job_id: str, refusal: Refused) -> LeaseRefused:
    """The error of a refused call, saying why in words."""
    why = refusal.why
    if why == "none" and services.redis.zscore(services.keys.cancelled, job_id) is not None:
        why = "cancelled"
    return LeaseRefused(_WHY.get(why, "{job}: " + why).format(job=job_id), why)


def pool_of_job(services: Services, job_id: str) -> str | None:
    """The pool of a claimed job (its lease), else of a recorded one (the store), else None."""
    pool = services.leases.pool_of(job_id)
    if pool:
        return pool
    if not services.settings.store_enabled:
        return None
    from pipeline.store.models import Job
    from pipeline.store.session import session_scope

    with session_scope(services.settings.store_url) as session:
        row = session.get(Job, job_id)
        return row.pool if row is not None else None


def start(services: Services, job_id: str, lease: str) -> float:
    """The agent started running the job: STARTED where Celery users look.

    Returns:
        When its lease runs out unless renewed (seconds since the epoch).

    Raises:
        LeaseRefused: *lease* is not the job's current lease.
    """
    found = services.leases.start(job_id, lease)
    if isinstance(found, Refused):
        raise refused(services, job_id, found)
    raw, before, deadline = found
    if before:
        return deadline
    message = PoolMessage.decode(raw)
    record = services.leases.lease_of(job_id)
    hostname = worker_name(record.get("agent", "?"), record.get("pool", "?"))
    try:
        services.send_task_event("task-started", hostname, uuid=job_id)
        task = services.app.tasks.get(message.task)
        ignored = message.headers.get("ignore_result")
        if ignored is None:
            ignored = bool(getattr(task, "ignore_result", False))
        if getattr(task, "track_started", services.app.conf.task_track_started) and not ignored:
            backend = getattr(task, "backend", None) or services.app.backend
            backend.store_result(job_id, {"pid": 0, "hostname": hostname}, states.STARTED,
                                 request=message.request(hostname, ignore_result=ignored))
    except Exception:  # the job runs: a report that fails must not stop it
        logger.exception("could not record the start of job %s", job_id)
    return deadline


def heartbeat(services: Services, job_id: str, lease: str) -> float:
    """Renew the job's lease and locks by one lease; the new deadline (seconds since the epoch).

    Raises:
        LeaseRefused: *lease* is not current, ran out, or the locks were released by hand.
    """
    renewed = services.leases.renew(job_id, lease)
    if isinstance(renewed, Refused):
        raise refused(services, job_id, renewed)
    return renewed


def give_back(services: Services, job_id: str, lease: str, reason: str) -> None:
    """The agent gives the job back (it stops): to its pool at once, locks freed and handed on.

    Raises:
        LeaseRefused: *lease* is not the job's current lease.
    """
    found = services.leases.give_back(job_id, lease, reason)
    if found is not None:
        raise refused(services, job_id, found)


def end(services: Services, job_id: str, lease: str) -> Ended:
    """End the lease for an outcome (one Lua call: a late or second report cannot pass).

    Raises:
        LeaseRefused: *lease* is not the job's current lease.
    """
    ended = services.leases.finish(job_id, lease)
    if isinstance(ended, Refused):
        raise refused(services, job_id, ended)
    return ended
