"""Operator actions on jobs: cancel, reprioritize, and where a job stands in line.

A job is in one of three places: in the broker's lists (published, not yet
taken), parked in a resource line, or holding its locks (running, or a
workflow between steps). Each action looks in that order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from celery import Celery

from pipeline.engine import engine_for
from pipeline.parking import dumps, queue_lists
from pipeline.priority import PRIORITY_STEPS, level_of, parse_priority
from pipeline.revoked import ids_in_message, mark_revoked


@dataclass(frozen=True)
class Position:
    """Where a job waits.

    Attributes:
        where: ``queued`` (in the broker), ``parked`` (in a resource line),
            ``running``, ``between`` (a workflow between steps), ``granted``
            or ``unknown`` (finished, or never seen).
        place: 1 = next; for a queued job, jobs ahead of it across all levels;
            for a parked one, its place in the line of what blocks it.
        resource: the resource a parked job waits for.
        priority: the level it waits at, when known.
    """

    where: str
    place: int = 0
    resource: str = ""
    priority: int | None = None


def position(app: Celery, job_id: str, queue: str | None = None) -> Position:
    """Where *job_id* stands: its place among the jobs ahead of it."""
    locks = engine_for(app).locks
    found = locks.explain(job_id)
    if found.status == "parked":
        return Position("parked", found.position, found.waiting_for, found.priority)
    if found.status != "unknown":
        return Position(found.status)
    queued = locks.find_queued(queue_lists(app, queue), job_id)
    if queued is not None:
        return Position("queued", queued.place, priority=PRIORITY_STEPS[queued.index - 1])
    return Position("unknown")


def cancel(app: Celery, job_id: str, *, terminate: bool = False,
           reason: str = "cancelled by request", queue: str | None = None) -> str:
    """Cancel a job or a workflow (by its id); returns where it was found.

    A parked or queued job is removed and recorded CANCELLED, and REVOKED in
    the result backend (with the chain steps it would have published, which
    never run now). A running job is revoked, and killed only when *terminate*
    is true. A workflow's remaining
    steps are dropped when they reach a worker and its locks are freed.
    """
    engine = engine_for(app)
    locks = engine.locks
    stored = locks.parked_message(job_id)
    if locks.cancel_parked(job_id, reason):
        mark_revoked(app, ids_in_message(stored) or [job_id], reason)
        return "parked"
    queued = locks.find_queued(queue_lists(app, queue), job_id, remove=True, reason=reason)
    if queued is not None:
        mark_revoked(app, ids_in_message(queued.message) or [job_id], reason)
        return "queued"
    held = locks.explain(job_id)
    # Drop whatever of it may still arrive (a prefetched copy, a workflow's next step).
    locks.mark_cancelled(job_id)
    if held.status == "unknown":
        return "unknown"
    current = held.current_job or job_id
    app.control.revoke(current, terminate=terminate)
    if held.status == "between" or terminate:
        locks.release(held.holder, current, event="cancelled",
                      detail=json.dumps({"reason": reason}))
    return held.status


def reprioritize(app: Celery, job_id: str, priority: Any, queue: str | None = None) -> str:
    """Move a queued or parked job to *priority*; returns where it was found.

    A parked job takes its project's next turn at its new level (fair share),
    behind the jobs of its project already waiting there. A job still in the
    broker goes to the back of its new level's list (a list cannot be entered
    in the middle).
    """
    new = parse_priority(priority)
    locks = engine_for(app).locks
    if locks.reprioritize_parked(job_id, new) is not None:
        return "parked"
    lists = queue_lists(app, queue)
    target = lists[PRIORITY_STEPS.index(int(level_of(new)))]
    for _ in range(3):  # the message may be taken between the look and the move
        found = locks.find_queued(lists, job_id)
        if found is None:
            return "unknown"
        message = json.loads(found.message)
        previous = message["properties"].get("priority")
        message["properties"]["priority"] = new
        detail = json.dumps({"priority": new, "previous": previous})
        if locks.swap_queued(found, target, dumps(message), detail):
            return "queued"
    return "unknown"
