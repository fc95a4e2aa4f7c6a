"""Jobs: enqueue (one or a batch), list, get, cancel, reprioritize, position.

Every route calls the library: ``apply_async`` and
:func:`pipeline.job.batch.enqueue_many` (so the API validates exactly as a Python
caller does, and publishes nothing when something is rejected),
:mod:`pipeline.actions.control`, :func:`pipeline.observe.inspection.job_detail` (what ``pipeline
show`` prints) and :mod:`pipeline.store.queries`.
"""

from __future__ import annotations

from typing import Annotated, Any

import redis
from fastapi import APIRouter, HTTPException, Query

from pipeline.actions import control
from pipeline.api import models
from pipeline.api.deps import (
    Admin,
    Reader,
    Svc,
    not_found,
    store_session,
    unprocessable,
)
from pipeline.errors import InvalidJobError, PipelineError, UnknownJobError
from pipeline.job.batch import enqueue_many
from pipeline.observe import inspection
from pipeline.observe.jobids import resolve_job_id
from pipeline.observe.jobshape import job_out, job_view, priority_name
from pipeline.observe.outcomes import ActionOutcome, cancel_job, reprioritize_job
from pipeline.observe.timewindow import parse_since
from pipeline.runtime.services import Services
from pipeline.store import queries

router = APIRouter(prefix="/api/jobs", tags=["jobs"])

#: The forms ``since`` and ``until`` take (the CLI's ``--since`` takes the same).
SINCE = "30m, 2h, 1d (back from now) or an ISO 8601 date or time (naive = UTC)"


def _pipeline_task(services: Services, name: str, *where: str | int) -> Any:
    task = services.app.tasks.get(name)
    if task is None or not hasattr(task, "models"):
        known = sorted(n for n, t in services.app.tasks.items() if hasattr(t, "models"))
        unprocessable(f"task={name!r} is not accepted: expected a registered pipeline task "
                      f"({', '.join(known[:20]) or 'none registered'})", *where)
    return task


@router.post("", status_code=201, response_model=models.Enqueued)
def enqueue(body: models.Enqueue, services: Svc, _: Admin) -> models.Enqueued:
    """Publish one job, validated as ``apply_async`` validates it."""
    task = _pipeline_task(services, body.task, "body")
    try:
        result = task.apply_async(tuple(body.args), body.kwargs, **body.options())
    except (PipelineError, ValueError, TypeError) as exc:
        unprocessable(exc, "body")
    return models.Enqueued(id=result.id, task=body.task)


@router.post("/batch", status_code=201, response_model=models.EnqueuedBatch)
def enqueue_batch(body: models.EnqueueBatch, services: Svc, _: Admin) -> models.EnqueuedBatch:
    """Publish many jobs in one round trip: every one valid, or none published."""
    signatures = []
    for index, item in enumerate(body.jobs):
        task = _pipeline_task(services, item.task, "body", "jobs", index)
        signatures.append(task.s(*item.args, **item.kwargs).set(**item.options()))
    try:
        results = enqueue_many(services.app, signatures)
    except (PipelineError, ValueError, TypeError) as exc:
        unprocessable(exc, "body")
    return models.EnqueuedBatch(jobs=[models.Enqueued(id=r.id, task=item.task)
                                      for r, item in zip(results, body.jobs, strict=True)])


@router.get("", response_model=models.JobPage)
def list_jobs(
    services: Svc, _: Reader,
    state: Annotated[list[str] | None, Query(description="QUEUED, BLOCKED, RUNNING, ...")]
    = None,
    user: str | None = None, project: str | None = None, model: str | None = None,
    priority: Annotated[str | None, Query(description="critical..low or 0-9")] = None,
    since: Annotated[str | None, Query(description=SINCE)] = None,
    until: Annotated[str | None, Query(description=SINCE)] = None,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> models.JobPage:
    """Jobs matching every filter, most recently queued first, one page at a time.

    The page ``pipeline jobs --json`` prints; ``live`` is false when Redis does
    not answer (the store alone, which may lag behind).
    """
    try:
        filters: dict[str, Any] = {
            "states": state, "user": user, "project": project, "model": model,
            "since": None if since is None else parse_since(since),
            "until": None if until is None else parse_since(until, field="until"),
            "priority": models.query_priority(priority)}
    except PipelineError as exc:
        unprocessable(exc, "query")
    with store_session(services.app) as session:
        try:
            rows = queries.list_jobs(session, limit=limit, offset=offset, **filters)
            total = queries.count_jobs(session, **filters)
        except PipelineError as exc:
            unprocessable(exc, "query")
        jobs = [job_out(queries.job_dict(row)) for row in rows]
    return models.JobPage(total=total, limit=limit, offset=offset, jobs=jobs,
                          live=redis_answers(services))


def redis_answers(services: Services) -> bool:
    """Whether the app's Redis answers a ping now."""
    try:
        return bool(services.redis.ping())
    except (redis.RedisError, OSError):
        return False


@router.get("/{job_id}", response_model=models.JobView)
def get_job(job_id: str, services: Svc, _: Reader,
            history: Annotated[int, Query(ge=0, le=queries.MAX_LIMIT)] = 100,
            ) -> models.JobView:
    """A job wherever it is: its record, where it waits, why it is not running, history.

    The shape ``pipeline show --json`` prints; *job_id* may be a unique prefix.
    """
    try:
        return job_view(inspection.job_detail(services, resolve_job_id(services, job_id),
                                              history=history))
    except UnknownJobError:
        not_found(f"job {job_id}")


@router.get("/{job_id}/position", response_model=models.PositionOut)
def get_position(job_id: str, services: Svc, _: Reader) -> models.PositionOut:
    """Where a waiting job stands in line (``unknown`` when it waits nowhere)."""
    found = control.position(services, resolve_job_id(services, job_id))
    return models.PositionOut(**{**vars(found), "priority": priority_name(found.priority)})


def _answer(outcome: ActionOutcome, action: str) -> models.ActionResult:
    """The outcome when done; else 404 (nothing knows the job) or 409 saying where it is."""
    if not outcome.found:
        not_found(f"job {outcome.id}")
    if not outcome.done:
        raise HTTPException(409, f"job {outcome.id} cannot be {action}: {outcome.message}")
    return models.ActionResult(**outcome.as_dict())


@router.post("/{job_id}/cancel", response_model=models.ActionResult)
def cancel(job_id: str, services: Svc, caller: Admin,
           body: models.Cancel | None = None) -> models.ActionResult:
    """Cancel a queued, parked or running job, or a workflow by its id."""
    options = body or models.Cancel()
    outcome = cancel_job(services, resolve_job_id(services, job_id),
                         terminate=options.terminate,
                         reason=f"{options.reason} ({caller.name})")
    return _answer(outcome, "cancelled")


@router.post("/{job_id}/priority", response_model=models.ActionResult)
def reprioritize(job_id: str, body: models.Reprioritize, services: Svc,
                 _: Admin) -> models.ActionResult:
    """Move a queued or parked job to another priority."""
    try:
        outcome = reprioritize_job(services, resolve_job_id(services, job_id), body.priority)
    except InvalidJobError as exc:
        unprocessable(exc, "body")
    return _answer(outcome, "reprioritized")
