"""Jobs: enqueue (one or a batch), list, get, cancel, reprioritize, position.

Every route calls the library: ``apply_async`` and
:func:`pipeline.job.batch.enqueue_many` (so the API validates exactly as a Python
caller does, and publishes nothing when something is rejected),
:mod:`pipeline.actions.control`, :func:`pipeline.observe.inspection.job_detail` (what ``pipeline
show`` prints) and :mod:`pipeline.store.queries`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, NoReturn

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
from pipeline.errors import PipelineError, UnknownJobError
from pipeline.job.batch import enqueue_many
from pipeline.observe import inspection
from pipeline.runtime.services import Services
from pipeline.store import queries

router = APIRouter(prefix="/api/jobs", tags=["jobs"])

#: Where a job is, as the locks and the broker see it, and the state it means.
LIVE_STATES = {"queued": "QUEUED", "parked": "BLOCKED", "running": "RUNNING",
               "granted": "RUNNING", "between": "RUNNING", "delayed": "QUEUED"}


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
    since: datetime | None = None, until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> models.JobPage:
    """Jobs matching every filter, most recently queued first, one page at a time."""
    filters: dict[str, Any] = {"states": state, "user": user, "project": project,
                               "model": model, "since": since, "until": until}
    with store_session(services.app) as session:
        try:
            filters["priority"] = models.query_priority(priority)
            rows = queries.list_jobs(session, limit=limit, offset=offset, **filters)
            total = queries.count_jobs(session, **filters)
        except PipelineError as exc:
            unprocessable(exc, "query")
        return models.JobPage(total=total, limit=limit, offset=offset,
                              jobs=[models.JobOut.of(queries.job_dict(row)) for row in rows])


def view(detail: inspection.JobDetail) -> models.JobView:
    """A library :class:`~pipeline.observe.inspection.JobDetail` as the API shows it."""
    record = detail.record
    state = LIVE_STATES.get(detail.where) or (record["state"] if record else None) \
        or detail.result_state
    return models.JobView(
        id=detail.job_id, state=state, where=detail.where, why_not_running=detail.why,
        place=detail.place, priority=detail.priority, holder=detail.holder,
        resources=list(detail.resources), waiting_for=detail.waiting_for,
        blocked_by=detail.blocked_by, host=detail.host, pid=detail.pid,
        expires=detail.expires, result_state=detail.result_state,
        job=None if record is None else models.JobOut.of(record),
        history=[models.HistoryEntry(**row) for row in detail.history],
        dead_letter=detail.dead_letter)


@router.get("/{job_id}", response_model=models.JobView)
def get_job(job_id: str, services: Svc, _: Reader,
            history: Annotated[int, Query(ge=0, le=queries.MAX_LIMIT)] = 100,
            ) -> models.JobView:
    """A job wherever it is: its record, where it waits, why it is not running, history."""
    try:
        return view(inspection.job_detail(services, job_id, history=history))
    except UnknownJobError:
        not_found(f"job {job_id}")


@router.get("/{job_id}/position", response_model=models.PositionOut)
def get_position(job_id: str, services: Svc, _: Reader) -> models.PositionOut:
    """Where a waiting job stands in line (``unknown`` when it waits nowhere)."""
    return models.PositionOut(**vars(control.position(services, job_id)))


def _not_waiting(services: Services, job_id: str, action: str) -> NoReturn:
    """404 for a job nobody knows; 409 saying where a job is that *action* cannot touch."""
    try:
        detail = inspection.job_detail(services, job_id, history=0)
    except UnknownJobError:
        not_found(f"job {job_id}")
    raise HTTPException(409, f"job {job_id} cannot be {action}: {detail.why or detail.where}")


@router.post("/{job_id}/cancel", response_model=models.ActionResult)
def cancel(job_id: str, services: Svc, caller: Admin,
           body: models.Cancel | None = None) -> models.ActionResult:
    """Cancel a queued, parked or running job, or a workflow by its id."""
    options = body or models.Cancel()
    where = control.cancel(services, job_id, terminate=options.terminate,
                           reason=f"{options.reason} ({caller.name})")
    if where == "unknown":
        _not_waiting(services, job_id, "cancelled")
    return models.ActionResult(id=job_id, found=where, done=True)


@router.post("/{job_id}/priority", response_model=models.ActionResult)
def reprioritize(job_id: str, body: models.Reprioritize, services: Svc,
                 _: Admin) -> models.ActionResult:
    """Move a queued or parked job to another priority."""
    try:
        where = control.reprioritize(services, job_id, body.priority)
    except PipelineError as exc:
        unprocessable(exc, "body")
    if where == "unknown":
        _not_waiting(services, job_id, "reprioritized (only a queued or parked job can)")
    return models.ActionResult(id=job_id, found=where, done=True)
