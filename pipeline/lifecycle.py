"""What PipelineTask's hooks do: validate and publish, lock or park, release.

The task class stays a thin list of Celery hooks; this module holds the steps,
so the eager path, the worker path and the parent process's clean-up share
one implementation.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from celery import states
from celery.exceptions import Ignore, Reject, Retry
from celery.signals import task_postrun

from pipeline import deadletters, parking, retries, workflows
from pipeline.blocked_state import store_blocked
from pipeline.engine import Engine, engine_for
from pipeline.errors import LockNotAcquired, WorkflowError
from pipeline.events import COMPLETED, DEAD_LETTERED, FAILED, QUEUED, RELEASED, RETRIED
from pipeline.locks.base import Acquired, Blocked, Cancelled, Duplicate, Ticket, Uncovered
from pipeline.priority import DEFAULT_PRIORITY, Priority, parse_priority
from pipeline.resources import (
    CONTROL,
    HEADER,
    RESOURCE_OPTIONS,
    Demand,
    check_id,
    check_option_names,
    claims,
    declared_models,
    demand_from_options,
)

logger = logging.getLogger(__name__)
HOST = socket.gethostname()
#: Header of a copy published again by :func:`_duplicate`: check it did not finish.
RECHECK = "pipeline_recheck"
_OUTCOME_EVENTS = {states.SUCCESS: COMPLETED, states.FAILURE: FAILED, states.RETRY: RETRIED}
_SUMMARY = 200


@dataclass(frozen=True)
class Running:
    """A job of this process that holds its locks."""

    holder: str
    tokens: dict[str, int]
    workflow: str | None
    guest: bool = False
    has_next_step: bool = False

    @property
    def token(self) -> int | None:
        """The grant's fencing token (one for all its resources)."""
        return next(iter(self.tokens.values()), None)


_RUNNING: dict[str, Running] = {}
#: Claims -> when a job needing them last parked in this process.
_BLOCKED_AT: dict[tuple[Any, ...], float] = {}
CONTENDED_FOR = 1.0


def prepare_options(task: Any, options: dict[str, Any], task_id: str | None) -> str | None:
    """Validate priority and resources of an ``apply_async`` call; put them in its header.

    Stamps a whole chain when *task* is its first step (see
    :mod:`pipeline.workflows`), and makes a job published from inside a running
    job a guest of that job's hold when the hold covers it.

    Returns:
        The task id to publish with (given one, or a new one for a workflow).

    Raises:
        InvalidJobError, WorkflowError: before anything is published.
    """
    priority = options.get("priority")
    if priority is not None:
        priority = options["priority"] = parse_priority(priority)
    elif task.priority is None and task.app.conf.task_default_priority is None:
        # An app without a default: unset would be 0 on Redis, the most urgent.
        priority = options["priority"] = int(DEFAULT_PRIORITY)
    # Job ids are stored in the lock records: no control characters.
    task_id = check_id("task_id", task_id) if task_id else str(uuid.uuid4())
    headers = dict(options.get("headers") or {})
    workflow_name = options.pop("workflow_name", None)
    stamped = headers.get(HEADER)
    if stamped and (stamped.get("w") or not any(n in options for n in RESOURCE_OPTIONS)):
        # A later step of a workflow (its resources are in the stamped union), or
        # a job published again (retry, requeue) with the header it had.
        for name in RESOURCE_OPTIONS:
            options.pop(name, None)
        if stamped.get("i") and options.get("retries") is None:
            # The next step of a started workflow holds its locks already: like a
            # hand-off it goes to the front, not behind the queue (its level
            # stays in the header for the records).
            options["priority"] = int(Priority.CRITICAL)
        return task_id
    check_option_names(options)
    demand = demand_from_options(options, *declared_models(task))
    if options.get("chain"):
        extra: dict[str, Any] = {"t": round(time.time(), 3)}
        if workflow_name is not None:
            extra["n"] = str(workflow_name)
        header = workflows.stamp_chain(task.app, options, demand, task_id, priority, extra)
    else:
        header = demand.to_header()
        header["t"] = round(time.time(), 3)
        parent = _running_parent(task, demand)
        if parent is not None:
            header["w"] = parent
        elif workflow_name is not None:
            # workflow(one_step, name=...): a workflow of one step, recorded by its name.
            header.update(w=task_id, n=str(workflow_name), s=1)
    headers[HEADER] = header
    options["headers"] = headers
    return task_id


