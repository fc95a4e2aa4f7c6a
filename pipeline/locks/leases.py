"""Jobs agents claim over HTTP: the claim and the lease, one Lua call each.

An agent pool is a broker queue no Celery worker consumes. ``claim.lua`` takes
its most urgent message and runs on it the rule a worker's start runs
(``take.lua``): the job is granted every lock at once under a lease, or parked
in the lines of what blocks it, to come back to the front of the pool when a
release hands it its locks. The agent shows its lease on every later call
(``lease.lua``); a lease that is not the job's current one changes nothing.

This module knows Redis and the scripts, not Celery: what a claimed job means
for its result, its workflow and its record is :mod:`pipeline.remote`'s.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from pipeline.conf import Settings
from pipeline.keys import Keys, text
from pipeline.locks import scripts
from pipeline.locks.records import SEP

#: Messages one claim call looks at before it answers "call again".
CLAIM_BUDGET = 32
#: What a claimed job's hold names as its host: the agent (it has no pid).
AGENT_HOST = "agent:"


def agent_host(agent: str) -> str:
    """The host a hold of *agent* names (``agent:gpu-01``)."""
    return AGENT_HOST + agent


@dataclass(frozen=True)
class ClaimNote:
    """Something a claim did to a job it did not hand out, for the caller to report.

    Attributes:
        kind: ``parked`` (its locks are taken: ``text`` is JSON with resource,
            blocked_by, position), ``cancelled`` (``text`` is its message) or
            ``expired`` (its expiry passed; reported with the sweep's list).
        job_id: the job.
        text: see *kind*.
    """

    kind: str
    job_id: str
    text: str


@dataclass(frozen=True)
class Granted:
    """A job claimed with every lock it needs, under a lease.

    Attributes:
        job_id: the job.
        token: the hold's fencing token (one for all its resources).
        lease: the lease token the agent shows on every later call.
        deadline: when the lease runs out unless renewed (seconds since the epoch).
        message: the broker message as it was taken.
        holder: the hold it runs under (its workflow's id for a workflow step).
        resources: the resources it holds.
    """

    job_id: str
    token: int
    lease: str
    deadline: float
    message: str
    holder: str
    resources: tuple[str, ...]


@dataclass(frozen=True)
class ClaimReply:
    """What one claim call did: a job granted (or None), and its notes.

    Attributes:
        granted: the job claimed, or None.
        more: the call looked at its budget of messages and more are left.
        next_due: when the pool's next delayed job is due (seconds since the
            epoch), or None when none is waiting.
        notes: jobs parked, cancelled or expired on the way.
    """

    granted: Granted | None
    more: bool
    next_due: float | None
    notes: tuple[ClaimNote, ...]


@dataclass(frozen=True)
class Ended:
    """A lease ended by its agent's outcome: what the caller needs to finish the job."""

    job_id: str
    holder: str
    token: int
    message: str
    agent: str
    pool: str
    claimed: float
    started: float | None


@dataclass(frozen=True)
class Refused:
    """A call whose lease is not the job's current one.

    ``why``: ``none`` (the job holds no lease), ``stale`` (another lease: a
    late agent), ``expired`` (its lease ran out: the job was given back),
    ``lost`` (its locks were released by hand: the job was given back).
    """

    why: str


def _notes(flat: Sequence[Any]) -> tuple[ClaimNote, ...]:
    values = [text(v) for v in flat]
    return tuple(ClaimNote(*values[i:i + 3]) for i in range(0, len(values), 3))


class RedisLeases:
    """The claim and lease scripts on one Redis, with the settings of this process."""

    def __init__(self, client: redis.Redis, keys: Keys, settings: Settings) -> None:
        self.client = client
        self.keys = keys
        self.settings = settings
        self._scripts = {name: client.register_script(scripts.source(name))
                         for name in ("claim", "lease")}
        self._lease_ms = int(settings.lease * 1000)
        self._common = (keys.base, int(settings.grant_ttl * 1000),
                        int(settings.wait_timeout * 1000), settings.events_maxlen)

    def _lease(self, op: str, *args: Any) -> Any:
        base, grant, wait, maxlen = self._common
        return self._scripts["lease"](keys=[self.keys.events],
                                      args=(base, op, grant, wait, maxlen, self._lease_ms, *args))

    def claim(self, pool: str, queue: str, lists: Sequence[str], agent: str, *,
              default_priority: int) -> ClaimReply:
        """One claim call for *agent* on *pool* (its broker *queue* and that queue's *lists*,
        most urgent first)."""
        settings = self.settings
        base, grant, wait, maxlen = self._common
        reply = self._scripts["claim"](keys=[self.keys.events], args=(
            base, pool, queue, agent, agent_host(agent), self._lease_ms, secrets.token_hex(12),
            settings.capacity_user, settings.capacity_project, settings.capacity_model,
            settings.capacity_global, default_priority, grant, wait, maxlen, CLAIM_BUDGET,
            *lists))
        status = int(reply[0])
        if status == 1:
            _, job, token, lease, deadline, message, holder, resources, notes = reply
            listed = text(resources)
            granted = Granted(
                text(job), int(text(token)), text(lease), int(deadline) / 1000, text(message),
                text(holder),
                tuple(_json_names(listed)))
            return ClaimReply(granted, False, None, _notes(notes))
        if status == 2:
            return ClaimReply(None, True, None, _notes(reply[1]))
        due = float(text(reply[2]))
        return ClaimReply(None, False, None if due < 0 else due / 1000, _notes(reply[1]))

    def start(self, job_id: str, lease: str) -> tuple[str, bool, float] | Refused:
        """Mark the job started: its message, whether it was started before, and its
        lease's deadline (seconds since the epoch)."""
        reply = self._lease("start", job_id, lease)
        if not int(reply[0]):
            return Refused(text(reply[1]))
        return text(reply[1]), bool(int(reply[2])), int(text(reply[3])) / 1000

    def renew(self, job_id: str, lease: str) -> float | Refused:
        """Renew the lease and the job's locks by one lease; the new deadline (seconds)."""
        reply = self._lease("renew", job_id, lease)
        if not int(reply[0]):
            return Refused(text(reply[1]))
        return int(reply[1]) / 1000

    def finish(self, job_id: str, lease: str) -> Ended | Refused:
        """End the lease for the job's outcome (the caller releases its hold)."""
        reply = self._lease("finish", job_id, lease)
        if not int(reply[0]):
            return Refused(text(reply[1]))
        holder, token, message, agent, pool, claimed, started = (text(v) for v in reply[1:8])
        return Ended(job_id, holder, int(token or 0), message, agent, pool, int(claimed) / 1000,
                     int(started) / 1000 if started else None)

    def give_back(self, job_id: str, lease: str, reason: str) -> Refused | None:
        """Give the job back to its pool at once (its locks freed and handed on)."""
        reply = self._lease("giveback", job_id, lease, reason)
        return None if int(reply[0]) else Refused(text(reply[1]))

    def cancel(self, job_id: str, reason: str) -> str | None:
        """End a claimed job's lease and locks, recorded cancelled; its message, or None
        when the job holds no lease."""
        reply = self._lease("cancel", job_id, reason)
        return text(reply[1]) if int(reply[0]) else None

    def expire(self, limit: int = 100) -> int:
        """Give back (at most *limit*) claimed jobs whose lease ran out; how many."""
        return int(self._lease("expire", limit)[0])

    def pool_of(self, job_id: str) -> str | None:
        """The pool of a claimed job (None when it holds no lease)."""
        pool = self.client.hget(self.keys.lease(job_id), "pool")
        return text(pool) if pool is not None else None

    def lease_of(self, job_id: str) -> dict[str, str]:
        """The lease record of a claimed job ({} when it holds none): agent, pool, times."""
        raw = self.client.hgetall(self.keys.lease(job_id))
        return {text(k): text(v) for k, v in raw.items() if text(k) not in ("lease", "msg")}

    def delay(self, queue: str, index: int, message: str, due: float) -> None:
        """Keep *message* (for list number *index* of *queue*, from 1) until *due* (seconds)."""
        self.client.zadd(self.keys.delayed(queue), {f"{index}{SEP}{message}": int(due * 1000)})

    def find_delayed(self, queue: str, job_id: str) -> tuple[str, float] | None:
        """A delayed message of *job_id* in *queue* (the member as stored, when it is due
        in seconds), or None. Reads the whole set: an operator's query."""
        encoded = json.dumps(job_id)
        needles = (f'"id": {encoded}', f'"id":{encoded}')
        entries: Any = self.client.zrange(self.keys.delayed(queue), 0, -1, withscores=True)
        for member, due in entries:
            found = text(member)
            if any(needle in found for needle in needles):
                return found, float(due) / 1000
        return None

    def take_delayed(self, queue: str, member: str) -> bool:
        """Take a delayed message out (False if it was promoted or taken meanwhile)."""
        return bool(self.client.zrem(self.keys.delayed(queue), member))

    def pools(self) -> list[str]:
        """Every agent pool jobs were published to or claimed from, sorted."""
        return sorted(text(p) for p in self.client.smembers(self.keys.pools))


def _json_names(listed: str) -> list[str]:
    value = json.loads(listed) if listed else []
    return [str(v) for v in value] if isinstance(value, list) else []
