"""The jobs this process runs under a hold, and what a running job may ask of it.

One :class:`RunningJobs` registry per app and process (it lives on the
engine, so a forked child starts with an empty one). The starting phase adds
a job when it takes its locks, the finishing phase removes it when it
releases them; in between, :mod:`pipeline.job.fencing` answers the job's own
questions from it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

#: Seconds after a park during which a job needing the same claims is presumed
#: blocked too (its park message is built before the first lock call).
CONTENDED_FOR = 1.0
_RECENT_MAX = 1024


@dataclass(frozen=True)
class RunningJob:
    """A job of this process that holds its locks.

    Attributes:
        holder: the hold id (the job id, or its workflow's id).
        tokens: fencing token per resource id.
        workflow: the workflow it is a step of, if any.
        guest: runs under another job's hold, which that job alone releases.
        has_next_step: a workflow step with a step after it (Celery pops the
            next step off the request when it sends it, so this is read at start).
    """

    holder: str
    tokens: dict[str, int]
    workflow: str | None = None
    guest: bool = False
    has_next_step: bool = False

    @property
    def token(self) -> int | None:
        """The grant's fencing token (one for all its resources)."""
        return next(iter(self.tokens.values()), None)


class RunningJobs:
    """This process's running jobs by job id, and the claims it saw blocked lately."""

    def __init__(self) -> None:
        self._jobs: dict[str, RunningJob] = {}
        self._blocked_at: dict[tuple[Any, ...], float] = {}
        self._body_done: set[str] = set()
        self._given_back: dict[str, str] = {}

    def add(self, job_id: str, job: RunningJob) -> None:
        """Record that *job_id* holds its locks."""
        self._jobs[job_id] = job

    def get(self, job_id: str | None) -> RunningJob | None:
        """The running job *job_id*, or None."""
        return self._jobs.get(job_id or "")

    def pop(self, job_id: str) -> RunningJob | None:
        """Forget *job_id*; returns what it held, or None if it held nothing."""
        self._body_done.discard(job_id)
        self._given_back.pop(job_id, None)
        return self._jobs.pop(job_id, None)

    def give_back(self, job_id: str, reason: str) -> None:
        """Note that *job_id* goes back to the queue instead of finishing (*reason* says why)."""
        if job_id in self._jobs:
            self._given_back[job_id] = reason

    def given_back(self, job_id: str) -> str | None:
        """Why *job_id* goes back to the queue, or None if it finishes as it ran."""
        return self._given_back.get(job_id)

    def body_done(self, job_id: str | None) -> None:
        """Note that the body of *job_id* returned (what it publishes now is Celery's)."""
        if job_id in self._jobs:
            self._body_done.add(job_id)

    def in_body(self, job_id: str | None) -> RunningJob | None:
        """The running job *job_id* while its own code runs, else None.

        A job published then is its child (a guest of its hold when covered);
        one published after (the next step of a chain, a chord's body, a
        callback) is Celery's continuation of the canvas, a job of its own.
        """
        if job_id in self._body_done:
            return None
        return self._jobs.get(job_id or "")

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._jobs

    def __bool__(self) -> bool:
        return bool(self._jobs)

    def blocked(self, claims: tuple[Any, ...]) -> None:
        """Note that a job needing *claims* was just parked."""
        if len(self._blocked_at) >= _RECENT_MAX:
            self._blocked_at.clear()
        self._blocked_at[claims] = time.monotonic()

    def likely_blocked(self, claims: tuple[Any, ...]) -> bool:
        """Whether a job needing *claims* was parked in the last moment."""
        return time.monotonic() - self._blocked_at.get(claims, -60.0) < CONTENDED_FOR
