"""The lock engine on Redis: one Lua call per operation.

Every hold is a lease (a deadline in a sorted set per resource) renewed by the
heartbeat; a hold nobody renews simply runs out. A release frees the job's
resources and, in the same call, grants them to the parked jobs that can now
run, pushing their stored messages straight onto the broker's queue list.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from typing import Any

import redis

from pipeline.conf import Settings
from pipeline.keys import Keys, text
from pipeline.locks import scripts
from pipeline.locks.fastcall import ScriptCaller
from pipeline.locks.records import (
    SEP,
    HoldRecord,
    ParkRecord,
    QueuedMessage,
    claims_text,
    parse_claims_text,
    resources_text,
)
from pipeline.locks.ticket import (
    Acquired,
    AcquireResult,
    Blocked,
    Cancelled,
    Duplicate,
    Explanation,
    Ticket,
    Uncovered,
)


def _tokens(resources: Sequence[str], token: Any) -> dict[str, int]:
    """Every resource of a hold maps to the hold's one fencing token."""
    value = int(token or 0)
    return dict.fromkeys(resources, value) if value else {}


def _granted_at(reply: Sequence[Any]) -> float | None:
    """When a release handed a parked job the locks it starts with (None: not so)."""
    try:
        return float(text(reply[4])) / 1000 if len(reply) > 4 else None
    except ValueError:
        return None


