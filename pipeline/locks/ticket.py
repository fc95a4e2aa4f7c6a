"""The ticket a job is locked with, and what the lock engine answers.

:class:`Ticket` is what :meth:`~pipeline.locks.protocols.HotPath.acquire` takes; its
outcome is one of :data:`AcquireResult`; :class:`Explanation` is what
:meth:`~pipeline.locks.protocols.LockReads.explain` says of a job.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.locks.resources import Claim


def blocked_reason(resource: str, blocked_by: str, position: int = 0) -> str:
    """Why a job waits, in words (the scripts' ``blocked`` event carries only the parts)."""
    where = f", position {position} in line" if position else ""
    return f"waiting for {resource} (held by or queued behind {blocked_by}){where}"


@dataclass(frozen=True)
class Ticket:
    """What the engine needs to know about a job to lock or park it.

    Attributes:
        job_id: the Celery task id.
        holder: the id the locks are held under: the job id, or the workflow id
            for every step of a workflow.
        claims: everything the job needs, sorted.
        priority: the Redis priority 0-9 (0 most urgent).
        detail: JSON text carried into the ``started`` event.
        submitted_ms: when the job was published (ms since the epoch, with its
            fraction: jobs published within one ms keep their order), its
            place in line among jobs of its priority and project (fair share
            takes projects in turn); 0 when unknown.
        step: a later step of a workflow, which takes the workflow's hold over.
        guest: published inside a running job whose hold (``holder``) covers
            it: it runs under that hold while it lasts, else under its own.
    """

    job_id: str
    holder: str
    claims: tuple[Claim, ...]
    priority: int
    detail: str = "{}"
    submitted_ms: float = 0
    step: bool = False
    guest: bool = False


@dataclass(frozen=True)
class Acquired:
    """The job holds every claim; ``tokens`` maps resource id -> fencing token.

    A grant has one token for all its resources, taken from one counter that
    only grows, so the token of any resource only grows.

    ``guest`` is true for a job started inside a running job whose hold covers
    it: it runs under that hold, which is freed when its owner and every guest
    have ended. ``holder`` is the hold the job runs under (empty: the ticket's).
    ``granted_at`` is set when the job was parked and a release handed it the
    locks (the hand-off), whether the fetch or its start parked it.
    """

    tokens: dict[str, int]
    guest: bool = False
    holder: str = field(default="", compare=False)
    #: When a release handed the parked job these locks (seconds since the epoch).
    granted_at: float | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Blocked:
    """The job cannot run yet.

    Attributes:
        resource: the first resource it waits for.
        blocked_by: the holder of that resource, or the job ahead of it in line.
        position: its place in that resource's line (1 = next); 0 if not parked.
    """

    resource: str
    blocked_by: str
    position: int

    @property
    def reason(self) -> str:
        """One line a person can read."""
        return blocked_reason(self.resource, self.blocked_by, self.position)


@dataclass(frozen=True)
class Duplicate:
    """The same job already runs elsewhere under a live lease (a redelivered message)."""


@dataclass(frozen=True)
class Uncovered:
    """The job belongs to a running workflow step whose hold lacks some of its claims."""

    holder: str


@dataclass(frozen=True)
class Cancelled:
    """The job, or its workflow, was cancelled before it started."""


AcquireResult = Acquired | Blocked | Duplicate | Uncovered | Cancelled


#: The states of a hold.
HOLDING = ("running", "granted", "between", "guests")


@dataclass(frozen=True)
class Explanation:
    """What a job is doing, as far as the locks know.

    Attributes:
        job_id: the job asked about.
        status: ``running``, ``granted`` (handed its locks, not started yet),
            ``between`` (a workflow between steps), ``guests`` (its owner ended,
            jobs it started as guests still run), ``parked`` or ``unknown``
            (not holding and not waiting: queued in the broker, finished or gone).
        holder: the hold id when holding.
        resources: the resource ids held or needed.
        tokens: fencing tokens per resource when holding.
        waiting_for: the resource it waits for when parked.
        blocked_by: who holds that resource or is ahead in line.
        position: its place in that line (1 = next).
        priority: the priority it waits at.
        parked_at: when it was parked (seconds since the epoch).
        host: worker host of a running hold.
        pid: worker process of a running hold.
        expires_at: lease deadline (seconds since the epoch).
        current_job: the job running under the hold (a workflow's current step).
    """

    job_id: str
    status: str
    holder: str = ""
    resources: tuple[str, ...] = ()
    tokens: dict[str, int] = field(default_factory=dict)
    waiting_for: str = ""
    blocked_by: str = ""
    position: int = 0
    priority: int | None = None
    parked_at: float | None = None
    host: str = ""
    pid: str = ""
    expires_at: float | None = None
    current_job: str = ""

    def describe(self) -> str:
        """One paragraph a person can read (used by ``pipeline show``)."""
        if self.status == "parked":
            return (f"{self.job_id} is parked (BLOCKED): waiting for {self.waiting_for}, "
                    f"held by or queued behind {self.blocked_by}; position {self.position} "
                    f"in line; needs {', '.join(self.resources)}")
        if self.status in HOLDING:
            return (f"{self.job_id} is {self.status} holding {', '.join(self.resources)} "
                    f"as {self.holder} on {self.host or '?'} pid {self.pid or '?'}")
        return (f"{self.job_id} holds no lock and is not parked "
                "(queued in the broker, finished or gone)")
