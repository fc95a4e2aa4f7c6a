"""PipelineTask: the Celery ``Task`` base class that takes a job's locks.

``apply_async`` validates the priority and the declared resources before
anything is published. ``before_start`` takes every lock of the job in one Lua
call, or parks the job (acknowledged, BLOCKED, woken by a release).
``after_return`` and ``on_retry`` release; a child killed by the OS is covered
by the lease running out.
"""

from __future__ import annotations

from typing import Any, ClassVar

from celery import Task
from celery.exceptions import Ignore

from pipeline import lifecycle


class PipelineTask(Task):  # type: ignore[misc]
    """Base class of pipeline jobs: ``@app.task(base=PipelineTask, models=("bert",))``.

    Class options:
        models: models every call of the task writes (exclusive).
        shared_models: models every call only reads (shared with other readers).
    """

    abstract = True
    Request = "pipeline.request:PipelineRequest"
    models: ClassVar[tuple[str, ...]] = ()
    shared_models: ClassVar[tuple[str, ...]] = ()

    def apply_async(self, args: Any = None, kwargs: Any = None, task_id: str | None = None,
                    producer: Any = None, link: Any = None, link_error: Any = None,
                    shadow: str | None = None, **options: Any) -> Any:
        """Publish the job after validating its priority and resources.

        Extra options: ``user``, ``project``, ``models`` (added to the task's),
        ``shared`` (``True`` or a list of models the call only reads).

        Raises:
            InvalidJobError: (a ``ValueError``) before anything is published.
        """
        task_id = lifecycle.prepare_options(self, options, task_id)
        result = super().apply_async(args, kwargs, task_id, producer, link, link_error,
                                     shadow, **options)
        lifecycle.published(self, result.id, args, options)
        return result

    def before_start(self, task_id: str, args: Any, kwargs: Any) -> None:
        """Take every lock of the job at once, or park it and acknowledge the message."""
        outcome = lifecycle.start(self, task_id)
        if outcome is not None:
            # Parked: the message is acknowledged without running the job; the
            # stored copy is republished by the release that hands it the locks.
            raise Ignore(outcome)

    def after_return(self, status: str, retval: Any, task_id: str, args: Any, kwargs: Any,
                     einfo: Any) -> None:
        """Release the job's locks (and hand them to parked jobs)."""
        lifecycle.finish(self, task_id, status, retval)

    def on_retry(self, exc: BaseException, task_id: str, args: Any, kwargs: Any,
                 einfo: Any) -> None:
        """Celery skips ``after_return`` on retry: release here."""
        lifecycle.finish(self, task_id, "RETRY", exc)