class RedisLockEngine:
    """The lock engine on one Redis (or one Cluster slot, thanks to the hash tag).

    It serves three kinds of callers, each through its own protocol
    (:mod:`pipeline.locks.protocols`): a job's own path, the read-only views,
    and operators.
    """

    def __init__(self, client: redis.Redis, keys: Keys, settings: Settings) -> None:
        self.client = client
        self.keys = keys
        self.settings = settings
        self._scripts = scripts.register_all(client)
        self._fast = ScriptCaller(client, {n: scripts.source(n) for n in ("acquire", "release")},
                                  keys.events, scripts.library())
        self._key = [keys.events]
        self._base = keys.base
        self._lease_ms = int(settings.lease * 1000)
        self._grant_ms = int(settings.grant_ttl * 1000)
        self._wait_ms = int(settings.wait_timeout * 1000)
        self._maxlen = settings.events_maxlen

    def _run(self, name: str, *args: Any) -> Any:
        return self._scripts[name](keys=self._key, args=(self._base, *args))

    def acquire(self, ticket: Ticket, *, host: str, pid: int, park_message: str = "",
                queue_key: str = "") -> AcquireResult:
        """Take all claims of *ticket*, or park it when *park_message* is given.

        Without a message a blocked job is left untouched (the caller builds
        the message only on this slow path and calls again).
        """
        listed, raw, resources = resources_text(ticket.claims)
        reply = self._fast.call("acquire", (
            self._base, ticket.job_id, ticket.holder, self._lease_ms, ticket.priority,
            claims_text(ticket.claims), host, pid, ticket.detail, self._maxlen,
            park_message, queue_key, self._grant_ms, self._wait_ms, ticket.submitted_ms,
            1 if ticket.step else 0, listed, 1 if ticket.guest else 0,
        ))
        status = int(reply[0])
        if status in (1, 3):
            if reply[2] != raw:
                resources = tuple(json.loads(reply[2]))
            return Acquired(_tokens(resources, reply[1]), guest=status == 3,
                            holder=text(reply[3]), granted_at=_granted_at(reply))
        if status == 2:
            return Duplicate()
        if status == 4:
            return Uncovered(text(reply[1]))
        if status == 5:
            return Cancelled()
        return Blocked(text(reply[1]), text(reply[2]), int(reply[3]))

    def release(self, holder: str, job_id: str, *, event: str = "", detail: str = "{}",
                keep_seconds: float = 0.0, wait: bool = True, token: int | None = None) -> int:
        """End the hold (or keep it *keep_seconds* longer) and write *event* if given.

        With *token*, only the grant with that fencing token is ended (a late
        release of an earlier run of the same job changes nothing). With
        ``wait=False`` the call is sent without waiting for its reply (it runs
        as soon as Redis reads it) and the return value is 0.
        """
        args = (self._base, holder, job_id, event, detail, int(keep_seconds * 1000),
                self._grant_ms, self._wait_ms, self._maxlen, "" if token is None else token)
        if not wait:
            self._fast.send("release", args)
            return 0
        return int(self._fast.call("release", args))

    def wait_replicas(self, replicas: int, timeout: float) -> int:
        """Wait until *replicas* replicas have this thread's lock writes (Redis ``WAIT``).

        Returns:
            How many replicas acknowledged them within *timeout* seconds.
        """
        return self._fast.wait_replicas(replicas, max(1, int(timeout * 1000)))

    def renew(self, holders: Sequence[str]) -> list[str]:
        """Extend every hold in *holders* by one lease; return those already lost."""
        if not holders:
            return []
        lost = self._run("renew", self._lease_ms, self._grant_ms, self._wait_ms,
                         self._maxlen, *holders)
        return [text(h) for h in lost]

    def sweep(self, limit: int = 100) -> tuple[int, int]:
        """Drop holds whose lease ran out and expire jobs parked too long."""
        dropped, expired, _ = self.sweep_counts(limit)
        return dropped, expired

    def cancel_parked(self, job_id: str, reason: str, *, event: str = "cancelled") -> bool:
        """Take a parked job out of every line; the caller records it."""
        detail = json.dumps({"reason": reason})
        return bool(self._run("cancel", job_id, event, detail, self._grant_ms, self._wait_ms,
                              self._maxlen))

    def reprioritize_parked(self, job_id: str, priority: int) -> int | None:
        """Move a parked job to *priority* in every line; None if it is not parked."""
        previous = int(self._run("reprioritize", job_id, priority, self._grant_ms,
                                 self._wait_ms, self._maxlen))
        return None if previous < 0 else previous

    def explain(self, job_id: str, holder: str | None = None) -> Explanation:
        """Read a job's hold or parked record (a few reads, no scan)."""
        keys = self.keys
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(keys.holder(holder or job_id))
        pipe.get(keys.parked(job_id))
        hold, parked = pipe.execute()
        if parked:
            return self._explain_parked(job_id, ParkRecord.parse(job_id, text(parked)))
        hold = {text(k): text(v) for k, v in hold.items()}
        if hold:  # the job's own hold, or its workflow's (asked by workflow id)
            resources = tuple(c.resource for c in parse_claims_text(hold.get("claims", "")))
            return Explanation(
                job_id=job_id, status=hold.get("state", "running"), holder=holder or job_id,
                resources=resources, tokens=_tokens(resources, hold.get("token")),
                host=hold.get("host", ""), pid=hold.get("pid", ""),
                expires_at=float(hold.get("expires", "0")) / 1000,
                current_job=hold.get("job", ""),
            )
        return Explanation(job_id=job_id, status="unknown")

    def _explain_parked(self, job_id: str, parked: ParkRecord) -> Explanation:
        position: Any = (self.client.zrank(self.keys.line(parked.resource), job_id)
                         if parked.resource else None)
        return Explanation(
            job_id=job_id, status="parked", holder=parked.holder,
            resources=tuple(c.resource for c in parse_claims_text(parked.claims)),
            waiting_for=parked.resource, blocked_by=parked.blocked_by,
            position=0 if position is None else int(position) + 1,
            priority=parked.priority, parked_at=parked.since / 1000,
        )

    def queued_position(self, lists: Sequence[str], job_id: str) -> QueuedMessage | None:
        """Where a job waits in the broker lists (most urgent first), or None if it is not there."""
        return self._queued(lists, job_id, "position", "")

    def take_queued(self, lists: Sequence[str], job_id: str, reason: str
                    ) -> QueuedMessage | None:
        """Take a job out of the broker lists and record it cancelled with *reason*.

        Returns:
            Where it was and its message, or None if it was not there.
        """
        return self._queued(lists, job_id, "remove", reason)

    def _queued(self, lists: Sequence[str], job_id: str, mode: str, reason: str
                ) -> QueuedMessage | None:
        encoded = json.dumps(job_id)  # as kombu and the park envelope write it
        detail = json.dumps({"reason": reason or "cancelled by request"})
        reply = self._scripts["queued"](
            keys=list(lists), args=(self._base, mode, job_id, detail, self._maxlen,
                                    f'"id": {encoded}', f'"id":{encoded}'))
        if not int(reply[0]):
            return None
        index = int(reply[0])
        return QueuedMessage(lists[index - 1], index, int(reply[1]), text(reply[2]))

    def swap_queued(self, found: QueuedMessage, target_list: str, message: str,
                    detail: str) -> bool:
        """Replace a queued job's message by *message* at the back of *target_list*.

        Atomic: False (and nothing changed) if the message was taken meanwhile.
        A ``reprioritized`` event with *detail* is written when it was moved.
        """
        job_id = str(json.loads(found.message)["headers"]["id"])
        reply = self._scripts["queued"](
            keys=[found.list_key, target_list],
            args=(self._base, "swap", job_id, detail, self._maxlen, found.message, message))
        return bool(int(reply[0]))

    def parked_message(self, job_id: str) -> str:
        """The stored message of a parked job ('' if it is not parked)."""
        record = self.client.get(self.keys.parked(job_id))
        return ParkRecord.parse(job_id, text(record)).message if record else ""

    def take_expired(self, limit: int) -> list[tuple[str, str]]:
        """Parked jobs that expired and were not reported yet, oldest first, at most
        *limit*: (job id, its stored message). Taken: the caller reports them."""
        items = self.client.lpop(self.keys.expired, limit) or []
        return [(job, message) for job, _, message in
                (text(item).partition(SEP) for item in items)]

    def mark_cancelled(self, *ids: str) -> None:
        """Make workers drop these jobs or workflows when their messages arrive."""
        if ids:
            now = int(time.time() * 1000)
            self.client.zadd(self.keys.cancelled, dict.fromkeys(ids, now))

    def parked_counts(self) -> dict[int, int]:
        """Parked jobs per priority (one read)."""
        raw = self.client.hgetall(self.keys.parked_count)
        return {int(text(k)): int(text(v)) for k, v in raw.items() if int(text(v))}

    def parked_by_kind(self) -> dict[str, int]:
        """Parked jobs per kind of the first resource blocking them (one read)."""
        raw = self.client.hgetall(self.keys.parked_kinds)
        return {text(k): int(text(v)) for k, v in raw.items() if int(text(v))}

    def parked_jobs(self, limit: int = 100) -> list[Explanation]:
        """The jobs parked longest, oldest first (at most *limit*), each as :meth:`explain`.

        O(limit) reads, whatever the number parked (see :meth:`parked_records`).
        """
        found = []
        for job_id, record in self.parked_records(chunk=max(limit, 1)):
            found.append(self._explain_parked(job_id, record))
            if len(found) >= limit:
                break
        return found

    def parked_records(self, chunk: int = 1000) -> Iterator[tuple[str, ParkRecord]]:
        """Every parked job with its record, oldest parked first, read *chunk* at a time.

        Walks the expiry list (``parked_order``), whose entries of jobs no longer
        parked are dropped lazily, and reads each job's record in one round trip
        per chunk. Stop early for the oldest few; the whole walk (an operator's
        flush) is O(parked jobs).
        """
        seen: set[str] = set()
        start = 0
        while True:
            entries = self.client.lrange(self.keys.parked_order, start, start + chunk - 1)
            if not entries:
                return
            start += len(entries)
            ids = []
            for entry in entries:
                job_id = text(entry).partition("|")[2]
                if job_id not in seen:
                    seen.add(job_id)
                    ids.append(job_id)
            pipe = self.client.pipeline(transaction=False)
            for job_id in ids:
                pipe.get(self.keys.parked(job_id))
            for job_id, record in zip(ids, pipe.execute(raise_on_error=False), strict=True):
                if isinstance(record, bytes | str) and record:
                    yield job_id, ParkRecord.parse(job_id, text(record))

    def holders_of(self, resource: str) -> list[tuple[str, str, float]]:
        """(holder, mode, lease deadline) of every live hold on *resource*."""
        pipe = self.client.pipeline(transaction=False)
        pipe.zrange(self.keys.writers(resource), 0, -1, withscores=True)
        pipe.zrange(self.keys.readers(resource), 0, -1, withscores=True)
        writers, readers = pipe.execute()
        return ([(text(h), "x", s / 1000) for h, s in writers]
                + [(text(h), "s", s / 1000) for h, s in readers])

    def holds(self, limit: int = 1000) -> list[HoldRecord]:
        """Every live hold (at most *limit*), soonest lease deadline first.

        Reads the ``holders`` index and each hold's record in one round trip:
        O(holds), which the global capacity bounds, never the parked jobs.
        """
        entries: list[Any] = self.client.zrange(self.keys.holders, 0, max(limit, 1) - 1,
                                                withscores=True)
        pipe = self.client.pipeline(transaction=False)
        for holder, _ in entries:
            pipe.hgetall(self.keys.holder(text(holder)))
        found = []
        for (holder, deadline), raw in zip(entries, pipe.execute(), strict=True):
            fields = {text(k): text(v) for k, v in raw.items()}
            if not fields:
                continue  # released between the two reads
            found.append(HoldRecord(
                holder=text(holder), job=fields.get("job", ""),
                state=fields.get("state", "running"),
                claims=tuple(parse_claims_text(fields.get("claims", ""))),
                token=int(fields.get("token") or 0), host=fields.get("host", ""),
                pid=fields.get("pid", ""), since=float(fields.get("since") or 0) / 1000,
                expires=float(fields.get("expires") or deadline) / 1000))
        return found

    def force_release(self, resource: str, *, by: str, reason: str
                      ) -> tuple[list[HoldRecord], list[str]]:
        """End every hold on *resource* and hand it on (``force_release.lua``).

        Returns:
            The holds ended (holder, job, token and claims; ``since``, ``expires``,
            ``host`` and ``pid`` are not read) and the holders of *resource*
            afterwards: the parked jobs it was handed to.
        """
        ended, handed = self._run("force_release", resource, by, reason, self._grant_ms,
                                  self._wait_ms, self._maxlen)
        flat = [text(v) for v in ended]
        holds = [HoldRecord(holder=flat[i], job=flat[i + 1], state="ended",
                            claims=tuple(parse_claims_text(flat[i + 3])),
                            token=int(flat[i + 2] or 0))
                 for i in range(0, len(flat), 4)]
        return holds, [text(h) for h in handed]

    def sweep_counts(self, limit: int = 100) -> tuple[int, int, int]:
        """:meth:`sweep`, also counting the lines left for later that it served."""
        reply = self._run("sweep", self._grant_ms, self._wait_ms, self._maxlen, limit)
        return int(reply[0]), int(reply[1]), int(reply[2])
