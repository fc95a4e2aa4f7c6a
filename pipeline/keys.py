"""Every Redis key name of the pipeline, from one place.

All keys carry the same hash tag (``{pipeline}`` by default) so that every key
one Lua script touches maps to one Redis Cluster slot. The Lua scripts get
the same names from :func:`lua_table`, which :mod:`pipeline.locks.scripts`
puts in front of every script: no key name is spelled out in Lua.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Keys of one thing (a resource, a holder, a job): name -> (text before its
#: id, text after it), under the base.
PER_ID: dict[str, tuple[str, str]] = {
    "writers": ("res:", ":w"),
    "readers": ("res:", ":r"),
    "line": ("line:", ""),
    "holder": ("hold:", ""),
    "parked": ("park:", ""),
    "dead_letter": ("dlq:", ""),
    "agent": ("agent:", ""),
    "fair": ("fair:", ""),
    "worker_lost": ("lost:", ""),
    "lease": ("lease:", ""),
    "delayed": ("delayed:", ""),
    "held_by": ("held_by:", ""),
}

#: Keys of the whole system: name -> text after the base.
FIXED: dict[str, str] = {
    "fence": "fence",
    "parked_count": "parked:count",
    "parked_kinds": "parked:kinds",
    "parked_order": "parked:order",
    "holders": "holders",
    "cancelled": "cancelled:ids",
    "events": "events",
    "dead_letters": "dlq",
    "rewake": "rewake",
    "agents": "agents",
    "imported": "imported",
    "set_aside": "set_aside",
    "set_aside_count": "set_aside:count",
    "expired": "expired:unreported",
    "leases": "leases",
    "pools": "pools",
}


#: kombu's separator between a queue's name and its priority level in its list names.
BROKER_SEP = "\x06\x16"
#: After a queue's key: its wake list, one token per message pushed to the queue
#: (:mod:`pipeline.broker.fetch`). kombu names a queue's lists with digits only
#: after the separator, so no queue list can be named like it.
WAKE_SUFFIX = BROKER_SEP + "wake"
#: What a wake list holds.
WAKE_TOKEN = "1"


def wake_key(queue_key: str) -> str:
    """The wake list of the queue whose (most urgent) list is *queue_key*."""
    return queue_key + WAKE_SUFFIX


#: The broker queue of an agent pool is this prefix plus the pool's name: a queue
#: no Celery worker consumes, whose jobs agents claim over HTTP (``pipeline.remote``).
POOL_QUEUE_PREFIX = "pool."


def pool_queue(pool: str) -> str:
    """The broker queue of agent pool *pool* (``pool.prod``)."""
    return POOL_QUEUE_PREFIX + pool


def pool_of_queue(queue: str) -> str | None:
    """The agent pool whose queue is *queue*, or None for any other queue."""
    return queue[len(POOL_QUEUE_PREFIX):] if queue.startswith(POOL_QUEUE_PREFIX) else None


@dataclass(frozen=True)
class Keys:
    """Key names under one hash tag.

    A *resource id* is ``kind:name`` (``user:alice``, ``model:bert``) or
    ``global``. A *holder* is the id locks are held under: the job id, or the
    workflow id for every step of a workflow.
    """

    prefix: str = "pipeline"

    @property
    def tag(self) -> str:
        """The ``{prefix}`` hash tag every key starts with."""
        return "{" + self.prefix + "}"

    @property
    def base(self) -> str:
        """The tag plus separator: the start of every key (``ARGV[1]`` of every script)."""
        return self.tag + ":"

    def _of(self, name: str, ident: str) -> str:
        before, after = PER_ID[name]
        return f"{self.base}{before}{ident}{after}"

    def writers(self, resource: str) -> str:
        """Sorted set of exclusive holders of *resource*, scored by lease deadline (ms)."""
        return self._of("writers", resource)

    def readers(self, resource: str) -> str:
        """Sorted set of shared (read) holders of *resource*, scored by lease deadline."""
        return self._of("readers", resource)

    def line(self, resource: str) -> str:
        """Sorted set of jobs parked behind *resource*, scored by rank."""
        return self._of("line", resource)

    def holder(self, holder: str) -> str:
        """Hash describing what *holder* holds: job, claims, token, state, host, pid, times."""
        return self._of("holder", holder)

    def parked(self, job_id: str) -> str:
        """String record of a parked job: rank, resources, stored message, what blocks it."""
        return self._of("parked", job_id)

    def dead_letter(self, job_id: str) -> str:
        """Hash of one dead-lettered job: its message and last error."""
        return self._of("dead_letter", job_id)

    @property
    def fence(self) -> str:
        """Counter: the last fencing token issued (one per grant, so it grows per resource)."""
        return self.base + FIXED["fence"]

    @property
    def parked_count(self) -> str:
        """Hash priority -> number of parked jobs."""
        return self.base + FIXED["parked_count"]

    @property
    def parked_kinds(self) -> str:
        """Hash resource kind -> parked jobs whose first blocking resource is of that kind."""
        return self.base + FIXED["parked_kinds"]

    @property
    def parked_order(self) -> str:
        """List of ``<parked-at ms>|<job id>``, oldest first, for expiry without a scan."""
        return self.base + FIXED["parked_order"]

    @property
    def holders(self) -> str:
        """Sorted set holder -> lease deadline (ms): every live hold, for listing and sweeps."""
        return self.base + FIXED["holders"]

    @property
    def cancelled(self) -> str:
        """Sorted set job or workflow id -> cancelled-at (ms): dropped when they reach a worker."""
        return self.base + FIXED["cancelled"]

    @property
    def events(self) -> str:
        """The event stream every state change is written to."""
        return self.base + FIXED["events"]

    @property
    def dead_letters(self) -> str:
        """Sorted set job id -> dead-lettered-at (ms)."""
        return self.base + FIXED["dead_letters"]

    @property
    def rewake(self) -> str:
        """Set of resource ids whose line still needs serving (a wake that ran out of budget)."""
        return self.base + FIXED["rewake"]

    def broker_queue_prefix(self) -> str:
        """kombu's ``global_keyprefix``: puts the broker's lists under the same tag."""
        return self.base

    @property
    def agents(self) -> str:
        """Sorted set worker name -> time of its last load record (ms): the agents' index."""
        return self.base + FIXED["agents"]

    def agent(self, worker: str) -> str:
        """String (JSON) of one worker's load record; expires with ``pipeline_agent_timeout``."""
        return self._of("agent", worker)

    @property
    def imported(self) -> str:
        """Hash request id -> when and from which file ``pipeline import`` enqueued it."""
        return self.base + FIXED["imported"]

    def fair(self, priority: int) -> str:
        """Hash of the fair-share state of one priority level (``fair_rank`` in lib.lua).

        ``V``: the tag of the level's last job handed its locks; each flow (a
        project id, or "" for jobs without one): the (submitted, tag) pairs of
        its last parked jobs. Deleted when a job parks at a level with none parked.
        """
        return self._of("fair", str(priority))

    @property
    def set_aside(self) -> str:
        """List of broker items no worker could decode or accept, newest first (JSON records)."""
        return self.base + FIXED["set_aside"]

    @property
    def set_aside_count(self) -> str:
        """Hash reason -> items set aside for that reason (``total`` counts them all)."""
        return self.base + FIXED["set_aside_count"]

    @property
    def expired(self) -> str:
        """List of parked jobs that expired and are not yet marked REVOKED in the result
        backend (``<job>\\x1f<its stored message>``, oldest first; bounded)."""
        return self.base + FIXED["expired"]

    def worker_lost(self, job_id: str) -> str:
        """Counter of the deliveries of *job_id* whose process died (expires a day after)."""
        return self._of("worker_lost", job_id)

    def lease(self, job_id: str) -> str:
        """Hash of the lease of a job an agent claimed: agent, pool, lease token, fencing
        token, holder, message, its list, claimed / started / expires (ms)."""
        return self._of("lease", job_id)

    @property
    def leases(self) -> str:
        """Sorted set job id -> lease deadline (ms): every claimed job, for the expiry sweep."""
        return self.base + FIXED["leases"]

    def delayed(self, queue: str) -> str:
        """Sorted set of an agent pool's jobs not to be claimed yet (a countdown, a retry's
        backoff), scored by when they are due (ms): ``<list number>\\x1f<message>``."""
        return self._of("delayed", queue)

    @property
    def pools(self) -> str:
        """Set of the agent pools jobs were published to or claimed from."""
        return self.base + FIXED["pools"]

    def held_by(self, worker: str) -> str:
        """Hash of the messages a worker (by node name) holds: ``tags`` (JSON list of
        delivery tags), ``host`` and ``pid`` of its main process, ``at`` (seconds).
        Written by its keeper (:mod:`pipeline.broker.predecessor`)."""
        return self._of("held_by", worker)


