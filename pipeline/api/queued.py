"""The jobs waiting in the broker, one level at a time, in the order they will run.

``pipeline status`` and ``/api/dashboard`` count the broker's lists per level
(:func:`pipeline.observe.inspection.queue_depth`); this reads one page of one
level's list: kombu pops from the right end, so the page starting at *offset*
is ``LRANGE -(offset+limit) -(offset+1)`` read backwards (one round trip,
whatever the queue's length). What a row shows comes from the message itself
(its task and the pipeline header: user, project, models), so a job shows here
before the recorder has written it to the store.
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from pipeline.api.deps import Reader, Svc, unprocessable
from pipeline.broker.layout import queue_lists
from pipeline.errors import InvalidJobError
from pipeline.messages.header import NAME, JobHeader
from pipeline.observe.inspection import LEVELS

router = APIRouter(prefix="/api", tags=["system"])

MAX_PAGE = 200


class QueuedJob(BaseModel):
    """A message waiting in the broker."""

    id: str
    place: int
    task: str | None = None
    user: str | None = None
    project: str | None = None
    models: list[str] = []
    shared_models: list[str] = []
    priority: int | None = None
    workflow: str | None = None
    submitted_at: float | None = None


class QueuedPage(BaseModel):
    """One page of one level's waiting jobs, next to run first."""

    priority: str
    total: int
    limit: int
    offset: int
    jobs: list[QueuedJob]


def describe(raw: bytes | str, place: int) -> QueuedJob:
    """A broker message as a row; what cannot be read is left empty."""
    try:
        message = json.loads(raw)
        headers = message.get("headers") or {}
        job_id = str(headers.get("id") or message.get("properties", {}).get("correlation_id"))
    except (ValueError, TypeError, AttributeError):
        return QueuedJob(id="(unreadable message)", place=place)
    try:
        header = JobHeader.decode(headers.get(NAME))
    except InvalidJobError:
        return QueuedJob(id=job_id, place=place, task=headers.get("task"))
    return QueuedJob(
        id=job_id, place=place, task=headers.get("task"), user=header.user,
        project=header.project, models=list(header.models),
        shared_models=list(header.shared_models), priority=header.priority,
        workflow=header.workflow, submitted_at=header.submitted_at)


def _level(value: str) -> int:
    chosen = value.strip().lower()
    if chosen not in LEVELS:
        raise InvalidJobError(f"priority={value!r} is not accepted: expected one of "
                              f"{', '.join(LEVELS)}")
    return LEVELS.index(chosen)


@router.get("/queued", response_model=QueuedPage)
def get_queued(
    services: Svc, _: Reader,
    priority: Annotated[str, Query(description=", ".join(LEVELS))] = "normal",
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> QueuedPage:
    """One page of the jobs waiting in the broker at one level, next to run first
    (``place`` 1 = the next one a worker takes at that level)."""
    try:
        index = _level(priority)
    except InvalidJobError as exc:
        unprocessable(exc, "query")
    key = queue_lists(services.app)[index]
    pipe = services.redis.pipeline(transaction=False)
    pipe.llen(key)
    pipe.lrange(key, -(offset + limit), -(offset + 1))
    total, messages = pipe.execute()
    # LRANGE with a start before the list's head starts at the head: keep the page's own.
    page = list(reversed(messages))[:max(0, int(total) - offset)]
    return QueuedPage(priority=LEVELS[index], total=int(total), limit=limit, offset=offset,
                      jobs=[describe(raw, offset + n + 1) for n, raw in enumerate(page)])
