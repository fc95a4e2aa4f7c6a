"""Starting a job: take every lock it needs in one call, or park it.

Runs in the worker's pool process, in ``before_start``. A job that cannot get
everything is parked (acknowledged, BLOCKED, woken by a release); an eager
call cannot be parked and raises instead.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

from celery import states
from celery.exceptions import Reject

from pipeline.broker import layout
from pipeline.errors import LockNotAcquired, WorkflowError
from pipeline.job import deliveries, workflows
from pipeline.job.blocked_state import store_blocked
from pipeline.job.outage import OUTAGE_ERRORS, ride_out
from pipeline.job.protocols import JobTask
from pipeline.job.release import release_hold
from pipeline.job.revoked import chain_ids, mark_revoked
from pipeline.locks.resources import CONTROL, Demand, check_id, claims, declared_models
from pipeline.locks.ticket import (
    Acquired,
    AcquireResult,
    Blocked,
    Cancelled,
    Duplicate,
    Ticket,
    Uncovered,
)
from pipeline.messages import envelope
from pipeline.messages.context import JobContext
from pipeline.messages.events import RELEASED, compact_json
from pipeline.messages.header import EMPTY, RECHECK, of_request
from pipeline.priority import of_request as priority_of
from pipeline.runtime.net import HOST
from pipeline.runtime.running import RunningJob
from pipeline.runtime.services import Services

logger = logging.getLogger(__name__)
T = TypeVar("T")


def ticket_for(task: JobTask, request: JobContext, services: Services) -> Ticket:
    """The lock ticket of the job *request* describes."""
    header = of_request(request)
    demand = header.demand
    if header is EMPTY:
        # Published without JobTask.apply_async (send_task, another client):
        # the task's own models still apply.
        models, shared = declared_models(task)
        demand = Demand(models=models, shared_models=shared)
    job_claims = claims(demand, services.settings)
    holder = demand.workflow or request.id
    if CONTROL.search(holder + request.id + "".join(c.resource for c in job_claims)):
        # Published by another client (send_task) with ids or names that would
        # break the lock records: fail the job with the reason.
        check_id("task_id", request.id)
        check_id("workflow", holder)
        for claim in job_claims:
            check_id("resource", claim.resource)
    priority = priority_of(request)
    detail = {
        "task": task.name,
        "priority": header.priority if header.priority is not None else priority,
        "attempt": deliveries.attempt(services, request),
        "user": demand.user, "project": demand.project,
        "models": list(demand.models + demand.shared_models), "workflow": demand.workflow,
        "queued_at": header.submitted_at,
    }
    return Ticket(
        job_id=request.id,
        holder=holder,
        claims=job_claims,
        priority=priority,
        detail=compact_json(detail),
        submitted_ms=(header.submitted_at or 0.0) * 1000,
        step=header.is_later_step,
        guest=holder != request.id and not header.is_later_step,
    )


def start(task: JobTask, task_id: str) -> str | None:
    """Take the job's locks; returns the reason when it was parked instead.

    Raises:
        LockNotAcquired: in eager mode (``apply()``, ``task_always_eager``),
            where a job cannot be parked, when a resource is taken.
    """
    request: JobContext = task.request
    services = task.services
    # A copy published again by _duplicate, or a message the broker gave back
    # (its worker died or lost the connection, perhaps after the job ended):
    # a job whose result is stored already never runs twice.
    again = getattr(request, RECHECK, None) or (request.delivery_info or {}).get("redelivered")
    if again and task.backend.get_state(task_id) in states.READY_STATES:
        logger.info("job %s (%s) not run: it already finished; this copy is dropped",
                    task_id, task.name)
        return f"job {task_id} already finished; this copy is dropped"
    ticket = ticket_for(task, request, services)
    if request.is_eager:
        parent = services.running.in_body(getattr(request, "parent_id", None))
        if parent is not None:
            _start_inline(task, request, services, ticket, parent)
            return None
    else:
        services.heartbeat.ensure_started()
    result = _acquire(task, request, services, ticket)
    if isinstance(result, Acquired):
        if services.settings.replicas_to_wait and not request.is_eager:
            _wait_for_replicas(services, task_id)
        # Read now: Celery pops the next step off request.chain when it sends it.
        workflow = of_request(request).workflow
        _run(services, request, RunningJob(
            result.holder or ticket.holder, result.tokens, workflow, result.guest,
            workflows.continues(request.chain, workflow)))
        if result.granted_at is not None:
            logger.info("job %s (%s) handed off: a release granted it the locks it was parked "
                        "for %.3f s before it started", task_id, task.name,
                        max(0.0, time.time() - result.granted_at))
        return None
    if isinstance(result, Cancelled):
        reason = f"job {task_id} was cancelled before it started"
        logger.info("job %s (%s) not run: cancelled before it started", task_id, task.name)
        mark_revoked(services, [task_id, *chain_ids(request.chain)], reason,
                     hostname=request.hostname)
        return reason
    if isinstance(result, Uncovered):
        raise WorkflowError(
            f"job {task_id} runs inside workflow {result.holder}, whose locks do not cover it; "
            f"declare its resources on the workflow")
    if isinstance(result, Duplicate):
        return _duplicate(task, task_id, ticket)
    services.running.blocked(ticket.claims)
    if services.settings.replicas_to_wait:
        # Parked, its message is acknowledged next: only once a replica has the park.
        _wait_for_replicas(services, task_id)
    _report_blocked(task, task_id, result)
    logger.info("job %s (%s) parked: %s", task_id, task.name, result.reason)
    return result.reason


def _acquire(task: JobTask, request: JobContext, services: Services,
             ticket: Ticket) -> AcquireResult:
    """Take the job's locks, or park it with its message.

    The message to park with is built only when parking is likely (the claims
    of a job blocked moments ago in this process are probably still taken);
    otherwise a first call without it tells whether the job can run, and a
    blocked job is sent again with its message.
    """
    pid = os.getpid()
    if request.is_eager or not services.running.likely_blocked(ticket.claims):
        result = through_outage(request, lambda: services.locks.acquire(
            ticket, host=HOST, pid=pid))
        if not isinstance(result, Blocked):
            return result
        if request.is_eager:
            raise LockNotAcquired(f"job {request.id} ({task.name}) cannot run now: "
                                  f"{result.reason}")
    message = envelope.message_for(task.app, request, ticket.priority, complete=False)
    queue = layout.queue_key(task.app, (request.delivery_info or {}).get("routing_key")
                               or task.app.conf.task_default_queue)
    return through_outage(request, lambda: services.locks.acquire(
        ticket, host=HOST, pid=pid, park_message=message, queue_key=queue))


def _wait_for_replicas(services: Services, task_id: str) -> None:
    """Go on only once the grant (or the park) reached ``pipeline_redis_wait_replicas``
    replicas (``WAIT``).

    A primary that dies before its replicas have a grant loses it: the
    promoted replica would hand the same resources to another job while this
    one runs; a lost park would lose the job, whose message is acknowledged.
    Past ``pipeline_redis_wait_timeout`` the job goes on anyway (a replica that
    lags must not stop the pipeline) and the log says so.
    """
    settings = services.settings
    try:
        acked = services.locks.wait_replicas(settings.replicas_to_wait,
                                             settings.replica_wait_timeout)
    except OUTAGE_ERRORS as exc:
        logger.warning("job %s: could not wait for replicas to have its grant (%r)", task_id, exc)
        return
    if acked < settings.replicas_to_wait:
        logger.warning("job %s runs with its grant on %d of %d replicas after %.2f s "
                       "(pipeline_redis_wait_replicas): a failover now could lose it",
                       task_id, acked, settings.replicas_to_wait, settings.replica_wait_timeout)


def through_outage(request: JobContext, call: Callable[[], T]) -> T:
    """Make a lock call, riding out a short Redis outage (a restart); requeue past it.

    A repeat of a call that did run finds its own hold and keeps it. Past the
    backoff, the job is not failed but requeued (``Reject``): its message stays
    with the broker and runs once Redis is back.

    Raises:
        Reject: Redis stayed unreachable (the job is requeued, or in eager
            mode the connection error itself).
    """
    if request.is_eager:
        return call()
    try:
        return ride_out(call, what=f"job {request.id} starts")
    except OUTAGE_ERRORS as exc:
        raise Reject(f"Redis unreachable while job {request.id} started ({exc!r}): "
                     "it is requeued", requeue=True) from exc


def _start_inline(task: JobTask, request: JobContext, services: Services, ticket: Ticket,
                  parent: RunningJob) -> None:
    """Start an eager call made inside a running job of this process.

    It runs inline, in the parent's process and thread: it adds no concurrency,
    so the parent's hold covers it (its global slot included). Only resources
    the parent does not hold are taken, under the call's own id.

    Raises:
        LockNotAcquired: one of those resources is taken (an inline call cannot wait).
    """
    own = tuple(c for c in ticket.claims if c.resource != "global"
                and c.resource not in parent.tokens)
    if not own:
        _run(services, request, RunningJob(parent.holder, parent.tokens, parent.workflow,
                                           guest=True))
        return
    result = services.locks.acquire(replace(ticket, holder=request.id, claims=own),
                                    host=HOST, pid=os.getpid())
    if not isinstance(result, Acquired):
        raise LockNotAcquired(f"job {request.id} ({task.name}) cannot run now: "
                              f"{getattr(result, 'reason', result)}")
    _run(services, request, RunningJob(request.id, result.tokens))


def _run(services: Services, request: JobContext, job: RunningJob) -> None:
    services.running.add(request.id, job)
    services.heartbeat.track(job.holder)


def _duplicate(task: JobTask, task_id: str, ticket: Ticket) -> str | None:
    """A delivery of a job whose hold still looks alive: take it, drop it or delay it.

    * this very process holds it (a call repeated after a lost connection): it
      is ours, run it;
    * a dead process of this host holds it (redelivered after a crash): end
      that hold and start again;
    * the job already finished (the result backend says so): drop the copy;
    * else another live process may run it, or a dead one on another host whose
      lease has not run out yet: publish the copy again after one lease, when
      the hold is either released (finished, so then dropped) or gone.
    """
    services = task.services
    request: JobContext = task.request
    found = services.lock_reads.explain(task_id, ticket.holder)
    pid = int(found.pid) if found.pid.isdigit() else -1
    if found.host == HOST and pid == os.getpid():
        _run(services, request, RunningJob(ticket.holder, found.tokens))
        return None
    if found.host == HOST and pid > 0 and not _alive(pid):
        release_hold(services.locks, ticket.holder, task_id, event=RELEASED,
                     detail={"reason": "the process holding it is gone"})
        return start(task, task_id)
    if task.backend.get_state(task_id) in states.READY_STATES:
        return f"job {task_id} already finished; this copy is dropped"
    headers = {**(request.headers or {}), RECHECK: 1}
    task.apply_async(request.args, request.kwargs, task_id=task_id,
                     countdown=services.settings.lease, headers=headers,
                     priority=priority_of(request), chain=request.chain,
                     retries=request.retries or None)
    return (f"job {task_id} still holds its locks elsewhere; this copy runs again in "
            f"{services.settings.lease:.0f} s unless that run finishes first")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _report_blocked(task: JobTask, task_id: str, blocked: Blocked) -> None:
    """Tell Flower (a ``task-blocked`` event) and, like STARTED, the result backend.

    The stream's ``blocked`` event (the store) was written by the script. The
    result backend gets the BLOCKED state only where it gets STARTED too
    (``task_track_started``, and the job keeps its result): one more write per
    parked job otherwise.
    """
    meta = {"reason": blocked.reason, "resource": blocked.resource,
            "blocked_by": blocked.blocked_by, "position": blocked.position}
    request: JobContext = task.request
    try:
        task.services.send_task_event("task-blocked", request.hostname, uuid=task_id, **meta)
        ignored = request.ignore_result if request.ignore_result is not None else (
            task.ignore_result)
        if task.track_started and not ignored:
            store_blocked(task.backend, task_id, meta, request)
    except Exception:  # the job is parked already: a report that fails must not fail it
        logger.exception("could not report job %s as BLOCKED", task_id)
