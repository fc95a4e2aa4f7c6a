"""Dead letters: jobs whose last attempt failed, kept to be looked at, requeued or purged.

Each is a hash ``{pipeline}:dlq:<job>`` (its message, ready to publish again,
its error and who it was for) indexed by the sorted set ``{pipeline}:dlq``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pipeline.broker import layout
from pipeline.keys import WAKE_TOKEN, wake_key
from pipeline.messages.events import OPERATOR, QUEUED, emit, encode
from pipeline.priority import PRIORITY_STEPS, level_of, parse_priority
from pipeline.runtime.services import Services


@dataclass(frozen=True)
class DeadLetter:
    """One dead-lettered job."""

    job_id: str
    task: str
    error: str
    dead_at: float
    priority: int
    queue: str
    user: str = ""
    project: str = ""
    attempts: int = 0


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _load(services: Services, job_ids: Iterable[str]) -> list[tuple[DeadLetter, str]]:
    pipe = services.redis.pipeline(transaction=False)
    ids = list(job_ids)
    for job_id in ids:
        pipe.hgetall(services.keys.dead_letter(job_id))
    out = []
    for job_id, raw in zip(ids, pipe.execute(), strict=True):
        if not raw:
            continue
        row = {_text(k): _text(v) for k, v in raw.items()}
        out.append((DeadLetter(
            job_id=job_id, task=row["task"], error=row["error"], dead_at=float(row["at"]),
            priority=int(row["priority"]), queue=row["queue"], user=row["user"],
            project=row["project"], attempts=int(row.get("attempts", "0")),
        ), row["msg"]))
    return out


@dataclass(frozen=True)
class Filter:
    """Which dead letters an operation takes (every given condition must hold).

    Attributes:
        task: only this task's.
        user: only this user's.
        project: only this project's.
        priority: only those at this level (a name or an int 0-9).
        since: only those dead-lettered at or after this time (seconds since the epoch).
    """

    task: str | None = None
    user: str | None = None
    project: str | None = None
    priority: Any = None
    since: float | None = None

    def matches(self, entry: DeadLetter) -> bool:
        """Whether *entry* passes every condition."""
        level = None if self.priority is None else level_of(parse_priority(self.priority))
        return ((self.task is None or entry.task == self.task)
                and (self.user is None or entry.user == self.user)
                and (self.project is None or entry.project == self.project)
                and (level is None or level_of(entry.priority) == level)
                and (self.since is None or entry.dead_at >= self.since))


def _select(services: Services, job_ids: Iterable[str] | None, chosen: Filter,
            limit: int) -> list[tuple[DeadLetter, str]]:
    if chosen.priority is not None:
        parse_priority(chosen.priority)  # a bad level is an error, not an empty list
    if job_ids is not None:
        candidates = list(job_ids)
    else:
        keys = services.keys
        low = "-inf" if chosen.since is None else chosen.since
        candidates = [_text(j) for j in
                      services.redis.zrangebyscore(keys.dead_letters, low, "+inf")]
    found = [(entry, msg) for entry, msg in _load(services, candidates) if chosen.matches(entry)]
    return found[:limit] if limit else found


def _record_operator(services: Services, action: str, job_ids: Iterable[str], by: str) -> None:
    """One ``operator`` event per dead letter acted on, in one round trip."""
    pipe = services.redis.pipeline(transaction=False)
    for job_id in job_ids:
        emit(pipe, services.keys.events, OPERATOR, job_id, {"action": action, "by": by},
             maxlen=services.settings.events_maxlen)
    pipe.execute()


def get(services: Services, job_id: str) -> DeadLetter | None:
    """The dead letter of *job_id*, or None if it is not dead-lettered (or was purged)."""
    found = _load(services, [job_id])
    return found[0][0] if found else None


def list_dead(services: Services, *, task: str | None = None, user: str | None = None,
              project: str | None = None, priority: Any = None, since: float | None = None,
              limit: int = 100) -> list[DeadLetter]:
    """Dead-lettered jobs, oldest first, filtered as :class:`Filter` says (0 = no limit)."""
    chosen = Filter(task, user, project, priority, since)
    return [entry for entry, _ in _select(services, None, chosen, limit)]


def requeue(services: Services, job_ids: Iterable[str] | None = None, *, task: str | None = None,
            user: str | None = None, project: str | None = None, priority: Any = None,
            since: float | None = None, by: str = "operator") -> list[str]:
    """Publish dead-lettered jobs again (same id); returns their ids.

    A requeued job gets its retries afresh, and its attempt numbers go on from
    those it made (the kept message says how many).

    With no ids and no filter, every dead letter is requeued. Each is recorded
    in the audit log as an ``operator`` event (``dlq_requeue``, *by*).
    """
    done = []
    chosen = Filter(task, user, project, priority, since)
    for entry, msg in _select(services, job_ids, chosen, 0):
        lists = layout.queue_lists(services.app, entry.queue)
        target = lists[PRIORITY_STEPS.index(int(level_of(entry.priority)))]
        pipe = services.redis.pipeline(transaction=True)
        pipe.lpush(target, msg)
        pipe.lpush(wake_key(lists[0]), WAKE_TOKEN)
        pipe.delete(services.keys.dead_letter(entry.job_id))
        pipe.zrem(services.keys.dead_letters, entry.job_id)
        fields: dict[Any, Any] = encode(QUEUED, entry.job_id, {
            "task": entry.task, "priority": entry.priority, "user": entry.user or None,
            "project": entry.project or None, "attempt": entry.attempts + 1,
            "requeued": True})
        pipe.xadd(services.keys.events, fields, maxlen=services.settings.events_maxlen,
                  approximate=True)
        pipe.execute()
        done.append(entry.job_id)
    _record_operator(services, "dlq_requeue", done, by)
    return done


def purge(services: Services, job_ids: Iterable[str] | None = None, *, task: str | None = None,
          user: str | None = None, project: str | None = None, priority: Any = None,
          since: float | None = None, by: str = "operator") -> int:
    """Delete dead letters for good (the job store keeps their rows); returns how many.

    Each is recorded in the audit log as an ``operator`` event (``dlq_purge``, *by*).
    """
    chosen = _select(services, job_ids, Filter(task, user, project, priority, since), 0)
    pipe = services.redis.pipeline(transaction=True)
    for entry, _ in chosen:
        pipe.delete(services.keys.dead_letter(entry.job_id))
        pipe.zrem(services.keys.dead_letters, entry.job_id)
    pipe.execute()
    _record_operator(services, "dlq_purge", [entry.job_id for entry, _ in chosen], by)
    return len(chosen)


def as_dict(entry: DeadLetter) -> dict[str, Any]:
    """A dead letter as JSON-ready data (CLI and API)."""
    return dict(entry.__dict__)
