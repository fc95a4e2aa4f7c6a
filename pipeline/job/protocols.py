"""The task as the job's phases see it.

The phases (:mod:`~pipeline.job.publishing`, :mod:`~pipeline.job.starting`,
:mod:`~pipeline.job.attempts`, :mod:`~pipeline.job.finishing`) take the task
whose job they carry: a :class:`pipeline.job.task.PipelineTask`, typed here by
what they use of it, so they need not import the task class that calls them.
"""

from __future__ import annotations

from typing import Any, Protocol

from pipeline.messages.context import JobContext
from pipeline.runtime.services import Services


class JobTask(Protocol):
    """A pipeline task: Celery's ``Task`` with the per-process services of its app.

    Attributes:
        name: the task's name.
        app: its Celery app.
        backend: its result backend.
        priority: its default priority (None: the app's).
        track_started: whether it reports STARTED (and BLOCKED).
        ignore_result: whether its result is kept.
    """

    name: str
    app: Any
    backend: Any
    priority: int | None
    track_started: bool
    ignore_result: bool

    @property
    def request(self) -> JobContext:
        """The request of the job being run (Celery's ``Task.request``)."""

    @property
    def services(self) -> Services:
        """The per-process services of the task's app."""

    def apply_async(self, args: Any = None, kwargs: Any = None, task_id: str | None = None,
                    **options: Any) -> Any:
        """Publish a job of this task."""

    def retry(self, **options: Any) -> Any:
        """Celery's retry: publish the next attempt and raise ``Retry``."""
