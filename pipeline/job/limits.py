"""Default execution time limits of pipeline jobs (``pipeline_time_limit``).

A pipeline job that sets no time limit of its own gets a soft limit of
``pipeline_time_limit`` seconds (300 by default: the job gets
``SoftTimeLimitExceeded`` and fails, without a retry) and a hard limit
``pipeline_time_limit_grace`` seconds later (its pool process is killed and its
locks are freed by the worker). The worker applies them, from its own
settings, to every ``PipelineTask`` whose ``time_limit`` and
``soft_time_limit`` are both unset: a limit given by the task, by the call
(``apply_async(time_limit=...)``) or by Celery's ``task_time_limit`` /
``task_soft_time_limit`` wins. Limits need a pool that enforces them
(prefork); the solo and threads pools ignore them, as Celery does.
"""

from __future__ import annotations

from typing import Any

from celery import bootsteps

from pipeline import conf
from pipeline.conf import Settings


def default_time_limits(soft: float | None, hard: float | None,
                        settings: Settings) -> tuple[float | None, float | None]:
    """The (soft, hard) limits of a job whose own are *soft* and *hard* (None = unset).

    A job with neither gets the pipeline's; a job with only a soft limit gets
    a hard one ``pipeline_time_limit_grace`` later; a job with only a hard
    limit keeps just that.
    """
    if soft is None and hard is None and settings.time_limit > 0:
        soft = settings.time_limit
    if hard is None and soft is not None:
        hard = soft + settings.time_limit_grace
    return soft, hard


def apply_default_time_limits(app: Any) -> list[str]:
    """Give every pipeline task of *app* its default limits; returns the names changed."""
    from pipeline.job.task import PipelineTask

    settings = conf.read(app.conf)
    changed = []
    for name, task in app.tasks.items():
        if not isinstance(task, PipelineTask):
            continue
        own = (task.soft_time_limit, task.time_limit)
        soft, hard = default_time_limits(*own, settings)
        if (soft, hard) != own:
            task.soft_time_limit, task.time_limit = soft, hard
            changed.append(name)
    return changed


class DefaultTimeLimits(bootsteps.Step):  # type: ignore[misc]
    """Consumer bootstep: applies the default limits before the worker reads its tasks.

    Celery reads each task's limits when it builds the task's strategy (when
    the consumer starts); this step runs as the consumer is built, before that.
    """

    label = "PipelineTimeLimits"

    def __init__(self, c: Any, **kwargs: Any) -> None:
        apply_default_time_limits(c.app)
        super().__init__(c, **kwargs)
