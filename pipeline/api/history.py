"""The store's recent past for the dashboard: per-minute history and the audit log.

``GET /api/history`` serves :func:`pipeline.store.history.history` (the charts:
depth per level, throughput, failures, wait and lock-wait p95 per minute);
``GET /api/audit`` serves :func:`pipeline.store.audit.recent` (operator actions
and job events, newest first). Both read the job store only, with a read token.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from pipeline.api.deps import Reader, Svc, store_session, unprocessable
from pipeline.errors import PipelineError
from pipeline.store import audit, history
from pipeline.store.queries import MAX_LIMIT

router = APIRouter(prefix="/api", tags=["system"])


class AuditRow(BaseModel):
    """One audit event: what happened to which job (or the system), when, with details."""

    event: str
    job_id: str | None = None
    task: str | None = None
    at: datetime | None = None
    detail: dict[str, Any] = {}


class AuditOut(BaseModel):
    """One page of the audit log, newest first."""

    total: int
    limit: int
    offset: int
    events: list[AuditRow]


@router.get("/history", response_model=history.History)
def get_history(
    services: Svc, _: Reader,
    minutes: Annotated[int, Query(
        description=f"Whole minutes up to now, 1 to {history.MAX_MINUTES}",
        json_schema_extra={"minimum": 1, "maximum": history.MAX_MINUTES})] = 60,
) -> history.History:
    """Per minute of the last *minutes*: jobs waiting to start per level at its end, jobs
    finished and failed in it, p95 of the wait (queued -> started) and of the lock wait
    (parked -> started) of the jobs that started in it. From the job store."""
    try:
        history.check_minutes(minutes)
    except PipelineError as exc:
        unprocessable(exc, "query")
    with store_session(services.app) as session:
        return history.history(session, minutes)


@router.get("/audit", response_model=AuditOut)
def get_audit(
    services: Svc, _: Reader,
    event: Annotated[list[str] | None, Query(
        description="Only these event types (operator, queued, cancelled, ...)")] = None,
    job: Annotated[str | None, Query(description="Only this job's events")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> AuditOut:
    """The audit log, newest first: operator actions (flush, lock release, dead letters
    requeued or purged, naming the token) and job events, with each job's task."""
    with store_session(services.app) as session:
        try:
            page = audit.recent(session, event_types=event, job_id=job, limit=limit,
                                offset=offset)
        except PipelineError as exc:
            unprocessable(exc, "query")
    return AuditOut(total=page.total, limit=limit, offset=offset,
                    events=[AuditRow(**row) for row in page.rows])
