"""Publishing a job: validate its priority and resources, stamp its header, record it.

Runs in the publishing process, before and after ``Task.apply_async`` sends
the message. Nothing is published when validation fails.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from pipeline.errors import ServiceError, WorkflowError
from pipeline.job import canvas, outage, pools, workflows
from pipeline.job.protocols import JobTask
from pipeline.locks.resources import (
    RESOURCE_OPTIONS,
    Demand,
    check_id,
    check_option_names,
    claims,
    declared_models,
    demand_from_options,
)
from pipeline.messages.events import QUEUED, json_summary
from pipeline.messages.header import FRONT, NAME, JobHeader, in_options
from pipeline.priority import DEFAULT_PRIORITY, parse_priority
from pipeline.runtime.checks import redact
from pipeline.runtime.net import HOST


def prepare(task: JobTask, options: dict[str, Any], task_id: str | None) -> tuple[str, JobHeader]:
    """Validate priority and resources of an ``apply_async`` call; put them in its header.

    Stamps a whole chain when *task* is its first step (see
    :mod:`pipeline.job.workflows`), and makes a job published from inside a running
    job a guest of that job's hold when the hold covers it. A job for an agent
    pool (``agent_pool``, :mod:`pipeline.job.pools`) goes to the pool's queue.

    Returns:
        The task id to publish with (the given one, or a new one), and the
        job's header.

    Raises:
        InvalidJobError, WorkflowError: before anything is published.
    """
    priority = options.get("priority")
    if priority is not None:
        priority = options["priority"] = parse_priority(priority)
    elif "priority" in options or (task.priority is None
                                   and task.app.conf.task_default_priority is None):
        # None means the default: left as None, kombu would publish it at 0, the
        # most urgent level on Redis.
        default = task.priority if task.priority is not None else (
            task.app.conf.task_default_priority)
        priority = options["priority"] = int(DEFAULT_PRIORITY if default is None else default)
    # Job ids are stored in the lock records: no control characters.
    task_id = check_id("task_id", task_id) if task_id else str(uuid.uuid4())
    headers = dict(options.get("headers") or {})
    workflow_name = options.pop("workflow_name", None)
    pool = pools.pool_of(task, options)
    placed = _placement(pool, options)
    raw = in_options(options)
    if raw and (raw.get("workflow") or not any(n in options for n in RESOURCE_OPTIONS)):
        # A later step of a workflow (its resources are in the stamped union), or
        # a job published again (retry, requeue) with the header it had.
        stamped = JobHeader.decode(raw)  # a header this release cannot read is refused here
        for name in RESOURCE_OPTIONS:
            options.pop(name, None)
        if stamped.pool is not None or pool is not None:
            stamped = stamped.but(pool=pool, not_before=placed.get("not_before"),
                                  expires_at=placed.get("expires_at"))
            headers[NAME] = stamped.encode()
            options["headers"] = headers
        if stamped.is_later_step and options.get("retries") is None:
            # The next step of a started workflow holds its locks already: like a
            # hand-off it goes to the front of the queue, at the priority it was
            # given (see pipeline.broker.transport).
            options["headers"] = {**headers, FRONT: 1}
        return task_id, stamped
    check_option_names(options)
    if any(options.get(field) for field in canvas.LATER):
        canvas.check(task.app, options)
    demand = demand_from_options(options, *declared_models(task))
    now = time.time()
    header = None
    if options.get("chain"):
        header = workflows.stamp_chain(task.app, options, demand, task_id, priority,
                                       submitted_at=now, name=workflow_name)
    if header is None:
        header = _own_header(task, demand, task_id, now, workflow_name, pool is not None)
    if pool is not None:
        header = header.but(pool=pool, **placed)
    headers[NAME] = header.encode()
    options["headers"] = headers
    return task_id, header


def _placement(pool: str | None, options: dict[str, Any]) -> dict[str, float]:
    """A pool job's ``not_before`` and ``expires_at`` header fields (none for other jobs)."""
    if pool is None:
        return {}
    not_before, expires_at = pools.times_of(options)
    found = {"not_before": not_before, "expires_at": expires_at}
    return {name: value for name, value in found.items() if value is not None}


def _own_header(task: JobTask, demand: Demand, task_id: str, now: float,
                workflow_name: Any, to_pool: bool = False) -> JobHeader:
    """The header of a job that starts no workflow of several steps.

    A job for an agent pool takes its own locks: no agent runs under a
    worker's hold.
    """
    parent = None if to_pool else _running_parent(task, demand)
    if parent is not None:
        return JobHeader.of(demand, submitted_at=now).but(workflow=parent)
    if workflow_name is not None:
        # workflow(one_step, name=...): a workflow of one step, recorded by its name.
        return JobHeader.of(demand, submitted_at=now, workflow_name=str(workflow_name),
                            steps=1, step=1).but(workflow=task_id)
    return JobHeader.of(demand, submitted_at=now)


def not_published(task: JobTask, task_id: str, exc: Exception) -> Exception:
    """The error to raise for a publish that failed with *exc*.

    A Redis that does not answer becomes a ``ServiceError`` naming the broker;
    anything else is raised as it is.
    """
    cause = outage.unreachable(exc)
    if cause is None:
        return exc
    url = redact(str(task.app.conf.broker_url))
    return ServiceError(
        f"job {task_id} ({task.name}) was not published: the broker {url} did not answer "
        f"within pipeline_publish_timeout ({task.services.settings.publish_timeout:g} s)"
        f" ({str(cause).strip()}); nothing was published")


def record_queued(task: JobTask, task_id: str, args: Any, kwargs: Any,
                  options: dict[str, Any], header: JobHeader, sent_at: float) -> None:
    """Record the ``queued`` event of a job just published (buffered, off the publish path).

    *sent_at* is when the publish began: a worker may park the job within
    milliseconds, and its ``blocked`` event must come after this one.
    """
    services = task.services
    if task.app.conf.task_always_eager or not services.settings.store_enabled:
        return
    priority = header.priority if header.priority is not None else options.get("priority")
    services.emitter.add(QUEUED, task_id, {
        "task": task.name, "priority": int(DEFAULT_PRIORITY) if priority is None else priority,
        "user": header.user, "project": header.project,
        "models": list(header.models + header.shared_models),
        "workflow": header.workflow, "workflow_name": header.workflow_name,
        "workflow_steps": header.steps, "step": header.step,
        "args": json_summary(list(args or ())),
        "kwargs": json_summary(dict(kwargs or {})),
        "attempt": int(options.get("retries") or 0) + 1 + (header.earlier_attempts or 0),
        "host": HOST, "pool": header.pool,
    }, time_ms=int(sent_at * 1000))


def _running_parent(task: JobTask, demand: Demand) -> str | None:
    """The hold a job published from inside a running job runs under, if any.

    A job whose resources the running job's hold covers runs as its guest, so
    a parent waiting on its child never deadlocks on its own locks. A job
    that shares nothing (but a global slot) with it is independent.

    Raises:
        WorkflowError: the job shares some resources with the running job but
            needs others its hold lacks (it would wait on its own parent).
    """
    services = task.services
    if not services.running or task.app.conf.task_always_eager:
        # No job runs here (a client publishing), or an eager call, which runs
        # inline under its parent's hold (see pipeline.job.starting).
        return None
    from celery import current_task

    request = getattr(current_task, "request", None)
    running = services.running.in_body(getattr(request, "id", None))
    if running is None:
        return None
    wanted = {c.resource for c in claims(demand, services.settings)} - {"global"}
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
