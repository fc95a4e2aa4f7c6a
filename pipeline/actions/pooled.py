"""Operator actions on the jobs of agent pools: where they wait, and cancelling them.

A pool job (:mod:`pipeline.job.pools`) waits where any job waits (its pool's
broker lists, a resource line), and in two places of its own: under an
agent's lease once claimed, and in its pool's delayed set until its countdown
or its retry's backoff ends. :mod:`pipeline.actions.control` looks in the
pools' lists as in the default queue's; this module covers the other two.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from pipeline.job.revoked import ids_in_message, mark_revoked
from pipeline.keys import pool_queue
from pipeline.locks.records import SEP
from pipeline.messages.events import CANCELLED, emit
from pipeline.runtime.services import Services


def queues(services: Services, queue: str | None) -> list[str | None]:
    """The queues an action looks in: *queue*, or the default queue then every pool's."""
    if queue is not None:
        return [queue]
    return [None, *(pool_queue(pool) for pool in services.leases.pools())]


def delayed(services: Services, job_id: str) -> tuple[str, str, float] | None:
    """(pool queue, stored member, due) of a pool job waiting out a countdown, or None."""
    for pool in services.leases.pools():
        found = services.leases.find_delayed(pool_queue(pool), job_id)
        if found is not None:
            return pool_queue(pool), found[0], found[1]
    return None


def cancel_leased(services: Services, job_id: str, reason: str) -> bool:
    """Cancel a job an agent claimed: its lease and locks end now (its agent is told at
    its next call: 409, cancelled), REVOKED where Celery users look. False if none."""
    message = services.leases.cancel(job_id, reason)
    if message is None:
        return False
    mark_revoked(services, ids_in_message(message) or [job_id], reason)
    return True


def cancel_delayed(services: Services, job_id: str, reason: str) -> bool:
    """Cancel a pool job waiting out its countdown or backoff. False if there is none."""
    found = delayed(services, job_id)
    if found is None or not services.leases.take_delayed(found[0], found[1]):
        return False
    message = found[1].partition(SEP)[2]
    emit(services.redis, services.keys.events, CANCELLED, job_id, {"reason": reason},
         maxlen=services.settings.events_maxlen)
    mark_revoked(services, ids_in_message(message) or [job_id], reason)
    return True


def describe_delayed(due: float, queue: str) -> str:
    """Why a delayed pool job is not running, in words."""
    when = datetime.fromtimestamp(due, tz=timezone.utc).isoformat(timespec="seconds")
    return (f"waits in {queue} until {when} (its countdown, or its retry's backoff); then an "
            "agent of the pool may claim it")


def priority_of(member: str) -> int | None:
    """The priority of a delayed member's message, when it reads."""
    try:
        value = json.loads(member.partition(SEP)[2])["properties"]["priority"]
    except (ValueError, KeyError, TypeError):
        return None
    return int(value) if isinstance(value, int) else None
