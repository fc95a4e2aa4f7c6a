"""Publishing a job: validate its priority and resources, stamp its header, record it.

Runs in the publishing process, before and after ``Task.apply_async`` sends
the message. Nothing is published when validation fails.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from pipeline import workflows
from pipeline.engine import engine_for
from pipeline.errors import WorkflowError
from pipeline.events import QUEUED, summary
from pipeline.header import NAME, JobHeader, in_options
from pipeline.priority import DEFAULT_PRIORITY, Priority, parse_priority
from pipeline.resources import (
    RESOURCE_OPTIONS,
    Demand,
    check_id,
    check_option_names,
    claims,
    declared_models,
    demand_from_options,
)


def prepare(task: Any, options: dict[str, Any], task_id: str | None) -> str:
    """Validate priority and resources of an ``apply_async`` call; put them in its header.

    Stamps a whole chain when *task* is its first step (see
    :mod:`pipeline.workflows`), and makes a job published from inside a running
    job a guest of that job's hold when the hold covers it.

    Returns:
        The task id to publish with (the given one, or a new one).

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
    raw = in_options(options)
    if raw and (raw.get("workflow") or not any(n in options for n in RESOURCE_OPTIONS)):
        # A later step of a workflow (its resources are in the stamped union), or
        # a job published again (retry, requeue) with the header it had.
        stamped = JobHeader.decode(raw)
        for name in RESOURCE_OPTIONS:
            options.pop(name, None)
        if stamped.is_later_step and options.get("retries") is None:
            # The next step of a started workflow holds its locks already: like a
            # hand-off it goes to the front, not behind the queue (its level
            # stays in the header for the records).
            options["priority"] = int(Priority.CRITICAL)
        return task_id
    check_option_names(options)
    demand = demand_from_options(options, *declared_models(task))
    now = time.time()
    if options.get("chain"):
        header = workflows.stamp_chain(task.app, options, demand, task_id, priority,
                                       submitted_at=now, name=workflow_name)
    else:
        parent = _running_parent(task, demand)
        if parent is not None:
            header = JobHeader.of(demand, submitted_at=now).but(workflow=parent)
        elif workflow_name is not None:
            # workflow(one_step, name=...): a workflow of one step, recorded by its name.
            header = JobHeader.of(demand, submitted_at=now, workflow_name=str(workflow_name),
                                  steps=1, step=1).but(workflow=task_id)
        else:
            header = JobHeader.of(demand, submitted_at=now)
    headers[NAME] = header.encode()
    options["headers"] = headers
    return task_id


def record_queued(task: Any, task_id: str, args: Any, options: dict[str, Any]) -> None:
    """Record the ``queued`` event of a job just published (buffered, off the publish path)."""
    engine = engine_for(task.app)
    if task.app.conf.task_always_eager or not engine.settings.store_enabled:
        return
    header = JobHeader.decode(in_options(options))
    priority = header.priority if header.priority is not None else options.get("priority")
    engine.emitter.add(QUEUED, task_id, {
        "task": task.name, "priority": int(DEFAULT_PRIORITY) if priority is None else priority,
        "user": header.user, "project": header.project,
        "models": list(header.models + header.shared_models),
        "workflow": header.workflow, "workflow_name": header.workflow_name,
        "workflow_steps": header.steps, "step": header.step,
        "args": summary(args), "attempt": int(options.get("retries") or 0) + 1,
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
    engine = engine_for(task.app)
    running = engine.running.get(getattr(request, "id", None))
    if running is None:
        return None
    wanted = {c.resource for c in claims(demand, engine.settings)} - {"global"}
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