def published(task: Any, task_id: str, args: Any, options: dict[str, Any]) -> None:
    """Record the ``queued`` event of a job just published (buffered, off the publish path)."""
    engine = engine_for(task.app)
    if task.app.conf.task_always_eager or not engine.settings.store_enabled:
        return
    header = (options.get("headers") or {}).get(HEADER) or {}
    priority = header.get("pr", options.get("priority"))
    engine.emitter.add(QUEUED, task_id, {
        "task": task.name, "priority": int(DEFAULT_PRIORITY) if priority is None else priority,
        "user": header.get("u"), "project": header.get("p"),
        "models": list(header.get("m") or ()) + list(header.get("r") or ()),
        "workflow": header.get("w"), "workflow_name": header.get("n"),
        "workflow_steps": header.get("s"),
        "step": header.get("i") or (1 if header.get("s") else None),
        "args": _summary(args), "attempt": int(options.get("retries") or 0) + 1,
    })


def _running_parent(task: Any, demand: Demand) -> str | None:
    """The hold a job published from inside a running job runs under, if any.

    A job whose resources the running job's hold covers runs as its guest, so
    a parent waiting on its child never deadlocks on its own locks. A job
    that shares nothing (but a global slot) with it is independent.

    Raises:
        WorkflowError: the job shares some resources with the running job but
            needs others its hold lacks (it would wait on its own parent).
    """
    from celery import current_task

    request = getattr(current_task, "request", None)
    running = _RUNNING.get(getattr(request, "id", None) or "")
    if running is None:
        return None
    wanted = {c.resource for c in claims(demand, engine_for(task.app).settings)} - {"global"}
    held = set(running.tokens) - {"global"}
    if not wanted & held:
        return None
    if wanted <= held:
        return running.holder
    parent_id = getattr(request, "id", "?")
    raise WorkflowError(
        f"a job published inside job {parent_id} shares {sorted(wanted & held)} with it but "
        f"also needs {sorted(wanted - held)}: it would wait for its own parent. Declare those "
        f"resources on the parent job or workflow, or publish the job after it ends"
    )


def _priority_of(request: Any) -> int:
    value = (request.delivery_info or {}).get("priority")
    return int(DEFAULT_PRIORITY) if value is None else int(value)


def ticket_for(task: Any, request: Any, engine: Engine) -> Ticket:
    """The lock ticket of the job *request* describes."""
    header = getattr(request, HEADER, None) or {}
    demand = Demand.from_header(header)
    if not header:
        # Published without PipelineTask.apply_async (send_task, another client):
        # the task's own models still apply.
        models, shared = declared_models(task)
        demand = Demand(models=models, shared_models=shared)
    job_claims = claims(demand, engine.settings)
    holder = demand.workflow or request.id
    if CONTROL.search(holder + request.id + "".join(c.resource for c in job_claims)):
        # Published by another client (send_task) with ids or names that would
        # break the lock records: fail the job with the reason.
        check_id("task_id", request.id)
        check_id("workflow", holder)
        for claim in job_claims:
            check_id("resource", claim.resource)
    priority = _priority_of(request)
    detail = {
        "task": task.name, "priority": header.get("pr", priority),
        "attempt": (request.retries or 0) + 1,
        "user": demand.user, "project": demand.project,
        "models": list(demand.models + demand.shared_models), "workflow": demand.workflow,
        "queued_at": header.get("t"),
    }
    return Ticket(
        job_id=request.id,
        holder=holder,
        claims=job_claims,
        priority=priority,
        detail=json.dumps(detail, separators=(",", ":")),
        submitted_ms=int(float(header.get("t") or 0) * 1000),
        step=bool(header.get("i")),
    )


def start(task: Any, task_id: str) -> str | None:
    """Take the job's locks; returns the reason when it was parked instead.

    Raises:
        LockNotAcquired: in eager mode (``apply()``, ``task_always_eager``),
            where a job cannot be parked, when a resource is taken.
    """
    request = task.request
    engine = engine_for(task.app)
    if getattr(request, RECHECK, None) and task.backend.get_state(task_id) in states.READY_STATES:
        return f"job {task_id} already finished; this copy is dropped"
    ticket = ticket_for(task, request, engine)
    locks = engine.locks
    pid = os.getpid()
    if not request.is_eager:
        engine.heartbeat.ensure_started()
    # Build the message to park with only when parking is likely: the claims of
    # a job blocked moments ago in this process are probably still taken.
    likely_blocked = time.monotonic() - _BLOCKED_AT.get(ticket.claims, -60.0) < CONTENDED_FOR
    result: Any = None
    if request.is_eager or not likely_blocked:
        result = locks.acquire(ticket, host=HOST, pid=pid)
        if isinstance(result, Blocked) and request.is_eager:
            raise LockNotAcquired(f"job {task_id} ({task.name}) cannot run now: {result.reason}")
    if result is None or isinstance(result, Blocked):
        result = locks.acquire(
            ticket, host=HOST, pid=pid,
            park_message=parking.message_for(task.app, request, ticket.priority, complete=False),
            queue_key=parking.queue_key(task.app, (request.delivery_info or {}).get(
                "routing_key") or task.app.conf.task_default_queue),
        )
    if isinstance(result, Acquired):
        workflow = (getattr(request, HEADER, None) or {}).get("w")
        # Read now: Celery pops the next step off request.chain when it sends it.
        _RUNNING[task_id] = Running(ticket.holder, result.tokens, workflow, result.guest,
                                    bool(request.chain))
        request.pipeline_tokens = result.tokens
        engine.heartbeat.track(ticket.holder)
        return None
    if isinstance(result, Cancelled):
        return f"job {task_id} was cancelled before it started"
    if isinstance(result, Uncovered):
        raise WorkflowError(
            f"job {task_id} runs inside workflow {result.holder}, whose locks do not cover it; "
            f"declare its resources on the workflow")
    if isinstance(result, Duplicate):
        return _duplicate(task, task_id, ticket)
    _BLOCKED_AT[ticket.claims] = time.monotonic()
    if len(_BLOCKED_AT) > 1024:
        _BLOCKED_AT.clear()
    blocked: Blocked = result
    _report_blocked(task, task_id, blocked)
    return blocked.reason


