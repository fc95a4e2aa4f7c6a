"""Jobs: enqueue (one or a batch), list, get, cancel, reprioritize, position.

Every route calls the library: ``apply_async`` and
:func:`pipeline.batch.enqueue_many` (so the API validates exactly as a Python
caller does, and publishes nothing when something is rejected),
:mod:`pipeline.control`, :func:`pipeline.explain` and
:mod:`pipeline.store.queries`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from celery import Celery
from fastapi import APIRouter, Query

from pipeline import control, explain
from pipeline.api import models
from pipeline.api.deps import (
    Admin,
    App,
    Reader,
    not_found,
    store_enabled,
    store_session,
    unprocessable,
)
from pipeline.batch import enqueue_many
from pipeline.errors import PipelineError
from pipeline.priority import parse_priority
from pipeline.store import queries
from pipeline.store.models import Job

router = APIRouter(prefix="/api/jobs", tags=["jobs"])

#: Where a job is, as the locks and the broker see it, and the state it means.
LIVE_STATES = {"queued": "QUEUED", "parked": "BLOCKED", "running": "RUNNING",
               "granted": "RUNNING", "between": "RUNNING"}


def _pipeline_task(app: Celery, name: str, *where: str | int) -> Any:
    task = app.tasks.get(name)
    if task is None or not hasattr(task, "models"):
        known = sorted(n for n, t in app.tasks.items() if hasattr(t, "models"))
        unprocessable(f"task={name!r} is not accepted: expected a registered pipeline task "
                      f"({', '.join(known[:20]) or 'none registered'})", *where)
    return task


@router.post("", status_code=201, response_model=models.Enqueued)
def enqueue(body: models.Enqueue, app: App, _: Admin) -> models.Enqueued:
    """Publish one job, validated as ``apply_async`` validates it."""
    task = _pipeline_task(app, body.task, "body")
    try:
        result = task.apply_async(tuple(body.args), body.kwargs, **body.options())
    except (PipelineError, ValueError, TypeError) as exc:
        unprocessable(exc, "body")
    return models.Enqueued(id=result.id, task=body.task)


@router.post("/batch", status_code=201, response_model=models.EnqueuedBatch)
def enqueue_batch(body: models.EnqueueBatch, app: App, _: Admin) -> models.EnqueuedBatch:
    """Publish many jobs in one round trip: every one valid, or none published."""
    signatures = []
    for index, item in enumerate(body.jobs):
        task = _pipeline_task(app, item.task, "body", "jobs", index)
        signatures.append(task.s(*item.args, **item.kwargs).set(**item.options()))
    try:
        results = enqueue_many(app, signatures)
    except (PipelineError, ValueError, TypeError) as exc:
        unprocessable(exc, "body")
    return models.EnqueuedBatch(jobs=[models.Enqueued(id=r.id, task=item.task)
                                      for r, item in zip(results, body.jobs, strict=True)])


def job_out(job: Job) -> models.JobOut:
    """A store row as the API shows it."""
    return models.JobOut(
        id=job.id, task=job.task, state=job.state, priority=job.priority,
        priority_name=models.priority_name(job.priority), user=job.user, project=job.project,
        models=job.models, attempts=job.attempts, args=job.args, queued_at=job.queued_at,
        blocked_at=job.blocked_at, started_at=job.started_at, finished_at=job.finished_at,
        runtime=job.runtime, worker_host=job.worker_host, result=job.result, error=job.error,
        blocked_by_job_id=job.blocked_by_job_id, conflict_reason=job.conflict_reason,
        workflow_id=job.workflow_id)


def _priority_filter(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_priority(int(value) if value.isdigit() else value)
    except PipelineError as exc:
        unprocessable(exc, "query")


@router.get("", response_model=models.JobPage)
def list_jobs(
    app: App, _: Reader,
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
                               "model": model, "priority": _priority_filter(priority),
                               "since": since, "until": until}
    with store_session(app) as session:
        try:
            rows = queries.list_jobs(session, limit=limit, offset=offset, **filters)
            total = queries.count_jobs(session, **filters)
        except PipelineError as exc:
            unprocessable(exc, "query")
        return models.JobPage(total=total, limit=limit, offset=offset,
                              jobs=[job_out(row) for row in rows])


def _why(position: control.Position, locks: Any, job: Job | None) -> str | None:
    if position.where == "parked":
        return str(locks.describe())
    if position.where == "queued":
        return (f"queued in the broker at priority {position.priority}: "
                f"{position.place - 1} jobs ahead of it")
    if position.where == "unknown" and job is not None and job.state in ("QUEUED", "BLOCKED"):
        return job.conflict_reason or "published; no worker has taken it yet"
    return None


@router.get("/{job_id}", response_model=models.JobDetail)
def get_job(job_id: str, app: App, _: Reader,
            history: Annotated[int, Query(ge=0, le=queries.MAX_LIMIT)] = 100,
            ) -> models.JobDetail:
    """A job: its record, where it is, why it is not running, its history."""
    position = control.position(app, job_id)
    locks = explain(job_id, app)
    found = None
    if store_enabled(app):
        with store_session(app) as session:
            found = queries.get_job(session, job_id, history_limit=history)
    live = LIVE_STATES.get(position.where)
    if found is None and live is None:
        not_found(f"job {job_id}")
    job = found.job if found is not None else None
    state = live or (job.state if job is not None else "UNKNOWN")
    if job is not None and job.state not in ("QUEUED", "BLOCKED", "RUNNING") and not live:
        state = job.state
    return models.JobDetail(
        id=job_id, state=state, job=job_out(job) if job is not None else None,
        position=models.PositionOut(**vars(position)),
        locks=models.LockView(
            status=locks.status, description=locks.describe(), holder=locks.holder,
            resources=list(locks.resources), waiting_for=locks.waiting_for,
            blocked_by=locks.blocked_by, position=locks.position, priority=locks.priority,
            parked_at=locks.parked_at, host=locks.host, pid=locks.pid,
            expires_at=locks.expires_at),
        why_not_running=_why(position, locks, job),
        history=[models.HistoryEntry(at=row.created_at, event=row.event, detail=row.detail)
                 for row in (found.events if found is not None else [])[-history:]],
    )


@router.get("/{job_id}/position", response_model=models.PositionOut)
def get_position(job_id: str, app: App, _: Reader) -> models.PositionOut:
    """Where a waiting job stands in line (``unknown`` when it waits nowhere)."""
    return models.PositionOut(**vars(control.position(app, job_id)))


def _finished_or_unknown(app: Celery, job_id: str) -> None:
    """404 for a job nobody knows; 409 for one that is no longer waiting or running."""
    from fastapi import HTTPException

    if store_enabled(app):
        with store_session(app) as session:
            found = queries.get_job(session, job_id, history_limit=0)
        if found is not None:
            raise HTTPException(409, f"job {job_id} is {found.job.state}: it no longer waits "
                                     "or runs")
    not_found(f"job {job_id}")


@router.post("/{job_id}/cancel", response_model=models.ActionResult)
def cancel(job_id: str, app: App, caller: Admin,
           body: models.Cancel | None = None) -> models.ActionResult:
    """Cancel a queued, parked or running job, or a workflow by its id."""
    options = body or models.Cancel()
    where = control.cancel(app, job_id, terminate=options.terminate,
                           reason=f"{options.reason} ({caller.name})")
    if where == "unknown":
        _finished_or_unknown(app, job_id)
    return models.ActionResult(id=job_id, found=where, done=True)


@router.post("/{job_id}/priority", response_model=models.ActionResult)
def reprioritize(job_id: str, body: models.Reprioritize, app: App,
                 _: Admin) -> models.ActionResult:
    """Move a queued or parked job to another priority."""
    try:
        where = control.reprioritize(app, job_id, body.priority)
    except PipelineError as exc:
        unprocessable(exc, "body")
    if where == "unknown":
        _finished_or_unknown(app, job_id)
    return models.ActionResult(id=job_id, found=where, done=True)
