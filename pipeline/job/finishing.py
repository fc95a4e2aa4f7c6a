"""Finishing a job: release its locks, hand them on, record its outcome.

Runs in the pool process after the job body (``after_return``, ``on_retry``,
and the ``task_postrun`` signal for the paths where Celery skips
``after_return``), and in the worker's main process for a job whose pool
process died (:func:`release_orphan`). The release script hands the freed
resources to parked jobs in the same Redis call.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import states

from pipeline.job import deadletter, deliveries, retries
from pipeline.job.outage import OUTAGE_ERRORS
from pipeline.job.protocols import JobTask
from pipeline.job.release import release_hold
from pipeline.messages.context import JobContext
from pipeline.messages.events import (
    COMPLETED,
    DEAD_LETTERED,
    FAILED,
    LOCK_LOST,
    RELEASED,
    RETRIED,
    emit,
    json_summary,
    summary,
)
from pipeline.messages.header import NAME, JobHeader, of_request
from pipeline.priority import of_request as priority_of
from pipeline.runtime.running import RunningJob
from pipeline.runtime.services import Services

logger = logging.getLogger(__name__)
_OUTCOME_EVENTS = {states.SUCCESS: COMPLETED, states.FAILURE: FAILED, states.RETRY: RETRIED}


def finish(task: JobTask, task_id: str, status: str, retval: Any,
           retry_in: float | None = None) -> None:
    """Release the job's locks (no-op if it holds none) and record its outcome.

    A workflow keeps its hold after a step that succeeds with a step to follow,
    and after a step that retries (*retry_in*: seconds until its next attempt):
    the workflow holds its resources until its last step ends.
    """
    services = task.services
    given_back = services.running.given_back(task_id)
    running = services.running.pop(task_id)
    if running is None:
        return
    lost = services.heartbeat.is_lost(running.holder)
    services.heartbeat.untrack(running.holder)
    if given_back is not None:
        logger.info("job %s (%s) %s", task_id, task.name, given_back)
        _release_given_back(services, task_id, running, given_back)
        return
    event = _OUTCOME_EVENTS.get(status, RELEASED)
    key = "result" if status == states.SUCCESS else "error"
    request: JobContext = task.request
    attempt = deliveries.attempt(services, request)
    if status == states.FAILURE and _out_of_attempts(task, retval, services):
        event = DEAD_LETTERED
        deadletter.record(services, request, task.name, priority_of(request),
                          summary(retval), of_request(request), guest=running.guest)
        logger.info("job %s (%s) dead-lettered after attempt %d: %s", task_id, task.name,
                    attempt, summary(retval))
    said = json_summary(retval) if status == states.SUCCESS else summary(retval)
    outcome: dict[str, Any] = {key: said, "attempt": attempt}
    if lost:
        outcome["lock_lost"] = True
        _record_lock_lost(services, task_id, running)
    keep = 0.0
    if running.workflow and not running.guest:
        if status == states.SUCCESS and running.has_next_step:
            keep = services.settings.workflow_gap
        elif status == states.RETRY:
            keep = services.settings.workflow_gap + max(retry_in or 0.0, 0.0)
    # Not waiting for the reply: Redis runs the release (and its hand-off) as soon
    # as it reads it; the reply is read before this process's next lock call. A
    # Redis away (a crash, a failover) is ridden out up to the outage limit, so
    # the history and the store agree with the stored result once it is back.
    try:
        release_hold(services.locks, running.holder, task_id, event=event, detail=outcome,
                     keep_seconds=keep, wait=False, token=running.token,
                     limit=services.settings.outage_limit)
    except OUTAGE_ERRORS as exc:
        logger.warning("could not release job %s, Redis is unreachable (%r): its lease "
                       "frees its resources", task_id, exc)


def _release_given_back(services: Services, task_id: str, running: RunningJob,
                        reason: str) -> None:
    """The job's message goes back to the queue (Redis stayed away too long): free its hold.

    One try: Redis was just found unreachable for the whole outage limit; if
    it still is, the lease frees the resources before the job runs again.
    """
    try:
        release_hold(services.locks, running.holder, task_id, event=RELEASED,
                     detail={"reason": reason}, token=running.token, backoff=())
    except OUTAGE_ERRORS:
        logger.warning("could not release job %s (%s): its lease frees its resources",
                       task_id, reason)


def _record_lock_lost(services: Services, task_id: str, running: RunningJob) -> None:
    """The job ran on after its lease ran out (its process was stopped or starved): say so.

    Another job may have held its resources meanwhile; its release (fenced by
    its token) frees nothing of theirs, and its outcome carries ``lock_lost``.
    """
    try:
        emit(services.redis, services.keys.events, LOCK_LOST, task_id,
             {"holder": running.holder, "resources": sorted(running.tokens),
              "reason": "the lease ran out while the job ran"},
             maxlen=services.settings.events_maxlen)
    except OUTAGE_ERRORS:  # its outcome still says so
        logger.warning("could not record that job %s lost its lease", task_id)


def _out_of_attempts(task: JobTask, exc: Any, services: Services) -> bool:
    """A retriable failure after the last allowed attempt (dead-letter it)."""
    policy = retries.policy_for(task, services.settings)
    return (isinstance(exc, BaseException) and policy.max_retries > 0
            and policy.retries(exc) and (task.request.retries or 0) >= policy.max_retries)


def release_orphan(services: Services, task_id: str, request_dict: dict[str, Any],
                   reason: str) -> None:
    """Release the hold of a job whose pool process died (called by the worker's main process)."""
    raw = request_dict.get(NAME) or (request_dict.get("headers") or {}).get(NAME)
    holder = JobHeader.decode(raw).workflow or task_id
    release_hold(services.locks, holder, task_id, event=RELEASED, detail={"reason": reason})


def release_on_skipped_after_return(task_id: str | None = None, task: Any = None,
                                    state: str | None = None, retval: Any = None,
                                    **_: Any) -> None:
    """``task_postrun`` handler: Celery skips ``after_return`` for Ignore and Reject.

    Connected by :func:`pipeline.app.install.install`.
    """
    if task_id is None or not hasattr(task, "services"):  # not a pipeline task
        return
    if task_id in task.services.running:
        finish(task, task_id, state or RELEASED, retval)