def _duplicate(task: Any, task_id: str, ticket: Ticket) -> str | None:
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
    engine = engine_for(task.app)
    found = engine.locks.explain(task_id, ticket.holder)
    pid = int(found.pid) if found.pid.isdigit() else -1
    if found.host == HOST and pid == os.getpid():
        _RUNNING[task_id] = Running(ticket.holder, found.tokens, None)
        task.request.pipeline_tokens = found.tokens
        engine.heartbeat.track(ticket.holder)
        return None
    if found.host == HOST and pid > 0 and not _alive(pid):
        engine.locks.release(ticket.holder, task_id, event=RELEASED,
                             detail='{"reason":"the process holding it is gone"}')
        return start(task, task_id)
    if task.backend.get_state(task_id) in states.READY_STATES:
        return f"job {task_id} already finished; this copy is dropped"
    request = task.request
    headers = {**(request.headers or {}), RECHECK: 1}
    task.apply_async(request.args, request.kwargs, task_id=task_id,
                     countdown=engine.settings.lease, headers=headers,
                     priority=_priority_of(request), chain=request.chain,
                     retries=request.retries or None)
    return (f"job {task_id} still holds its locks elsewhere; this copy runs again in "
            f"{engine.settings.lease:.0f} s unless that run finishes first")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def release_orphan(task: Any, task_id: str, request_dict: dict[str, Any], reason: str) -> None:
    """Release the hold of a job whose pool process died (called by the worker's main process)."""
    header = request_dict.get(HEADER) or (request_dict.get("headers") or {}).get(HEADER) or {}
    holder = header.get("w") or task_id
    detail = json.dumps({"reason": reason}, separators=(",", ":"))
    engine_for(task.app).locks.release(holder, task_id, event=RELEASED, detail=detail)


def _report_blocked(task: Any, task_id: str, blocked: Blocked) -> None:
    """Tell Flower (a ``task-blocked`` event) and, like STARTED, the result backend.

    The stream's ``blocked`` event (the store) was written by the script. The
    result backend gets the BLOCKED state only where it gets STARTED too
    (``task_track_started``): one more write per parked job otherwise.
    """
    meta = {"reason": blocked.reason, "resource": blocked.resource,
            "blocked_by": blocked.blocked_by, "position": blocked.position}
    try:
        engine_for(task.app).send_task_event("task-blocked", task.request.hostname,
                                             uuid=task_id, **meta)
        if task.track_started:
            store_blocked(task.backend, task_id, meta, task.request)
    except Exception:  # the job is parked already: a report that fails must not fail it
        logger.exception("could not report job %s as BLOCKED", task_id)


