"""A finished job's result outlives a Redis outage; past the limit the job is given back.

Celery writes a job's outcome (``mark_as_done``, ``mark_as_failure``) in the
pool process right after the body, before the pipeline's ``after_return``.
The Redis result backend's own retries are short on purpose (a publisher must
hear within ``pipeline_publish_timeout`` that Redis is away,
:func:`pipeline.job.outage.bound_waits`), and its write first reads the
stored state without any retry: a job ending while Redis restarted read
``FAILURE network:ConnectionError``.

:class:`GivingBack` is the backend a :class:`~pipeline.PipelineTask` writes
through. It makes the result write (a ``SET`` of the job's meta: safe to
repeat) with :func:`pipeline.job.outage.ride_out` for up to
``pipeline_redis_outage_limit`` seconds, then lets Celery do the rest of the
outcome (a chord's counter, errbacks) once. Past the limit nothing is marked
failed: the write raises ``Reject(requeue=True)``, which Celery lets through
its tracer; the worker's main process gives the message back to the queue and
the job runs again once Redis answers (its hold is released with the reason,
or freed by its lease). The ``STARTED`` write of a job about to run waits as
long as its lock call would (:data:`pipeline.job.outage.BACKOFF`) and gives
the job back past it.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import states
from celery.backends.base import _is_request_ignore_result
from celery.exceptions import Reject

from pipeline.job import outage
from pipeline.job.protocols import JobTask

logger = logging.getLogger(__name__)


class GivingBack:
    """The app's result backend, as a pipeline job writes its outcome through it.

    Every attribute is the backend's own; the outcome writes that still fail
    after the backend's retries (Redis away past the outage limit) give the
    job back instead of failing it.
    """

    def __init__(self, backend: Any, task: JobTask) -> None:
        self._backend = backend
        self._task = task

    @property
    def _limit(self) -> float:
        return self._task.services.settings.outage_limit

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    def store_result(self, task_id: str, result: Any, state: str, traceback: Any = None,
                     request: Any = None, **kwargs: Any) -> Any:
        """Write *state* for *task_id*, riding out an outage.

        A ``STARTED`` write (nothing of the job ran yet) waits as long as a
        start does and gives the job back past it; another write (a job's own
        ``update_state``) waits up to the outage limit and raises past it.
        """
        started = state == states.STARTED
        try:
            return outage.ride_out(
                lambda: self._backend.store_result(task_id, result, state, traceback=traceback,
                                                   request=request, **kwargs),
                what=f"writing {state} of job {task_id}",
                limit=None if started else self._limit)
        except outage.OUTAGE_ERRORS as exc:
            if started and not getattr(request, "is_eager", False):
                raise Reject(f"Redis unreachable while job {task_id} started ({exc!r}): it is "
                             "requeued", requeue=True) from exc
            raise

    def mark_as_done(self, task_id: str, result: Any, request: Any = None,
                     store_result: bool = True, state: str = states.SUCCESS) -> Any:
        """Store the result, or give the job back if Redis stays away."""
        if store_result and not _is_request_ignore_result(request):
            self._store_outcome(task_id, result, state, None, request)
        return self._backend.mark_as_done(task_id, result, request, False, state)

    def mark_as_failure(self, task_id: str, exc: Any, traceback: Any = None,
                        request: Any = None, store_result: bool = True,
                        call_errbacks: bool = True, state: str = states.FAILURE) -> Any:
        """Store the failure, or give the job back if Redis stays away."""
        if store_result:
            self._store_outcome(task_id, exc, state, traceback, request)
        return self._backend.mark_as_failure(task_id, exc, traceback, request, store_result,
                                             call_errbacks, state)

    def _store_outcome(self, task_id: str, value: Any, state: str, traceback: Any,
                       request: Any) -> None:
        try:
            outage.ride_out(
                lambda: self._backend.store_result(task_id, value, state, traceback=traceback,
                                                   request=request),
                what=f"writing {state} of job {task_id}", limit=self._limit)
        except outage.OUTAGE_ERRORS as exc:
            raise self._give_back(task_id, request, exc) from exc

    def _give_back(self, task_id: str, request: Any, exc: BaseException) -> Reject:
        if getattr(request, "is_eager", False):
            raise exc
        reason = (f"given back: Redis did not answer for {self._limit:g} s "
                  f"(pipeline_redis_outage_limit) when its outcome was written")
        logger.warning("job %s (%s) %s (%r)", task_id, self._task.name, reason, exc)
        self._task.services.running.give_back(task_id, reason)
        return Reject(f"job {task_id} {reason}", requeue=True)


def giving_back(task: Any) -> GivingBack:
    """The result backend of *task* wrapped in :class:`GivingBack` (one wrapper per backend)."""
    backend = task.app.backend if task._backend is None else task._backend
    wrapper: GivingBack | None = task.__dict__.get("_giving_back")
    if wrapper is None or wrapper._backend is not backend:
        wrapper = GivingBack(backend, task)
        task.__dict__["_giving_back"] = wrapper
    return wrapper
