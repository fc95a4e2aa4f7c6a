"""Dead letters: jobs whose last attempt failed, kept to be looked at, requeued or purged.

Each is a hash ``{pipeline}:dlq:<job>`` (its message, ready to publish again,
its error and who it was for) indexed by the sorted set ``{pipeline}:dlq``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from celery import Celery

from pipeline import parking
from pipeline.engine import engine_for
from pipeline.events import QUEUED, encode
from pipeline.header import NAME, JobHeader
from pipeline.priority import PRIORITY_STEPS, level_of


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


def record(app: Celery, request: Any, task_name: str, priority: int, error: str,
           header: JobHeader, *, guest: bool = False,
           headers: dict[str, Any] | None = None) -> None:
    """Keep the job that just failed its last attempt (called in the worker).

    A guest (a job that ran under the hold of the job that published it) is kept
    without that tie: requeued, it takes its own locks. *headers* replaces the
    request's extra headers (the worker's main process, which has none, gives
    the job header).
    """
    keys = engine_for(app).keys
    if guest:
        headers = dict(headers if headers is not None else request.headers or {})
        headers[NAME] = header.but(workflow=None).encode()
    queue = (request.delivery_info or {}).get("routing_key") or app.conf.task_default_queue
    entry: dict[Any, Any] = {
        "task": task_name, "error": error, "at": str(time.time()), "priority": str(priority),
        "queue": queue, "user": header.user or "", "project": header.project or "",
        "attempts": str((request.retries or 0) + 1),
        "msg": parking.message_for(app, request, priority, retries=0, headers=headers),
    }
    pipe = engine_for(app).redis.pipeline(transaction=True)
    pipe.hset(keys.dead_letter(request.id), mapping=entry)
    pipe.zadd(keys.dead_letters, {request.id: time.time()})
    pipe.execute()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _load(app: Celery, job_ids: Iterable[str]) -> list[tuple[DeadLetter, str]]:
    engine = engine_for(app)
    pipe = engine.redis.pipeline(transaction=False)
    ids = list(job_ids)
    for job_id in ids:
        pipe.hgetall(engine.keys.dead_letter(job_id))
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


def _select(app: Celery, job_ids: Iterable[str] | None, task: str | None, user: str | None,
            limit: int) -> list[tuple[DeadLetter, str]]:
    if job_ids is not None:
        candidates = list(job_ids)
    else:
        keys = engine_for(app).keys
        candidates = [_text(j) for j in engine_for(app).redis.zrange(keys.dead_letters, 0, -1)]
    chosen = [(entry, msg) for entry, msg in _load(app, candidates)
              if (task is None or entry.task == task) and (user is None or entry.user == user)]
    return chosen[:limit] if limit else chosen


def list_dead(app: Celery, *, task: str | None = None, user: str | None = None,
              limit: int = 100) -> list[DeadLetter]:
    """Dead-lettered jobs, oldest first, optionally only of one task or user."""
    return [entry for entry, _ in _select(app, None, task, user, limit)]


def requeue(app: Celery, job_ids: Iterable[str] | None = None, *, task: str | None = None,
            user: str | None = None) -> list[str]:
    """Publish dead-lettered jobs again (same id, fresh attempts); returns their ids.

    With no ids and no filter, every dead letter is requeued.
    """
    engine = engine_for(app)
    done = []
    for entry, msg in _select(app, job_ids, task, user, 0):
        lists = parking.queue_lists(app, entry.queue)
        target = lists[PRIORITY_STEPS.index(int(level_of(entry.priority)))]
        pipe = engine.redis.pipeline(transaction=True)
        pipe.lpush(target, msg)
        pipe.delete(engine.keys.dead_letter(entry.job_id))
        pipe.zrem(engine.keys.dead_letters, entry.job_id)
        fields: dict[Any, Any] = encode(QUEUED, entry.job_id, {
            "task": entry.task, "priority": entry.priority, "user": entry.user or None,
            "project": entry.project or None, "attempt": 1, "requeued": True})
        pipe.xadd(engine.keys.events, fields, maxlen=engine.settings.events_maxlen,
                  approximate=True)
        pipe.execute()
        done.append(entry.job_id)
    return done


def purge(app: Celery, job_ids: Iterable[str] | None = None, *, task: str | None = None,
          user: str | None = None) -> int:
    """Delete dead letters for good (the job store keeps their rows); returns how many."""
    engine = engine_for(app)
    chosen = _select(app, job_ids, task, user, 0)
    pipe = engine.redis.pipeline(transaction=True)
    for entry, _ in chosen:
        pipe.delete(engine.keys.dead_letter(entry.job_id))
        pipe.zrem(engine.keys.dead_letters, entry.job_id)
    pipe.execute()
    return len(chosen)


def as_dict(entry: DeadLetter) -> dict[str, Any]:
    """A dead letter as JSON-ready data (CLI and API)."""
    return dict(entry.__dict__)
