"""The worker-side request of pipeline jobs: releases for children that died.

A job whose process keeps dying is dead-lettered after ``pipeline_max_deliveries``
deliveries (:mod:`pipeline.job.deliveries`).

Celery runs ``after_return`` in the pool process, which cannot release when
the OS killed it (``kill -9``, out of memory, hard time limit, revoke with
terminate). The worker's main process learns of those deaths first; it
releases the job's hold right away, before the message is requeued, instead
of leaving the resources blocked until the lease runs out.
"""

from __future__ import annotations

import logging
from typing import Any

from billiard.einfo import ExceptionInfo, ExceptionWithTraceback
from billiard.exceptions import Terminated, TimeLimitExceeded, WorkerLostError
from celery.worker.request import Request

from pipeline.job.deliveries import worker_lost
from pipeline.job.finishing import release_orphan
from pipeline.runtime.services import Services, services_for

logger = logging.getLogger(__name__)
#: Exceptions meaning the pool process running the job is gone.
CHILD_GONE = (WorkerLostError, Terminated, TimeLimitExceeded, SystemExit, KeyboardInterrupt)


class PipelineRequest(Request):  # type: ignore[misc]
    """Request class of :class:`pipeline.job.task.PipelineTask`."""

    @property
    def services(self) -> Services:
        """The per-process services of the job's app (in the worker's main process)."""
        return services_for(self.task.app)

    def on_timeout(self, soft: bool, timeout: float) -> None:
        """Release on a hard time limit: the pool kills the child running the job."""
        if not soft:
            release_orphan(self.services, self.id, self.request_dict,
                           f"hard time limit ({timeout}s) exceeded")
        super().on_timeout(soft, timeout)

    def on_failure(self, exc_info: Any, send_failed_event: bool = True,
                   return_ok: bool = False) -> Any:
        """Release when the child died before it could (then let Celery requeue or fail)."""
        exc = exc_info.exception
        if isinstance(exc, ExceptionWithTraceback):
            exc = exc.exc
        if isinstance(exc, CHILD_GONE):
            release_orphan(self.services, self.id, self.request_dict,
                           f"pool process lost: {exc!r}")
            if self._process_died(exc):
                try:
                    lost = worker_lost(self.services, self, exc)
                except Exception:  # Redis unreachable: requeue as usual, count next time
                    logger.exception("could not count the lost delivery of job %s", self.id)
                    lost = None
                if lost is not None:  # dead-lettered: fail it instead of requeueing it again
                    exc_info = _info_of(lost, exc)
        return super().on_failure(exc_info, send_failed_event, return_ok)

    def _process_died(self, exc: BaseException) -> bool:
        """Whether the process died running the job (not killed on purpose by a revoke)."""
        if isinstance(exc, WorkerLostError):
            return True
        return isinstance(exc, SystemExit | KeyboardInterrupt) and not (
            self._already_cancelled or self._already_revoked)


def _info_of(error: BaseException, cause: BaseException) -> ExceptionInfo:
    """Celery's exception info for *error*, raised from *cause*."""
    try:
        raise error from cause
    except BaseException:
        return ExceptionInfo()
