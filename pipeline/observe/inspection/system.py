"""One screen of the whole system: ``pipeline status``, the monitor and the API's summary.

Built from counters the lock scripts keep (parked jobs per priority and per
blocking resource kind), the live holds and four list lengths: its cost does
not grow with the number of parked or queued jobs.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pipeline.admission.agents import list_agents
from pipeline.admission.load import level_for
from pipeline.locks.records import HoldRecord
from pipeline.messages.record import Record
from pipeline.observe.inspection.live import LEVELS, label, queue_depth, split_resource
from pipeline.runtime.services import Services


def load_level(utilisation: float | None) -> str:
    """The load level of a share in use (the agents' thresholds, :func:`level_for`).

    ``LOW`` below 40 %, ``MODERATE`` below 60 %, ``HIGH`` below 80 % (the
    utilisation to stay under), ``CRITICAL`` from 80 %; ``LOW`` when there is
    no limit to measure against (None).
    """
    return level_for(utilisation or 0.0).value


@dataclass(frozen=True)
class WorkerSeen(Record):
    """A live worker.

    Attributes:
        name: its node name (``celery@host``).
        source: how it was seen: ``agent`` (its load record) or ``ping``
            (it answered Celery's remote control; it publishes no record).
        level: its load level (LOW, MODERATE, HIGH, CRITICAL), from its record.
        score: its load score 0-1, from its record.
        accepting: False while its load gate keeps it from taking new jobs.
        running: jobs it runs; ``slots`` its pool processes.
        pause_reason: why it paused, while it does.
    """

    name: str
    source: str
    level: str = ""
    score: float | None = None
    accepting: bool = True
    running: int | None = None
    slots: int | None = None
    pause_reason: str = ""


def workers(services: Services, timeout: float = 1.0) -> list[WorkerSeen]:
    """The live workers: their load records, else those answering a ping.

    The records are one read. Only when no worker publishes one (agents off,
    ``pipeline_agent_heartbeat = 0``) are the workers pinged, which waits the
    whole *timeout*.
    """
    agents = list_agents(services)
    if agents:
        return [WorkerSeen(name=a.name, source="agent", level=a.level.value, score=a.score,
                           accepting=a.accepting, running=a.running, slots=a.slots,
                           pause_reason=a.pause_reason) for a in agents]
    replies = services.app.control.inspect(timeout=timeout).ping() or {}
    return [WorkerSeen(name=name, source="ping") for name in sorted(replies)]


@dataclass(frozen=True)
class SystemStatus(Record):
    """Everything ``pipeline status`` shows.

    Attributes:
        depth: messages waiting in the broker per level.
        running: jobs running; ``granted`` handed their locks and about to start;
            ``between``: workflows holding their locks between two steps.
        parked: jobs parked; per level (``parked_by_priority``) and per kind of
            the resource blocking them (``parked_by_kind``).
        locks_by_user: running holds per user (and per project, per model).
        workers: the workers seen (None when not asked for).
        dead_letters: jobs dead-lettered and kept.
        capacities: the capacity of each resource kind (0 = unlimited).
        serialized: ``pipeline_serialized`` is on (one job at a time).
        utilisation: holds over the global capacity (None when unlimited).
        level: the load level of that utilisation.
        at: when it was read (seconds since the epoch).
    """

    depth: dict[str, int]
    running: int
    granted: int
    between: int
    parked: int
    parked_by_priority: dict[str, int]
    parked_by_kind: dict[str, int]
    locks_by_user: dict[str, int]
    locks_by_project: dict[str, int]
    locks_by_model: dict[str, int]
    dead_letters: int
    capacities: dict[str, int]
    serialized: bool
    utilisation: float | None
    level: str
    workers: tuple[WorkerSeen, ...] | None = None
    at: float = field(default_factory=time.time)

    @property
    def queued(self) -> int:
        """Messages waiting in the broker, every level."""
        return sum(self.depth.values())

    def as_dict(self) -> dict[str, Any]:
        """The fields as plain data, with ``queued`` (every level's messages)."""
        return {**super().as_dict(), "queued": self.queued}


def _held_by_kind(holds: list[HoldRecord]) -> dict[str, dict[str, int]]:
    counts: dict[str, Counter[str]] = {"user": Counter(), "project": Counter(),
                                       "model": Counter()}
    for hold in holds:
        for claim in hold.claims:
            kind, name = split_resource(claim.resource)
            if kind in counts:
                counts[kind][name] += 1
    return {kind: dict(sorted(c.items())) for kind, c in counts.items()}


def status(services: Services, *, with_workers: bool = True, worker_timeout: float = 1.0,
           queue: str | None = None) -> SystemStatus:
    """Read the whole system's state (a few reads; workers waits *worker_timeout*)."""
    settings = services.settings
    holds = services.lock_reads.holds()
    states = Counter(h.state for h in holds)
    by_priority = dict.fromkeys(LEVELS, 0)
    for priority, count in services.lock_reads.parked_counts().items():
        by_priority[label(priority)] += count
    held = _held_by_kind(holds)
    capacity = settings.capacity_global
    return SystemStatus(
        depth=queue_depth(services, queue),
        running=states.get("running", 0), granted=states.get("granted", 0),
        between=states.get("between", 0),
        parked=sum(by_priority.values()), parked_by_priority=by_priority,
        parked_by_kind=dict(sorted(services.lock_reads.parked_by_kind().items())),
        locks_by_user=held["user"], locks_by_project=held["project"],
        locks_by_model=held["model"],
        dead_letters=int(services.redis.zcard(services.keys.dead_letters)),
        capacities={"user": settings.capacity_user, "project": settings.capacity_project,
                    "model": settings.capacity_model, "global": capacity},
        serialized=settings.serialized,
        utilisation=len(holds) / capacity if capacity else None,
        level=load_level(len(holds) / capacity if capacity else None),
        workers=tuple(workers(services, worker_timeout)) if with_workers else None,
    )

