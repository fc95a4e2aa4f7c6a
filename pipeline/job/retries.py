"""Retry policy of pipeline jobs: exponential backoff with jitter, then dead letters.

A job whose body raises is retried up to ``max_retries`` times (the task's
option, else ``pipeline_retry_max``), each retry releasing its locks and
queueing for them again after ``backoff * 2**n`` seconds (capped, jittered).
Errors the pipeline raises on purpose (bad input, a workflow that cannot
run) are never retried, nor is a job stopped by its soft time limit (it would
most likely run over again) unless the task lists it in ``retry_for``. After
the last attempt the job is dead-lettered.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from pipeline.conf import Settings
from pipeline.errors import PipelineError


@dataclass(frozen=True)
class RetryPolicy:
    """How a task retries."""

    max_retries: int
    backoff: float
    backoff_max: float
    jitter: bool
    retry_for: tuple[type[BaseException], ...] = (Exception,)
    dont_retry_for: tuple[type[BaseException], ...] = (PipelineError,)

    def retries(self, exc: BaseException) -> bool:
        """Whether *exc* is worth another attempt."""
        return isinstance(exc, self.retry_for) and not isinstance(exc, self.dont_retry_for)

    def countdown(self, retries_done: int) -> float:
        """Seconds before attempt ``retries_done + 2`` (equal jitter: half fixed, half random)."""
        delay = float(min(self.backoff_max, self.backoff * (2 ** retries_done)))
        if self.jitter:
            delay = delay / 2 + random.uniform(0, delay / 2)
        return delay


def policy_for(task: object, settings: Settings) -> RetryPolicy:
    """The task's options where set (``None`` = take the pipeline setting)."""

    def option(name: str, default: Any) -> Any:
        value = getattr(task, name, None)
        return default if value is None else value

    return RetryPolicy(
        max_retries=int(option("max_retries", settings.retry_max)),
        backoff=float(option("backoff", settings.retry_backoff)),
        backoff_max=float(option("backoff_max", settings.retry_backoff_max)),
        jitter=bool(option("jitter", settings.retry_jitter)),
        retry_for=tuple(option("retry_for", (Exception,))),
        # The pipeline's own errors (bad input, a refused workflow) never get better;
        # a job over its time limit would run over again.
        dont_retry_for=(PipelineError, *option("dont_retry_for", ()),
                        *(() if getattr(task, "retry_for", None) else (SoftTimeLimitExceeded,))),
    )
