"""Operator actions: dead letters, clearing a queue, maintenance.

Each calls the library function the CLI calls (:mod:`pipeline.deadletters`,
:func:`pipeline.control.flush`, the maintenance sweep), which writes the
``operator`` audit event naming the token that asked.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from pipeline import deadletters
from pipeline.api import models
from pipeline.api.deps import Admin, App, Reader, unprocessable

router = APIRouter(prefix="/api", tags=["operator"])


@router.get("/dead-letters", response_model=list[models.DeadLetterOut])
def list_dead_letters(app: App, _: Reader, task: str | None = None, user: str | None = None,
                      limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
                      ) -> list[models.DeadLetterOut]:
    """Dead-lettered jobs, oldest first."""
    return [models.DeadLetterOut(**deadletters.as_dict(entry))
            for entry in deadletters.list_dead(app, task=task, user=user, limit=limit)]


def _selection(body: models.DeadLetterSelection) -> dict[str, Any]:
    if body.ids is None and body.task is None and body.user is None and not body.all:
        unprocessable("all=false is not accepted: give ids, task or user, or all=true to act "
                      "on every dead letter", "body")
    return {"job_ids": body.ids, "task": body.task, "user": body.user}


@router.post("/dead-letters/requeue", response_model=models.DeadLetterAction)
def requeue_dead_letters(body: models.DeadLetterSelection, app: App,
                         _: Admin) -> models.DeadLetterAction:
    """Publish dead letters again (same ids, fresh attempts)."""
    done = deadletters.requeue(app, **_selection(body))
    return models.DeadLetterAction(count=len(done), ids=done)


@router.post("/dead-letters/purge", response_model=models.DeadLetterAction)
def purge_dead_letters(body: models.DeadLetterSelection, app: App,
                       _: Admin) -> models.DeadLetterAction:
    """Delete dead letters for good (the job store keeps their rows)."""
    return models.DeadLetterAction(count=deadletters.purge(app, **_selection(body)))


@router.post("/maintenance/requeue-expired", response_model=dict[str, Any])
def requeue_expired(app: App, caller: Admin) -> dict[str, Any]:
    """Run the maintenance sweep now: free holds whose lease ran out (their resources go
    to the parked jobs next in line) and expire jobs parked too long.

    The same sweep beat runs every few seconds; this runs it at once.
    """
    from pipeline.engine import engine_for
    from pipeline.events import OPERATOR, emit

    engine = engine_for(app)
    dropped, expired = engine.locks.sweep(limit=10_000)
    emit(engine.redis, engine.keys.events, OPERATOR, "",
         {"action": "sweep", "by": caller.name, "count": dropped + expired},
         maxlen=engine.settings.events_maxlen)
    return {"holds_dropped": dropped, "jobs_expired": expired}
