"""Finishing a job: release its locks, hand them on, record its outcome.

Runs in the pool process after the job body (``after_return``, ``on_retry``,
and the ``task_postrun`` signal for the paths where Celery skips
``after_return``), and in the worker's main process for a job whose pool
process died (:func:`release_orphan`). The release script hands the freed
resources to parked jobs in the same Redis call.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from celery import states

from pipeline.job import deadletter, retries
from pipeline.messages.events import (
    COMPLETED,
    DEAD_LETTERED,
    FAILED,
    LOCK_LOST,
    RELEASED,
    RETRIED,
    compact_json,
    emit,
    summary,
)
from pipeline.messages.header import NAME, JobHeader, of_request
from pipeline.priority import of_request as priority_of
from pipeline.runtime.running import RunningJob
from pipeline.runtime.services import Services, services_for

logger = logging.getLogger(__name__)
#: Seconds between tries of a release while Redis does not answer (about 8 s in all).
OUTAGE_BACKOFF = (0.25, 0.5, 1.0, 2.0, 4.0)
_OUTCOME_EVENTS = {states.SUCCESS: COMPLETED, states.FAILURE: FAILED, states.RETRY: RETRIED}


def finish(task: Any, task_id: str, status: str, retval: Any,
           retry_in: float | None = None) -> None:
    """Release the job's locks (no-op if it holds none) and record its outcome.

    A workflow keeps its hold after a step that succeeds with a step to follow,
    and after a step that retries (*retry_in*: seconds until its next attempt):
    the workflow holds its resources until its last step ends.
    """
    services = services_for(task.app)
    running = services.running.pop(task_id)
    if running is None:
        return
    lost = services.heartbeat.is_lost(running.holder)
    services.heartbeat.untrack(running.holder)
    event = _OUTCOME_EVENTS.get(status, RELEASED)
    key = "result" if status == states.SUCCESS else "error"
    request = task.request
    if status == states.FAILURE and _out_of_attempts(task, retval, services):
        event = DEAD_LETTERED
        header = of_request(request)
        deadletter.record(task.app, request, task.name, priority_of(request),
                           summary(retval), header, guest=running.guest)
    outcome: dict[str, Any] = {key: summary(retval), "attempt": (request.retries or 0) + 1}
    if lost:
        outcome["lock_lost"] = True
        _record_lock_lost(services, task_id, running)
    detail = compact_json(outcome)
    keep = 0.0
    if running.workflow and not running.guest:
        if status == states.SUCCESS and running.has_next_step:
            keep = services.settings.workflow_gap
        elif status == states.RETRY:
            keep = services.settings.workflow_gap + max(retry_in or 0.0, 0.0)
    # Not waiting for the reply: Redis runs the release (and its hand-off) as soon
    # as it reads it; the reply is read before this process's next lock call.
    try:
        services.locks.release(running.holder, task_id, event=event, detail=detail,
                             keep_seconds=keep, wait=False, token=running.token)
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        _release_after_outage(services, task_id, running, keep)


def _release_after_outage(services: Services, task_id: str, running: RunningJob,
                          keep: float) -> None:
    """Redis did not take the release (it restarts): send it again once Redis is back.

    The lock caller keeps a call it could not send and sends it first on its
    next connection; a release without an event, made until one goes through,
    is that connection. Past the backoff the lease frees the resources.
    """
    for delay in (*OUTAGE_BACKOFF, None):
        try:
            services.locks.release(running.holder, task_id, keep_seconds=keep, token=running.token)
            return
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            if delay is None:
                logger.warning("could not release job %s, Redis is unreachable (%r): its lease "
                               "frees its resources", task_id, exc)
                return
            time.sleep(delay)


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
    except (redis.ConnectionError, redis.TimeoutError, OSError):  # its outcome still says so
        logger.warning("could not record that job %s lost its lease", task_id)


def _out_of_attempts(task: Any, exc: Any, services: Services) -> bool:
    """A retriable failure after the last allowed attempt (dead-letter it)."""
    policy = retries.policy_for(task, services.settings)
    return (isinstance(exc, BaseException) and policy.max_retries > 0
            and policy.retries(exc) and (task.request.retries or 0) >= policy.max_retries)


def release_orphan(task: Any, task_id: str, request_dict: dict[str, Any], reason: str) -> None:
    """Release the hold of a job whose pool process died (called by the worker's main process)."""
    raw = request_dict.get(NAME) or (request_dict.get("headers") or {}).get(NAME)
    holder = JobHeader.decode(raw).workflow or task_id
    detail = compact_json({"reason": reason})
    services_for(task.app).locks.release(holder, task_id, event=RELEASED, detail=detail)


def release_on_skipped_after_return(task_id: str | None = None, task: Any = None,
                                    state: str | None = None, retval: Any = None,
                                    **_: Any) -> None:
    """``task_postrun`` handler: Celery skips ``after_return`` for Ignore and Reject.

    Connected by :func:`pipeline.app.install.install`.
    """
    if task_id is None or task is None or not hasattr(task, "app"):
        return
    if task_id in services_for(task.app).running:
        finish(task, task_id, state or RELEASED, retval)
