"""PipelineTask: the Celery ``Task`` base class that takes a job's locks.

``apply_async`` validates the priority and the declared resources before
anything is published. ``before_start`` takes every lock of the job in one Lua
call, or parks the job (acknowledged, BLOCKED, woken by a release).
``after_return`` and ``on_retry`` release; a child killed by the OS is covered
by the lease running out.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from celery import Task

from pipeline.job import attempts, finishing, pools, publishing, results, starting
from pipeline.job.notrun import NotRun
from pipeline.locks.resources import check_models
from pipeline.runtime.services import Services, services_for


class PipelineTask(Task):  # type: ignore[misc]
    """Base class of pipeline jobs: ``@app.task(base=PipelineTask, models=("bert",))``.

    Class options:
        models: models every call of the task writes (exclusive).
        shared_models: models every call only reads (shared with other readers).
        max_retries, backoff, backoff_max, jitter: the retry policy; unset
            options take the ``pipeline_retry_*`` settings.
        retry_for, dont_retry_for: which exceptions are retried (default: any
            Exception but the pipeline's own errors).
        agent_pool: the agent pool every call goes to (agents claim its jobs
            over HTTP, :mod:`pipeline.remote`); None (default) = a Celery worker.
    """

    abstract = True
    Request = "pipeline.job.request:PipelineRequest"
    models: ClassVar[tuple[str, ...]] = ()
    shared_models: ClassVar[tuple[str, ...]] = ()
    # Retry options; None takes the pipeline_retry_* setting (see pipeline.job.retries).
    # (Celery's own retry_backoff* options belong to its autoretry_for, not used here.)
    backoff: ClassVar[float | None] = None
    backoff_max: ClassVar[float | None] = None
    jitter: ClassVar[bool | None] = None
    agent_pool: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Check the models a task declares when it is defined (``@app.task(models=...)``).

        Raises:
            InvalidJobError: naming the task and the bad value; one name is
                taken as a one-model list.
        """
        super().__init_subclass__(**kwargs)
        for option in ("models", "shared_models"):
            # The value the class gets, from itself or a mixin; a descriptor (a
            # property) is read per instance and checked there (declared_models).
            raw = next(k.__dict__[option] for k in cls.__mro__ if option in k.__dict__)
            if not hasattr(raw, "__get__"):
                name = cls.__dict__.get("name") or cls.__name__
                setattr(cls, option, check_models(f"{name}: {option}", raw))
        pool = cls.__dict__.get("agent_pool")
        if pool is not None and not hasattr(pool, "__get__"):
            name = cls.__dict__.get("name") or cls.__name__
            pools.check_pool(pool, f"{name}: agent_pool")
        body = cls.__dict__.get("run")
        if body is not None:
            # The body is wrapped, not __call__: Celery's tracer calls run()
            # directly when __call__ is not overridden (no second request context).
            cls.run = attempts.with_retries(body)

    @property
    def backend(self) -> Any:
        """The result backend, through which a job's outcome survives a Redis outage.

        See :mod:`pipeline.job.results`: past ``pipeline_redis_outage_limit`` a
        job whose outcome cannot be written is given back, never failed.
        """
        return results.giving_back(self)

    @backend.setter
    def backend(self, value: Any) -> None:
        self._backend = value

    @property
    def services(self) -> Services:
        """The per-process services of the task's app (settings, lock engine, running jobs)."""
        return services_for(self.app)

    @property
    def max_retries(self) -> int:
        """Retries after the first attempt: the task's option, else ``pipeline_retry_max``."""
        return self.services.settings.retry_max

    def apply_async(self, args: Any = None, kwargs: Any = None, task_id: str | None = None,
                    producer: Any = None, link: Any = None, link_error: Any = None,
                    shadow: str | None = None, **options: Any) -> Any:
        """Publish the job after validating its priority and resources.

        Extra options: ``user``, ``project``, ``models`` (added to the task's),
        ``shared`` (``True`` or a list of models the call only reads),
        ``agent_pool`` (the agent pool that runs it; None = a Celery worker).

        Raises:
            InvalidJobError: (a ``ValueError``) before anything is published.
            ServiceError: Redis did not answer within ``pipeline_publish_timeout``;
                nothing was published.
        """
        task_id, header = publishing.prepare(self, options, task_id)
        sent_at = time.time()
        try:
            result = super().apply_async(args, kwargs, task_id, producer, link, link_error,
                                         shadow, **options)
        except Exception as exc:
            raise publishing.not_published(self, task_id, exc) from exc
        publishing.record_queued(self, result.id, args, kwargs, options, header, sent_at)
        return result

    def before_start(self, task_id: str, args: Any, kwargs: Any) -> None:
        """Take every lock of the job at once, or park it and acknowledge the message."""
        outcome = starting.start(self, task_id)
        if outcome is not None:
            # Parked: the message is acknowledged without running the job; the
            # stored copy is republished by the release that hands it the locks.
            raise NotRun(outcome)

    def after_return(self, status: str, retval: Any, task_id: str, args: Any, kwargs: Any,
                     einfo: Any) -> None:
        """Release the job's locks (and hand them to parked jobs)."""
        finishing.finish(self, task_id, status, retval)

    def on_retry(self, exc: BaseException, task_id: str, args: Any, kwargs: Any,
                 einfo: Any) -> None:
        """Celery skips ``after_return`` on retry: release here (a workflow keeps its hold)."""
        finishing.finish(self, task_id, "RETRY", exc, retry_in=attempts.retry_in(einfo))

