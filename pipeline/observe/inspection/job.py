"""One job, wherever it is: ``pipeline show``, and the API's job view.

Looks in the places a job can be, cheapest first: its hold or parked record
(a few reads), the broker's lists (an operator's query, linear in the queue's
length), its dead letter, the result backend and the job store. Says in one
line why it is not running.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from pipeline.actions import control, deadletters, pooled
from pipeline.admission.agents import gate_state, list_agents
from pipeline.errors import UnknownJobError
from pipeline.keys import pool_of_queue
from pipeline.locks.ticket import Explanation
from pipeline.messages.record import Record
from pipeline.observe.inspection.live import label
from pipeline.runtime.processes import process_alive
from pipeline.runtime.services import Services
from pipeline.store import queries, states
from pipeline.store.models import Job
from pipeline.store.session import session_scope

#: Where a job can be (``where`` of :class:`JobDetail`).
HOLDING = ("running", "granted", "between")


@dataclass(frozen=True)
class JobDetail(Record):
    """Everything known about one job.

    Attributes:
        job_id: the job.
        where: ``running``, ``granted`` (handed its locks, about to start),
            ``between`` (a workflow between steps), ``parked``, ``queued`` (a
            message in the broker's lists, an agent pool's included), ``delayed``
            (a pool job waiting out its countdown), ``dead_letter``, ``finished``
            (the store or the result backend has its outcome) or ``elsewhere``
            (known, but in none of those places: taken by a worker a moment ago,
            or waiting in a worker for its countdown).
        why: one line saying why it is not running (empty while it runs).
        place: its place in line (1 = next): in the broker's lists across all
            levels, or in the line of the resource it is parked behind.
        priority: the level it waits at, when known.
        holder: the hold it runs (or will run) under.
        resources: the resources it holds or needs.
        waiting_for: the resource it is parked behind; ``blocked_by`` who holds
            it or is ahead in line.
        host: worker host of a running hold; ``pid`` its process.
        expires: the lease deadline of a hold (seconds since the epoch).
        result_state: the result backend's state (``PENDING`` = none recorded).
        record: its ``jobs`` row in the store (None: not recorded, or the store
            is disabled).
        history: its latest audit rows, oldest first.
        dead_letter: its dead letter, when it is dead-lettered.
    """

    job_id: str
    where: str
    why: str
    place: int = 0
    priority: str = ""
    holder: str = ""
    resources: tuple[str, ...] = ()
    waiting_for: str = ""
    blocked_by: str = ""
    host: str = ""
    pid: str = ""
    expires: float | None = None
    result_state: str = "PENDING"
    record: dict[str, Any] | None = None
    history: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    dead_letter: dict[str, Any] | None = None


def _blocker(services: Services, blocked_by: str) -> str:
    """What the job in the way is doing, in words."""
    other = services.lock_reads.explain(blocked_by)
    if other.status == "running" and process_alive(other.host, other.pid) is False:
        return (f"held by {blocked_by}, whose process (pid {other.pid} on {other.host}) is "
                "gone: freed when its worker starts again or its lease runs out")
    if other.status == "running":
        where = f"on {other.host}" if other.host else ""
        where += f" pid {other.pid}" if other.pid else ""
        return f"held by {blocked_by} (running {where})".replace(" )", ")")
    if other.status == "granted":
        return f"held by {blocked_by} (handed its locks, about to start)"
    if other.status == "between":
        return f"held by workflow {blocked_by} (between two steps)"
    if other.status == "parked":
        return f"queued behind {blocked_by} (parked ahead of it)"
    return f"held by or queued behind {blocked_by}"


def _why_locked(services: Services, found: Explanation) -> str:
    if found.status == "parked":
        return (f"waiting for {found.waiting_for}, {_blocker(services, found.blocked_by)}; "
                f"position {found.position} in line; needs {', '.join(found.resources)}")
    if found.status == "granted":
        grant = services.settings.grant_ttl
        return ("handed its locks by a release: it starts as soon as a worker takes its "
                f"message (the grant passes on if none does within {grant:g} s)")
    if found.status == "between":
        return ("a workflow between two steps: it keeps its locks while its next step "
                "waits to start")
    return ""


def _why_stopped(found: Explanation) -> str:
    left = max(0.0, (found.expires_at or 0.0) - time.time())
    return (f"its process (pid {found.pid} on {found.host}) is gone: the worker stopped or "
            f"was killed while it ran. Its locks ({', '.join(found.resources)}) are freed when "
            f"a worker of the same name starts again, or by the lease in {left:.0f} s; its "
            "message is given back then too, or after the visibility timeout")


def _why_queued(services: Services, level: str, ahead: int, queue: str = "") -> str:
    pool = pool_of_queue(queue)
    if pool is not None:
        return (f"queued in agent pool {pool}'s {level} list ({queue}): {ahead} job(s) ahead "
                f"of it; it starts when an agent of pool {pool} claims it")
    why = (f"queued in the broker's {level} list: {ahead} job(s) ahead of it; it starts when "
           "a worker takes it")
    busy = _consumers_busy(services, queue)
    if busy:
        why = f"{why}; {busy}"
    gate = gate_state(services).waiting_reason
    return f"{why}; {gate}" if gate else why


def _consumers_busy(services: Services, queue: str) -> str:
    """Whether every pool process consuming *queue* runs a job now (or none consumes it).

    Read from the workers' load records (``pipeline_agent_heartbeat``); empty when
    no worker publishes one, or some process is free.
    """
    if not queue:
        return ""
    workers = list_agents(services)
    if not workers:
        return ""
    consuming = [w for w in workers if queue in w.queues]
    if not consuming:
        return f"no live worker consumes queue {queue}"
    slots = sum(w.slots for w in consuming)
    if slots and sum(min(w.running, w.slots) for w in consuming) >= slots:
        return f"every one of the {slots} processes consuming queue {queue} is busy"
    return ""


def _why_elsewhere(record: dict[str, Any] | None, dead: deadletters.DeadLetter | None,
                   result_state: str) -> tuple[str, str]:
    """(where, why) of a job neither holding, parked nor in the broker's lists."""
    if dead is not None:
        return "dead_letter", (f"dead-lettered after {dead.attempts} attempt(s): {dead.error}; "
                               f"`pipeline dlq requeue {dead.job_id}` runs it again")
    state = record["state"] if record else None
    if state in states.TERMINAL:
        error = f": {record['error']}" if record and record.get("error") else ""
        return "finished", f"finished: {state}{error}"
    if state is None and result_state not in ("PENDING", "STARTED", "RETRY", "BLOCKED"):
        return "finished", f"finished: {result_state} (result backend)"
    if state == states.RUNNING:
        return "elsewhere", ("the store says RUNNING but it holds no lock: it has just "
                             "finished, or its worker stopped and its lease ran out")
    if record and record.get("attempts", 0) > 1 and state == states.QUEUED:
        return "elsewhere", ("waiting for its retry: a worker keeps its message until the "
                             "retry delay ends")
    return "elsewhere", ("not in the broker's lists and holding no lock: a worker took it a "
                         "moment ago, or keeps it until its countdown ends")