def _summary(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SUMMARY else text[: _SUMMARY - 3] + "..."


def finish(task: Any, task_id: str, status: str, retval: Any,
           retry_in: float | None = None) -> None:
    """Release the job's locks (no-op if it holds none) and record its outcome.

    A workflow keeps its hold after a step that succeeds with a step to follow,
    and after a step that retries (*retry_in*: seconds until its next attempt):
    the workflow holds its resources until its last step ends.
    """
    running = _RUNNING.pop(task_id, None)
    if running is None:
        return
    engine = engine_for(task.app)
    engine.heartbeat.untrack(running.holder)
    event = _OUTCOME_EVENTS.get(status, RELEASED)
    key = "result" if status == states.SUCCESS else "error"
    if status == states.FAILURE and _out_of_attempts(task, retval, engine):
        event = DEAD_LETTERED
        request = task.request
        deadletters.record(task.app, request, task.name, _priority_of(request),
                           _summary(retval), getattr(request, HEADER, None) or {},
                           guest=running.guest)
    detail = json.dumps({key: _summary(retval), "attempt": (task.request.retries or 0) + 1},
                        separators=(",", ":"), default=str)
    keep = 0.0
    if running.workflow and not running.guest:
        if status == states.SUCCESS and running.has_next_step:
            keep = engine.settings.workflow_gap
        elif status == states.RETRY:
            keep = engine.settings.workflow_gap + max(retry_in or 0.0, 0.0)
    # Not waiting for the reply: Redis runs the release (and its hand-off) as soon
    # as it reads it; the reply is read before this process's next lock call.
    engine.locks.release(running.holder, task_id, event=event, detail=detail, keep_seconds=keep,
                         wait=False, token=running.token)


def _out_of_attempts(task: Any, exc: Any, engine: Engine) -> bool:
    """A retriable failure after the last allowed attempt (dead-letter it)."""
    policy = retries.policy_for(task, engine.settings)
    return (isinstance(exc, BaseException) and policy.max_retries > 0
            and policy.retries(exc) and (task.request.retries or 0) >= policy.max_retries)


def call_with_retries(task: Any, body: Any, args: Any, kwargs: Any) -> Any:
    """Run the job's body; on a retriable error, retry with backoff while attempts remain."""
    try:
        return body(*args, **kwargs)
    except (Retry, Ignore, Reject):
        raise
    except Exception as exc:
        request = task.request
        if request.called_directly or request.is_eager:
            raise
        policy = retries.policy_for(task, engine_for(task.app).settings)
        done = request.retries or 0
        if not policy.retries(exc) or done >= policy.max_retries:
            raise
        # Release before the retry is published: with a short countdown the next
        # attempt could otherwise start while this one still holds the locks.
        countdown = policy.countdown(done)
        running = _RUNNING.get(request.id)
        finish(task, request.id, states.RETRY, exc, retry_in=countdown)
        try:
            raise task.retry(exc=exc, countdown=countdown,
                             max_retries=policy.max_retries) from exc
        except Retry:
            raise
        except BaseException as failed:
            # The retry was not published (Celery raises Reject): a hold kept for it
            # would wait for nothing, and the job ends here.
            _end_unpublished_retry(task, request.id, running, failed)
            raise


def _end_unpublished_retry(task: Any, task_id: str, running: Running | None,
                           failed: BaseException) -> None:
    """Release what a retry that was never published kept, and record the job FAILED.

    Celery rejects the message (no requeue): the job ends here.
    """
    holder, token = task_id, None
    if running is not None and running.workflow and not running.guest:
        holder, token = running.holder, running.token
    detail = json.dumps({"error": f"its retry could not be published: {_summary(failed)}"})
    try:
        engine_for(task.app).locks.release(holder, task_id, event=FAILED, detail=detail,
                                           token=token)
    except Exception:  # the error that matters is the one being raised
        logger.exception("could not release job %s after its retry failed", task_id)


def retry_delay(when: Any) -> float:
    """Seconds until a retry whose ``Retry.when`` is *when* (a countdown or an ETA)."""
    if isinstance(when, (int, float)) and not isinstance(when, bool):
        return float(when)
    if isinstance(when, datetime):
        # Celery reads an ETA without a time zone as UTC.
        eta = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
        return (eta - datetime.now(timezone.utc)).total_seconds()
    return 0.0


def lease_lost() -> bool:
    """Whether the running job's lease ran out (another job may hold its resources now).

    The heartbeat notices within one interval; a job doing external writes
    should check this, or better pass :func:`fencing_tokens` to the store.
    """
    from celery import current_task

    running = _RUNNING.get(getattr(getattr(current_task, "request", None), "id", "") or "")
    if running is None:
        return False
    return engine_for(current_task.app).heartbeat.is_lost(running.holder)


def fencing_tokens() -> dict[str, int]:
    """Fencing tokens of the running job's resources (resource id -> token).

    A token only grows per resource: pass it to an external store so it can
    refuse a write from a holder whose lease ran out.
    """
    from celery import current_task

    if current_task is None:
        return {}
    return dict(getattr(current_task.request, "pipeline_tokens", None) or {})


def _release_on_skipped_after_return(task_id: str | None = None, task: Any = None,
                                     state: str | None = None, retval: Any = None,
                                     **_: Any) -> None:
    """Celery skips ``after_return`` for Ignore and Reject raised by the job: release here."""
    if task_id is not None and task_id in _RUNNING and task is not None:
        finish(task, task_id, state or RELEASED, retval)


task_postrun.connect(_release_on_skipped_after_return, weak=False)