def _lua_text(text: str) -> str:
    if not all(ch.isalnum() or ch in ":_-." for ch in text):
        raise ValueError(f"key name part {text!r} must be letters, digits or ':_-.'")
    return f"'{text}'"


def lua_table() -> str:
    """The Lua table ``K`` of every key name, as the scripts read it.

    ``K.<name>`` is the text after the base for a key of the whole system, and
    ``{before, after}`` around the id for a key of one thing. The wake
    list's suffix and token follow it (:func:`lua_wake`).
    """
    entries = [f"{name} = {{{_lua_text(before)}, {_lua_text(after)}}}"
               for name, (before, after) in PER_ID.items()]
    entries += [f"{name} = {_lua_text(suffix)}" for name, suffix in FIXED.items()]
    return "local K = {\n  " + ",\n  ".join(entries) + ",\n}\n" + lua_wake()


def lua_wake() -> str:
    """``WAKE_SUFFIX`` and ``WAKE_TOKEN`` as Lua locals, for every script that pushes tokens."""
    suffix = "".join(ch if ch.isalnum() else f"\\{ord(ch)}" for ch in WAKE_SUFFIX)
    return f"local WAKE_SUFFIX = '{suffix}'\nlocal WAKE_TOKEN = {_lua_text(WAKE_TOKEN)}\n"


def text(value: Any) -> str:
    """A key, field or value as Redis replies it (bytes, or None for a missing one), as text."""
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)
