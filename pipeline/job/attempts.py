"""Running a job's attempts: the body, and its retry when it fails retriably.

The policy (how many attempts, which errors, which delays) is
:mod:`pipeline.job.retries`; this module carries it out in the pool process: it
releases the job's locks before the retry is published, and ends the job
cleanly when the retry cannot be published.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from datetime import datetime, timezone
from functools import partial, wraps
from typing import Any

from celery import states
from celery.exceptions import Ignore, Reject, Retry

from pipeline.job import retries
from pipeline.job.finishing import finish
from pipeline.job.protocols import JobTask
from pipeline.job.release import release_hold
from pipeline.messages.context import JobContext
from pipeline.messages.events import FAILED, summary
from pipeline.runtime.running import RunningJob

logger = logging.getLogger(__name__)


def with_retries(body: Any) -> Any:
    """A task's ``run``: *body* (a function, or a staticmethod of one) under
    :func:`call_with_retries`. A body wrapped already is returned as it is.

    The task comes in positionally only: a body may take an argument named
    ``task`` by keyword (Celery's own ``celery.starmap`` does).
    """
    if getattr(body, "pipeline_attempts", False):
        return body
    if isinstance(body, staticmethod):
        func = body.__func__

        def run(task: JobTask, /, *args: Any, **kwargs: Any) -> Any:
            return call_with_retries(task, func, args, kwargs)
    else:
        func = body

        def run(task: JobTask, /, *args: Any, **kwargs: Any) -> Any:
            return call_with_retries(task, partial(func, task), args, kwargs)
    run = wraps(func)(run)
    run.pipeline_attempts = True  # type: ignore[attr-defined]
    return run


def call_with_retries(task: JobTask, body: Callable[..., Any], args: Any, kwargs: Any) -> Any:
    """Run the job's body; on a retriable error, retry with backoff while attempts remain.

    Arguments that do not bind to the body (a call with the wrong arguments)
    fail the job at once: no retry can cure them.

    Once the body returns or raises, what the job publishes is Celery's
    continuation of its canvas, not a child of the job (see
    :meth:`pipeline.runtime.running.RunningJobs.in_body`).
    """
    services = task.services
    try:
        return body(*args, **kwargs)
    except (Retry, Ignore, Reject):
        raise
    except Exception as exc:
        request: JobContext = task.request
        if request.called_directly or request.is_eager:
            raise
        policy = retries.policy_for(task, services.settings)
        done = request.retries or 0
        if not policy.retries(exc) or done >= policy.max_retries:
            raise
        if isinstance(exc, TypeError) and not _binds(body, args, kwargs):
            raise
        # Release before the retry is published: with a short countdown the next
        # attempt could otherwise start while this one still holds the locks.
        countdown = policy.countdown(done)
        running = services.running.get(request.id)
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
    finally:
        services.running.body_done(task.request.id)


def _binds(body: Callable[..., Any], args: Any, kwargs: Any) -> bool:
    """Whether *args* and *kwargs* bind to *body*'s parameters (True when it has no signature)."""
    try:
        inspect.signature(body).bind(*(args or ()), **(kwargs or {}))
    except TypeError:
        return False
    except ValueError:
        return True
    return True


def _end_unpublished_retry(task: JobTask, task_id: str, running: RunningJob | None,
                           failed: BaseException) -> None:
    """Release what a retry that was never published kept, and record the job FAILED.

    Celery rejects the message (no requeue): the job ends here.
    """
    holder, token = task_id, None
    if running is not None and running.workflow and not running.guest:
        holder, token = running.holder, running.token
    try:
        release_hold(task.services.locks, holder, task_id, event=FAILED, token=token,
                     detail={"error": f"its retry could not be published: {summary(failed)}"})
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


def retry_in(einfo: Any) -> float:
    """Seconds until the retry described by ``on_retry``'s *einfo*.

    ``einfo.exception`` is the ``Retry``, or billiard's ExceptionWithTraceback
    around it.
    """
    raised = getattr(einfo, "exception", None)
    if not isinstance(raised, Retry):
        raised = getattr(raised, "exc", None)
    return retry_delay(raised.when if isinstance(raised, Retry) else None)
