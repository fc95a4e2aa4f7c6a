"""A job that failed its last attempt becomes a dead letter (written in the worker).

Each is a hash ``{pipeline}:dlq:<job>`` (its message, ready to publish again,
its error and who it was for) indexed by the sorted set ``{pipeline}:dlq``;
:mod:`pipeline.actions.deadletters` lists, requeues and purges them.
"""

from __future__ import annotations

import time
from typing import Any

from pipeline.messages import envelope
from pipeline.messages.context import JobContext
from pipeline.messages.header import NAME, JobHeader
from pipeline.runtime.services import Services


def record(services: Services, request: JobContext, task_name: str, priority: int, error: str,
           header: JobHeader, *, guest: bool = False,
           headers: dict[str, Any] | None = None) -> None:
    """Keep the job that just failed its last attempt (called in the worker).

    A guest (a job that ran under the hold of the job that published it) is kept
    without that tie: requeued, it takes its own locks. *headers* replaces the
    request's extra headers (the worker's main process, which has none, gives
    the job header). The kept message counts the attempts made so far
    (``earlier_attempts``): requeued, its attempt numbers go on from there.
    """
    app, keys = services.app, services.keys
    attempts = (header.earlier_attempts or 0) + (request.retries or 0) + 1
    headers = dict(headers if headers is not None else request.headers or {})
    header = header.but(earlier_attempts=attempts)
    if guest:
        header = header.but(workflow=None)
    headers[NAME] = header.encode()
    queue = (request.delivery_info or {}).get("routing_key") or app.conf.task_default_queue
    entry: dict[Any, Any] = {
        "task": task_name, "error": error, "at": str(time.time()), "priority": str(priority),
        "queue": queue, "user": header.user or "", "project": header.project or "",
        "attempts": str(attempts),
        "msg": envelope.message_for(app, request, priority, retries=0, headers=headers),
    }
    pipe = services.redis.pipeline(transaction=True)
    pipe.hset(keys.dead_letter(request.id), mapping=entry)
    pipe.zadd(keys.dead_letters, {request.id: time.time()})
    pipe.execute()
