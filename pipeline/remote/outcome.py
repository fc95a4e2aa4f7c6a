"""An agent's outcome, where Celery users look: the result, the canvas, the record.

For a job a worker ran, Celery's tracer publishes the callbacks and the next
step of the chain, stores the result (counting a chord's part), and on a
failure stores the error, fails the rest of the chain and calls the errbacks;
the pipeline's ``after_return`` then releases the locks (a workflow keeps them
for its next step). :func:`complete` and :func:`fail` do the same for a job an
agent ran, in the API process, after ending its lease
(:func:`pipeline.remote.reports.end`). ``AsyncResult(id).get()`` then returns
the agent's result, or raises :class:`~pipeline.errors.AgentJobFailed`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import Celery, group
from celery.app.task import Context
from celery.canvas import maybe_signature

from pipeline.errors import AgentJobFailed
from pipeline.job import deadletter, retries, workflows
from pipeline.job.release import release_hold
from pipeline.locks.leases import Ended
from pipeline.messages.events import (
    COMPLETED,
    DEAD_LETTERED,
    FAILED,
    RETRIED,
    json_summary,
    summary,
)
from pipeline.messages.header import NAME
from pipeline.priority import PRIORITY_STEPS, level_of
from pipeline.remote.claims import worker_name
from pipeline.remote.message import PoolMessage
from pipeline.runtime.services import Services

logger = logging.getLogger(__name__)

#: What :func:`fail` did with the job.
RETRIED_OUTCOME, FAILED_OUTCOME, DEAD_LETTERED_OUTCOME = "retried", "failed", "dead_lettered"


class _Job:
    """An ended lease with its message read: what both outcomes need."""

    def __init__(self, services: Services, ended: Ended) -> None:
        self.services = services
        self.ended = ended
        self.message = PoolMessage.decode(ended.message)
        self.task = services.app.tasks.get(self.message.task)
        self.hostname = worker_name(ended.agent, ended.pool)
        ignored = self.message.headers.get("ignore_result")
        if ignored is None:
            ignored = bool(getattr(self.task, "ignore_result", False))
        self.request: Context = self.message.request(self.hostname, ignore_result=ignored)
        self.header = self.message.header
        self.backend = getattr(self.task, "backend", None) or services.app.backend
        self.runtime = round(time.time() - (ended.started or ended.claimed), 6)

    @property
    def attempt(self) -> int:
        return self.message.retries + 1 + (self.header.earlier_attempts or 0)

    def detail(self, **fields: Any) -> dict[str, Any]:
        return {**fields, "attempt": self.attempt, "runtime": self.runtime,
                "agent": self.ended.agent, "pool": self.ended.pool}

    def holds_workflow(self) -> bool:
        """A step of a workflow, which holds its locks under the workflow's id."""
        return bool(self.header.workflow) and self.ended.holder == self.header.workflow

    def release(self, event: str, detail: dict[str, Any], keep: float = 0.0) -> None:
        release_hold(self.services.locks, self.ended.holder, self.ended.job_id, event=event,
                     detail=detail, keep_seconds=keep, token=self.ended.token)

    def event(self, event_type: str, **fields: Any) -> None:
        try:
            self.services.send_task_event(event_type, self.hostname,
                                          uuid=self.ended.job_id, **fields)
        except Exception:  # Flower's view must not cost the outcome
            logger.exception("could not send %s of job %s", event_type, self.ended.job_id)


def continue_canvas(app: Celery, retval: Any, request: Context) -> None:
    """Publish the callbacks and the next step of the chain, as Celery's tracer does."""
    parent_id, root_id = request.id, request.root_id or request.id
    priority = ((request.delivery_info or {}).get("priority")
                if app.conf.task_inherit_parent_priority else None)
    callbacks = request.callbacks
    if callbacks:
        if len(callbacks) > 1:
            sigs: list[Any] = []
            groups: list[Any] = []
            for item in callbacks:
                sig = maybe_signature(item, app=app)
                (groups if isinstance(sig, group) else sigs).append(sig)
            for group_ in groups:
                group_.apply_async((retval,), parent_id=parent_id, root_id=root_id,
                                   priority=priority)
            if sigs:
                group(sigs, app=app).apply_async((retval,), parent_id=parent_id,
                                                 root_id=root_id, priority=priority)
        else:
            maybe_signature(callbacks[0], app=app).apply_async(
                (retval,), parent_id=parent_id, root_id=root_id, priority=priority)
    chain = request.chain
    if chain:
        maybe_signature(chain[-1], app=app).apply_async(
            (retval,), chain=chain[:-1], parent_id=parent_id, root_id=root_id,
            priority=priority)


def complete(services: Services, ended: Ended, result: Any) -> None:
    """Record the agent's result: the canvas goes on, the result is stored, the locks go.

    A workflow step with a step after it keeps the workflow's locks for that
    step (``pipeline_workflow_gap``), as on a worker.
    """
    job = _Job(services, ended)
    keep = 0.0
    if job.holds_workflow() and workflows.continues(job.request.chain, job.header.workflow):
        keep = services.settings.workflow_gap
    continue_canvas(services.app, result, job.request)
    job.backend.mark_as_done(ended.job_id, result, job.request)
    job.release(COMPLETED, job.detail(result=json_summary(result)), keep)
    job.event("task-succeeded", result=summary(result), runtime=job.runtime)


def fail(services: Services, ended: Ended, error: str, *, retry: bool,
         traceback: str | None = None) -> str:
    """Record the agent's failure: retried while attempts remain, else failed.

    With *retry*, the job runs again after the task's backoff (its retry
    policy, :mod:`pipeline.job.retries`) while attempts remain, and is
    dead-lettered after the last one; without it, it fails at once. A failed
    job's chain fails with it and its errbacks are called, as on a worker.

    Returns:
        ``retried``, ``failed`` or ``dead_lettered``.
    """
    job = _Job(services, ended)
    exc = AgentJobFailed(error)
    policy = retries.policy_for(job.task, services.settings)
    done = job.message.retries
    if retry and done < policy.max_retries:
        countdown = policy.countdown(done)
        keep = services.settings.workflow_gap + countdown if job.holds_workflow() else 0.0
        # Released before the next attempt is queued: it must not find this one's hold.
        job.release(RETRIED, job.detail(error=summary(error), countdown=countdown), keep)
        level = PRIORITY_STEPS.index(int(level_of(job.message.priority))) + 1
        services.leases.delay(job.message.queue, level, job.message.next_attempt(),
                              time.time() + countdown)
        job.backend.mark_as_retry(ended.job_id, exc, traceback, request=job.request)
        job.event("task-retried", exception=repr(exc), traceback=traceback or "")
        return RETRIED_OUTCOME
    dead = retry and policy.max_retries > 0
    if dead:
        raw = job.message.headers.get(NAME)
        deadletter.record(services, job.request, job.message.task, job.message.priority,
                          summary(error), job.header, headers={NAME: raw} if raw else {})
        logger.info("job %s (%s) dead-lettered after attempt %d (agent %s): %s",
                    ended.job_id, job.message.task, job.attempt, ended.agent, summary(error))
    job.backend.mark_as_failure(ended.job_id, exc, traceback, request=job.request,
                                call_errbacks=True)
    job.release(DEAD_LETTERED if dead else FAILED, job.detail(error=summary(error)))
    job.event("task-failed", exception=repr(exc), traceback=traceback or "")
    return DEAD_LETTERED_OUTCOME if dead else FAILED_OUTCOME
