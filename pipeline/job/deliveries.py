"""Jobs that kill their own process: redelivered a few times, then dead-lettered.

A job whose pool process dies while it runs (out of memory, a segfault, an
``os._exit``) is requeued by Celery (``task_reject_on_worker_lost``), so a job
that always kills its process would be redelivered forever. The worker's main
process sees each death (:class:`pipeline.job.request.PipelineRequest`) and counts
it in ``{pipeline}:lost:<job>``; the delivery that makes it
``pipeline_max_deliveries`` dead-letters the job with the reason "worker lost"
and fails it with :class:`pipeline.errors.JobLost` instead of requeueing it.
"""

from __future__ import annotations

import logging
from typing import Any

from pipeline.errors import JobLost
from pipeline.job import deadletter
from pipeline.messages.events import DEAD_LETTERED, emit, summary
from pipeline.messages.header import NAME, of_request
from pipeline.priority import of_request as priority_of
from pipeline.runtime.services import Services

logger = logging.getLogger(__name__)

#: Seconds a count of deaths is kept after the last one.
KEEP_COUNT = 86_400


def attempt(services: Services, request: Any) -> int:
    """Which delivery of its job *request* is: retries and deliveries whose process died.

    A message given back after its process died (a pool process killed, a
    worker stopped past its timeout) is marked redelivered; only then is the
    count of deaths read (one Redis read, off the common path).
    """
    number = (request.retries or 0) + 1 + (of_request(request).earlier_attempts or 0)
    if (getattr(request, "delivery_info", None) or {}).get("redelivered"):
        number += int(services.redis.get(services.keys.worker_lost(request.id)) or 0)
    return number


def worker_lost(services: Services, request: Any, exc: BaseException) -> JobLost | None:
    """Count a death of the process running *request*'s job; past the limit, dead-letter it.

    Args:
        services: the services of the job's app in the worker's main process.
        request: Celery's worker request (in the worker's main process).
        exc: how the process ended (billiard's ``WorkerLostError``).

    Returns:
        The error to fail the job with when it is dead-lettered, else None (the
        job is requeued as usual).
    """
    task = request.task
    key = services.keys.worker_lost(request.id)
    pipe = services.redis.pipeline(transaction=True)
    pipe.incr(key)
    pipe.expire(key, KEEP_COUNT)
    deaths = int(pipe.execute()[0])
    limit = services.settings.max_deliveries
    if deaths < limit:
        return None
    error = (f"worker lost: the process running job {request.id} died on each of its "
             f"{deaths} deliveries ({summary(exc)}); pipeline_max_deliveries is {limit}")
    context = request._context
    raw = getattr(context, NAME, None)
    deadletter.record(services, context, task.name, priority_of(context), error,
                       of_request(context), headers={NAME: raw} if raw is not None else {})
    emit(services.redis, services.keys.events, DEAD_LETTERED, request.id,
         {"error": error, "attempt": deaths}, maxlen=services.settings.events_maxlen)
    logger.info("job %s (%s) dead-lettered: %s", request.id, task.name, error)
    services.redis.delete(key)
    return JobLost(error)
