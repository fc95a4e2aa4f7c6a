"""Worker agents: the load record each worker publishes, and reading them back.

Each worker keeps one small Redis key, ``{pipeline}:agent:<worker name>``,
holding its :class:`AgentStatus` as JSON. The key expires
``pipeline_agent_timeout`` seconds after the last record, so a worker that
stops publishing (killed, frozen, cut off) simply disappears. A sorted set,
``{pipeline}:agents``, indexes the names so readers never scan the keyspace.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from pipeline.admission.gate import GateState
from pipeline.admission.load import LoadLevel, LoadReading
from pipeline.keys import Keys
from pipeline.runtime.services import Services

logger = logging.getLogger(__name__)

#: Version of the record's layout; a record of another version is skipped.
VERSION = 1
#: Index entries older than this many timeouts are pruned by publishers.
PRUNE_AFTER = 10


@dataclass(frozen=True)
class AgentStatus:
    """One worker's load record.

    Attributes:
        name: the worker's node name (``celery@host``).
        host: the host it runs on.
        pid: the worker's main process.
        slots: its pool processes (or threads).
        running: jobs it runs now.
        reserved: jobs it holds, running or about to run.
        cpu: CPU in use on its host, a share of all cores, smoothed.
        memory: memory in use on its host, a share.
        queue_depth: ``reserved`` per slot, capped at 1.
        score: the load score of those three (see :mod:`pipeline.admission.load`).
        level: the score's level.
        accepting: False while the load gate keeps it from taking new jobs.
        pause_reason: why it paused (empty while accepting).
        paused_since: when it paused (seconds since the epoch), or None.
        gate: whether its load gate is on.
        queues: the queues it consumes.
        started_at: when it started publishing (seconds since the epoch).
        beat_at: when it published this record (seconds since the epoch).
    """

    name: str
    host: str
    pid: int
    slots: int
    running: int
    reserved: int
    cpu: float
    memory: float
    queue_depth: float
    score: float
    level: LoadLevel
    accepting: bool = True
    pause_reason: str = ""
    paused_since: float | None = None
    gate: bool = True
    queues: tuple[str, ...] = ()
    started_at: float = 0.0
    beat_at: float = field(default_factory=time.time)

    @classmethod
    def measured(cls, name: str, host: str, pid: int, slots: int, running: int,
                 reserved: int, reading: LoadReading, **extra: Any) -> AgentStatus:
        """A record whose score and level are computed from *reading*."""
        return cls(name=name, host=host, pid=pid, slots=slots, running=running,
                   reserved=reserved, cpu=reading.cpu, memory=reading.memory,
                   queue_depth=reading.queue_depth, score=reading.score, level=reading.level,
                   **extra)

    @property
    def free_slots(self) -> int:
        """Slots not holding a job."""
        return max(0, self.slots - self.reserved)

    def age(self, now: float | None = None) -> float:
        """Seconds since this record was published."""
        return max(0.0, (time.time() if now is None else now) - self.beat_at)

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON (the level as its name)."""
        data = asdict(self)
        data["level"] = self.level.value
        data["queues"] = list(self.queues)
        return data

    def encode(self) -> str:
        """The record as stored in Redis."""
        return json.dumps({"v": VERSION, **self.as_dict()}, separators=(",", ":"))

    @classmethod
    def decode(cls, text: str | bytes) -> AgentStatus | None:
        """Read a stored record; None if it is unreadable or of another version."""
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or data.pop("v", None) != VERSION:
                return None
            data["level"] = LoadLevel(data["level"])
            data["queues"] = tuple(data.get("queues") or ())
            return cls(**data)
        except (ValueError, TypeError, KeyError):
            return None


def publish(client: redis.Redis, keys: Keys, status: AgentStatus, timeout: float) -> None:
    """Store *status* for *timeout* seconds and index its worker (one round trip)."""
    now_ms = int(status.beat_at * 1000)
    pipe = client.pipeline(transaction=True)
    pipe.set(keys.agent(status.name), status.encode(), px=max(1, int(timeout * 1000)))
    pipe.zadd(keys.agents, {status.name: now_ms})
    pipe.zremrangebyscore(keys.agents, "-inf", now_ms - int(PRUNE_AFTER * timeout * 1000))
    pipe.execute()


def withdraw(client: redis.Redis, keys: Keys, name: str) -> None:
    """Remove a worker's record at once (a clean shutdown)."""
    pipe = client.pipeline(transaction=True)
    pipe.delete(keys.agent(name))
    pipe.zrem(keys.agents, name)
    pipe.execute()


def read_agents(client: redis.Redis, keys: Keys) -> list[AgentStatus]:
    """Every live worker's record, by name (a worker whose key expired is gone)."""
    names = [n.decode() if isinstance(n, bytes) else str(n)
             for n in client.zrange(keys.agents, 0, -1)]
    if not names:
        return []
    found = []
    for name, raw in zip(names, client.mget([keys.agent(n) for n in names]), strict=True):
        if raw is None:
            continue
        status = AgentStatus.decode(raw)
        if status is None:
            logger.warning("the load record of worker %s is unreadable; skipped", name)
            continue
        found.append(status)
    return sorted(found, key=lambda s: s.name)


def list_agents(services: Services) -> list[AgentStatus]:
    """The live workers of the app's pipeline with their load, sorted by name.

    A worker whose last record is older than its ``pipeline_agent_timeout`` is
    not listed. Workers with ``pipeline_agent_heartbeat = 0`` publish nothing.
    """
    return read_agents(services.redis, services.keys)


def gate_state(services: Services) -> GateState:
    """Whether the live workers take new jobs: what ``show`` says of a queued job.

    ``gate_state(services).waiting_reason`` is ``"waiting: every worker is over its
    load limit"`` when every live worker paused, else None.
    """
    agents = list_agents(services)
    return GateState(workers=tuple(a.name for a in agents),
                     paused=tuple(a.name for a in agents if not a.accepting))
