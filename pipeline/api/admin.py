"""Operator actions: dead letters, clearing a queue, maintenance.

Each calls the library function the CLI calls (:mod:`pipeline.actions.deadletters`,
:func:`pipeline.actions.control.flush`, the maintenance sweep), which writes the
``operator`` audit event naming the token that asked.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from pipeline.actions import control, deadletters, maintenance
from pipeline.api import models
from pipeline.api.deps import Admin, Reader, Svc, unprocessable
from pipeline.api.system import SINCE
from pipeline.errors import ActionRefused, PipelineError
from pipeline.observe.jobids import resolve_job_ids
from pipeline.observe.timewindow import parse_since
from pipeline.runtime.services import Services

router = APIRouter(prefix="/api", tags=["operator"])


@router.get("/dead-letters", response_model=list[deadletters.DeadLetter])
def list_dead_letters(services: Svc, _: Reader, task: str | None = None, user: str | None = None,
                      project: str | None = None, priority: str | None = None,
                      since: Annotated[str | None, Query(description=SINCE)] = None,
                      limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
                      ) -> list[deadletters.DeadLetter]:
    """Dead-lettered jobs, oldest first, filtered by task, user, project, level or time."""
    try:
        found = deadletters.list_dead(
            services, task=task, user=user, project=project,
            priority=models.query_priority(priority), limit=limit,
            since=None if since is None else parse_since(since).timestamp())
    except PipelineError as exc:
        unprocessable(exc, "query")
    return found


def _selection(body: models.DeadLetterSelection, by: str,
               services: Services) -> dict[str, Any]:
    given = (body.ids, body.task, body.user, body.project, body.priority)
    if all(value is None for value in given) and not body.all:
        unprocessable("all=False is not accepted: give ids, task, user, project or priority, "
                      "or all: true to act on every dead letter", "body")
    ids = None if body.ids is None else resolve_job_ids(services, body.ids)
    return {"job_ids": ids, "task": body.task, "user": body.user,
            "project": body.project, "priority": body.priority, "by": by}


@router.post("/dead-letters/requeue", response_model=models.DeadLetterAction)
def requeue_dead_letters(body: models.DeadLetterSelection, services: Svc,
                         caller: Admin) -> models.DeadLetterAction:
    """Publish dead letters again (same ids; attempt numbers go on, retries start afresh)."""
    done = deadletters.requeue(services, **_selection(body, caller.name, services))
    return models.DeadLetterAction(count=len(done), ids=done)


@router.post("/dead-letters/purge", response_model=models.DeadLetterAction)
def purge_dead_letters(body: models.DeadLetterSelection, services: Svc,
                       caller: Admin) -> models.DeadLetterAction:
    """Delete dead letters for good (the job store keeps their rows)."""
    return models.DeadLetterAction(
        count=deadletters.purge(services, **_selection(body, caller.name, services)))


@router.post("/maintenance/requeue-expired", response_model=dict[str, int])
def requeue_expired(services: Svc, _: Admin) -> dict[str, int]:
    """Run the maintenance sweep now (``pipeline.actions.maintenance.sweep_once``): holds whose
    lease ran out are dropped and their resources handed to the parked jobs next in line,
    jobs parked too long expire, lines left for later are served.

    The same sweep beat runs every few seconds; this runs it at once. A sweep that did
    something is recorded as a ``maintenance`` event.
    """
    return maintenance.sweep_once(services, limit=10_000).as_dict()


@router.post("/admin/clear", response_model=dict[str, Any])
def clear(body: models.Clear, services: Svc, caller: Admin) -> dict[str, Any]:
    """Flush waiting jobs (``pipeline flush``): queued messages and/or parked jobs, of one
    level or all. Each is recorded CANCELLED, the flush as an ``operator`` event naming
    the token. ``confirm: true`` is required unless ``dry_run``."""
    if not body.dry_run and not body.confirm:
        unprocessable("confirm=False is not accepted: a flush deletes waiting jobs; send "
                      "confirm: true, or dry_run: true to see what it would take", "body")
    state = None if body.state == "all" else body.state
    try:
        report = control.flush(services, priority=body.priority, state=state, dry_run=body.dry_run,
                               by=caller.name)
    except PipelineError as exc:
        unprocessable(exc, "body")
    return report.as_dict()


@router.post("/locks/release", response_model=dict[str, Any])
def release_lock(body: models.ReleaseLock, services: Svc, caller: Admin) -> dict[str, Any]:
    """End every hold on a resource and hand it to the parked jobs next in line
    (``pipeline locks release``); recorded as an ``operator`` event. 409 when nobody
    holds it."""
    try:
        report = control.release_resource(services, body.resource, reason=body.reason,
                                          by=caller.name)
    except ActionRefused:
        raise
    except PipelineError as exc:
        unprocessable(exc, "body")
    return report.as_dict()
