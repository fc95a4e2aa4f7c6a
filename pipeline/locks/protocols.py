"""The lock engine as each kind of caller sees it.

One engine (:class:`pipeline.locks.engine.RedisLockEngine`) serves three kinds
of callers; each gets the protocol it needs from the process's services
(:class:`pipeline.runtime.services.Services`), so a caller cannot reach what
is not its business:

* :class:`HotPath`: a job's own path (``services.locks``), a call or two per
  job: take its locks or park it, release them and hand them on, renew leases.
* :class:`LockReads`: the read-only views (``services.lock_reads``): what a
  job is doing, what is held, what is parked.
* :class:`LockActions`: what operators and the beat sweep do
  (``services.lock_actions``): cancel, reprioritize, take out of the broker,
  force-release, expire.

The jobs agents claim over HTTP have theirs: :class:`Leases`
(``services.leases``, :mod:`pipeline.locks.leases`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

from pipeline.locks.leases import ClaimReply, Ended, Refused
from pipeline.locks.records import HoldRecord, ParkRecord, QueuedMessage
from pipeline.locks.ticket import AcquireResult, Explanation, Ticket


class HotPath(Protocol):
    """What a job's own path calls."""

    def acquire(self, ticket: Ticket, *, host: str, pid: int, park_message: str = "",
                queue_key: str = "") -> AcquireResult:
        """Take all of the ticket's claims at once, or park the job if a message is given."""

    def release(self, holder: str, job_id: str, *, event: str = "", detail: str = "{}",
                keep_seconds: float = 0.0, wait: bool = True, token: int | None = None) -> int:
        """End (or keep, for a workflow between steps) a hold and hand freed capacity on."""

    def renew(self, holders: Sequence[str]) -> list[str]:
        """Extend the leases of *holders*; return those that were already lost."""

    def sweep(self, limit: int = 100) -> tuple[int, int]:
        """Drop dead holds and expire jobs parked too long: (holds dropped, jobs expired)."""

    def wait_replicas(self, replicas: int, timeout: float) -> int:
        """Wait until *replicas* replicas have this thread's lock writes (Redis ``WAIT``)."""


class LockReads(Protocol):
    """What the read-only views call (none of it changes anything)."""

    def explain(self, job_id: str, holder: str | None = None) -> Explanation:
        """What the job is doing, as far as the locks know."""

    def queued_position(self, lists: Sequence[str], job_id: str) -> QueuedMessage | None:
        """Where a job waits in the broker's lists, or None."""

    def parked_message(self, job_id: str) -> str:
        """The stored message of a parked job ('' if it is not parked)."""

    def parked_counts(self) -> dict[int, int]:
        """Parked jobs per priority."""

    def parked_by_kind(self) -> dict[str, int]:
        """Parked jobs per kind of the first resource blocking them."""

    def parked_jobs(self, limit: int = 100) -> list[Explanation]:
        """The jobs parked longest, oldest first."""

    def parked_records(self, chunk: int = 1000) -> Iterator[tuple[str, ParkRecord]]:
        """Every parked job with its record, oldest parked first."""

    def holders_of(self, resource: str) -> list[tuple[str, str, float]]:
        """(holder, mode, lease deadline) of every live hold on *resource*."""

    def holds(self, limit: int = 1000) -> list[HoldRecord]:
        """Every live hold, soonest lease deadline first."""


class LockActions(Protocol):
    """What operators and the beat sweep do to parked jobs, queued jobs and holds."""

    def cancel_parked(self, job_id: str, reason: str, *, event: str = "cancelled") -> bool:
        """Remove a parked job from its lines; False if it was not parked."""

    def reprioritize_parked(self, job_id: str, priority: int) -> int | None:
        """Move a parked job to its new place; returns its old priority or None."""

    def take_queued(self, lists: Sequence[str], job_id: str, reason: str
                    ) -> QueuedMessage | None:
        """Take a job out of the broker's lists, recorded cancelled; None if not there."""

    def swap_queued(self, found: QueuedMessage, target_list: str, message: str,
                    detail: str) -> bool:
        """Replace a queued job's message at the back of *target_list*, atomically."""

    def mark_cancelled(self, *ids: str) -> None:
        """Make workers drop these jobs or workflows when their messages arrive."""

    def take_expired(self, limit: int) -> list[tuple[str, str]]:
        """Parked jobs that expired and were not reported yet: (job id, stored message)."""

    def force_release(self, resource: str, *, by: str, reason: str
                      ) -> tuple[list[HoldRecord], list[str]]:
        """End every hold on *resource* and hand it on: (holds ended, holders after)."""

    def sweep_counts(self, limit: int = 100) -> tuple[int, int, int]:
        """Drop dead holds, expire jobs parked too long, serve lines left for later."""


class LockEngine(HotPath, LockReads, LockActions, Protocol):
    """All three: what the per-process services hold, and tests that drive the scripts."""


class Leases(Protocol):
    """What the agents' routes and the sweep call: claims and the leases of claimed jobs."""

    def claim(self, pool: str, queue: str, lists: Sequence[str], agent: str, *,
              default_priority: int) -> ClaimReply:
        """One claim call: the pool's most urgent job whose locks can all be taken."""

    def start(self, job_id: str, lease: str) -> tuple[str, bool, float] | Refused:
        """Mark a claimed job started: its message, whether it was started before, the
        lease's deadline."""

    def renew(self, job_id: str, lease: str) -> float | Refused:
        """Renew a lease and its locks; the new deadline."""

    def finish(self, job_id: str, lease: str) -> Ended | Refused:
        """End a lease for its job's outcome (the hold is released by the caller)."""

    def give_back(self, job_id: str, lease: str, reason: str) -> Refused | None:
        """Give a claimed job back to its pool at once."""

    def cancel(self, job_id: str, reason: str) -> str | None:
        """End a claimed job's lease and locks (an operator's cancel); its message."""

    def expire(self, limit: int = 100) -> int:
        """Give back the claimed jobs whose lease ran out."""

    def pool_of(self, job_id: str) -> str | None:
        """The pool of a claimed job, None when it holds no lease."""

    def lease_of(self, job_id: str) -> dict[str, str]:
        """A claimed job's lease record (agent, pool, times), {} when it holds none."""

    def delay(self, queue: str, index: int, message: str, due: float) -> None:
        """Keep a pool's message until it is due (a countdown, a retry's backoff)."""

    def find_delayed(self, queue: str, job_id: str) -> tuple[str, float] | None:
        """A delayed message of a job in a pool's queue, and when it is due."""

    def take_delayed(self, queue: str, member: str) -> bool:
        """Take a delayed message out."""

    def pools(self) -> list[str]:
        """Every agent pool known."""