def _store_part(services: Services, job_id: str, history: int
                ) -> tuple[dict[str, Any] | None, tuple[dict[str, Any], ...]]:
    settings = services.settings
    if not settings.store_enabled:
        return None, ()
    with session_scope(settings.store_url) as session:
        row = session.get(Job, job_id)
        rows = queries.recent_events(session, job_id, history) if history else []
        return (None if row is None else queries.job_dict(row),
                tuple(queries.event_dict(r) for r in rows))


def job_detail(services: Services, job_id: str, *, history: int = 20) -> JobDetail:
    """Where *job_id* is, why it is not running, and its record and latest history.

    Raises:
        UnknownJobError: nothing knows the id (no hold, parked record, message,
            dead letter, result or store row).
        StoreNotMigrated, StoreError: the store is enabled but cannot be read.
    """
    found = services.lock_reads.explain(job_id)
    record, events = _store_part(services, job_id, history)
    result_state = str(services.app.AsyncResult(job_id).state)
    common: dict[str, Any] = {"result_state": result_state, "record": record,
                              "history": events}
    if found.status == "running" and process_alive(found.host, found.pid) is False:
        return JobDetail(
            job_id=job_id, where="stopped", why=_why_stopped(found), holder=found.holder,
            resources=found.resources, host=found.host, pid=found.pid,
            expires=found.expires_at, **common)
    if found.status != "unknown":
        return JobDetail(
            job_id=job_id, where=found.status, why=_why_locked(services, found),
            place=found.position, priority=label(found.priority), holder=found.holder,
            resources=found.resources, waiting_for=found.waiting_for,
            blocked_by=found.blocked_by, host=found.host, pid=found.pid,
            expires=found.expires_at, **common)
    queued = control.position(services, job_id)
    if queued.where == "queued":
        ahead = queued.place - 1
        return JobDetail(
            job_id=job_id, where="queued", place=queued.place,
            priority=label(queued.priority),
            why=_why_queued(services, label(queued.priority), ahead, queued.queue), **common)
    waiting = pooled.delayed(services, job_id) if queued.where == "delayed" else None
    if waiting is not None:
        return JobDetail(job_id=job_id, where="delayed", priority=label(queued.priority),
                         why=pooled.describe_delayed(waiting[2], waiting[0]), **common)
    dead = deadletters.get(services, job_id)
    if record is None and dead is None and result_state == "PENDING" and not events:
        raise UnknownJobError(f"unknown job {job_id!r}: no lock, broker list, dead letter, "
                              "result or job store record has it")
    where, why = _why_elsewhere(record, dead, result_state)
    return JobDetail(job_id=job_id, where=where, why=why,
                     dead_letter=None if dead is None else deadletters.as_dict(dead), **common)
