"""Where new work should go and how many worker processes the load needs.

The recommendation keeps the worker processes at or below
:data:`TARGET_UTILISATION` (80 %): the processes wanted are the jobs running
plus the jobs waiting in the broker, divided by 0.8 and rounded up. Jobs
parked for a resource do not count: more processes would not run them sooner.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from pipeline.admission.agents import AgentStatus
from pipeline.runtime.services import Services

TARGET_UTILISATION = 0.8
ADD, REMOVE, HOLD = "add", "remove", "hold"


def processes_for(demand: int, target: float = TARGET_UTILISATION) -> int:
    """Processes needed so that *demand* jobs use at most *target* of them (at least 1)."""
    return max(1, math.ceil(demand / target - 1e-9))


def least_loaded(agents: Iterable[AgentStatus]) -> AgentStatus | None:
    """The accepting worker to give new work: lowest score, then most free slots, then name."""
    accepting = [a for a in agents if a.accepting]
    if not accepting:
        return None
    return min(accepting, key=lambda a: (round(a.score, 4), -a.free_slots, a.name))


@dataclass(frozen=True)
class Allocation:
    """A recommendation for the whole pool of workers.

    Attributes:
        workers: live workers.
        accepting: those taking new jobs (not paused by the load gate).
        capacity: processes that can run jobs: the accepting workers' slots,
            plus the jobs paused workers still run.
        running: jobs running now.
        waiting: jobs ready in the broker, waiting for a process.
        utilisation: ``running / capacity``; None when no process can take jobs.
        least_loaded: the worker to give new work, or None.
        backpressure: True when new jobs will wait: jobs are waiting and no
            accepting worker has a free slot, or no worker takes jobs.
        backpressure_reason: why, in words ("" when there is none).
        action: ``add``, ``remove`` or ``hold``.
        processes: how many processes to add or remove (0 to hold).
        target_processes: the processes that keep utilisation at or below the target.
        reason: the recommendation in words.
    """

    workers: int
    accepting: int
    capacity: int
    running: int
    waiting: int
    utilisation: float | None
    least_loaded: str | None
    backpressure: bool
    backpressure_reason: str
    action: str
    processes: int
    target_processes: int
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return asdict(self)


def _backpressure(agents: Sequence[AgentStatus], waiting: int) -> str:
    accepting = [a for a in agents if a.accepting]
    if not agents:
        return "no worker is running"
    if not accepting:
        return "every worker is over its load limit"
    if waiting and not any(a.free_slots for a in accepting):
        return f"{waiting} job(s) wait in the broker and no worker has a free slot"
    return ""


def recommend(agents: Sequence[AgentStatus], waiting: int,
              target: float = TARGET_UTILISATION) -> Allocation:
    """The recommendation for *agents* with *waiting* jobs ready in the broker."""
    accepting = [a for a in agents if a.accepting]
    running = sum(a.running for a in agents)
    capacity = sum(a.slots for a in accepting) + sum(a.running for a in agents
                                                      if not a.accepting)
    wanted = processes_for(running + waiting, target)
    pressure = _backpressure(agents, waiting)
    if wanted > capacity:
        action, count = ADD, wanted - capacity
        where = ("on another host: every worker's host is over its load limit"
                 if agents and not accepting else "")
        reason = (f"{running} running + {waiting} waiting need {wanted} processes to stay at "
                  f"or below {target:.0%} utilisation; capacity {capacity}: add {count}"
                  + (f" {where}" if where else ""))
    else:
        # A worker keeps at least one process.
        removable = sum(a.slots - 1 for a in accepting)
        count = min(capacity - wanted, removable)
        action = REMOVE if count > 0 else HOLD
        reason = (f"{running} running + {waiting} waiting need {wanted} processes to stay at "
                  f"or below {target:.0%} utilisation; capacity {capacity}"
                  + (f": remove {count}" if count > 0 else ": keep them"))
    best = least_loaded(agents)
    return Allocation(
        workers=len(agents), accepting=len(accepting), capacity=capacity, running=running,
        waiting=waiting, utilisation=running / capacity if capacity else None,
        least_loaded=best.name if best else None, backpressure=bool(pressure),
        backpressure_reason=pressure, action=action, processes=max(count, 0),
        target_processes=wanted, reason=reason,
    )


def broker_backlog(client: Any, lists: Iterable[str]) -> int:
    """Messages ready in the given broker lists (one round trip)."""
    pipe = client.pipeline(transaction=False)
    names = list(lists)
    for name in names:
        pipe.llen(name)
    return sum(int(n) for n in pipe.execute()) if names else 0


def allocate(services: Services) -> Allocation:
    """The recommendation for the app's live workers and the jobs waiting in their queues."""
    from pipeline.admission.agents import list_agents
    from pipeline.broker.layout import queue_lists

    agents = list_agents(services)
    queues = sorted({q for a in agents for q in a.queues}) or [services.app.conf.task_default_queue]
    lists = [name for queue in queues for name in queue_lists(services.app, queue)]
    return recommend(agents, broker_backlog(services.redis, lists))
