"""The system: statistics, queue depth, running jobs, parked jobs, locks, workers, status.

Live views come from :mod:`pipeline.observe.inspection` (the same functions as
``pipeline status``, ``pipeline locks list``...), statistics from
:mod:`pipeline.store.stats`.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from pipeline.api.deps import Reader, Svc, store_session, unprocessable
from pipeline.errors import PipelineError
from pipeline.observe import inspection
from pipeline.observe.timewindow import parse_since
from pipeline.store import queries, stats

router = APIRouter(prefix="/api", tags=["system"])


class DurationsOut(BaseModel):
    """Count, average and 95th percentile of durations in seconds."""

    count: int
    average: float | None
    p95: float | None


class ContentionOut(BaseModel):
    """How often jobs were parked behind a resource, and how long they waited."""

    resource: str
    blocked: int
    jobs: int
    average_wait: float | None


class StatsOut(BaseModel):
    """Statistics of a time window, from the job store."""

    since: datetime
    until: datetime
    waiting: dict[str, dict[str, int]]
    wait: DurationsOut
    execution: DurationsOut
    lock_wait: DurationsOut
    finished: int
    by_state: dict[str, int]
    completion_rate: float | None
    failure_rate: float | None
    completed_per_minute: float
    contention: list[ContentionOut]


#: The forms ``since`` and ``until`` take (the CLI's ``--since`` takes the same).
SINCE = "30m, 2h, 1d (back from now) or an ISO 8601 date or time (naive = UTC)"


def _window(since: str | None, until: str | None) -> tuple[datetime, datetime]:
    try:
        end = parse_since(until, field="until") if until else datetime.now(timezone.utc)
        start = parse_since(since, now=end) if since else end - timedelta(hours=1)
    except PipelineError as exc:
        unprocessable(exc, "query")
    if start >= end:
        unprocessable(f"since={start.isoformat()} is not accepted: expected a time before "
                      f"until ({end.isoformat()})", "query")
    return start, end


@router.get("/stats", response_model=StatsOut)
def get_stats(services: Svc, _: Reader,
              since: Annotated[str | None, Query(description=SINCE)] = None,
              until: Annotated[str | None, Query(description=SINCE)] = None,
              contention: Annotated[int, Query(ge=0, le=500)] = 10) -> StatsOut:
    """Wait, execution and lock-wait times, rates and contention of a window (last hour)."""
    start, end = _window(since, until)
    with store_session(services.app) as session:
        depth = queries.queue_depth(session)
        rates = stats.rates(session, start, end)
        return StatsOut(
            since=start, until=end,
            waiting={"unknown" if p is None else str(p): counts for p, counts in depth.items()},
            wait=DurationsOut(**asdict(stats.wait_times(session, start, end))),
            execution=DurationsOut(**asdict(stats.execution_times(session, start, end))),
            lock_wait=DurationsOut(**asdict(stats.lock_wait_times(session, start, end))),
            finished=rates.finished, by_state=rates.by_state,
            completion_rate=rates.completion_rate, failure_rate=rates.failure_rate,
            completed_per_minute=rates.completed_per_minute,
            contention=[ContentionOut(**asdict(c))
                        for c in stats.contention(session, start, end, limit=contention)],
        )


def _rows(values: list[Any]) -> list[dict[str, Any]]:
    return [value.as_dict() for value in values]


@router.get("/status", response_model=dict[str, Any])
def get_status(services: Svc, _: Reader, workers: bool = False) -> dict[str, Any]:
    """One screen of the system (``pipeline status``): depth, running, parked, locks per
    user, project and model, dead letters, utilisation; with ``workers=true`` also the
    workers that answer a ping (waits a second)."""
    return inspection.status(services, with_workers=workers).as_dict()


@router.get("/queue", response_model=dict[str, int])
def get_queue_depth(services: Svc, _: Reader) -> dict[str, int]:
    """Messages waiting in the broker per level (``critical`` ... ``low``)."""
    return inspection.queue_depth(services)


@router.get("/active", response_model=list[dict[str, Any]])
def get_active(services: Svc, _: Reader,
               limit: Annotated[int, Query(ge=1, le=10_000)] = 1000) -> list[dict[str, Any]]:
    """Every live hold: jobs running, granted their locks, workflows between steps."""
    return _rows(inspection.running_jobs(services, limit=limit))


@router.get("/parked", response_model=list[dict[str, Any]])
def get_parked(services: Svc, _: Reader,
               limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
    """The jobs parked longest, with why each waits and its place in line."""
    return _rows(inspection.parked_jobs(services, limit=limit))


@router.get("/locks", response_model=list[dict[str, Any]])
def get_locks(services: Svc, _: Reader,
              limit: Annotated[int, Query(ge=1, le=10_000)] = 1000) -> list[dict[str, Any]]:
    """Every resource held, by whom, in which mode, until when."""
    return _rows(inspection.locks(services, limit=limit))


@router.get("/workers", response_model=list[dict[str, Any]])
def get_workers(services: Svc, _: Reader) -> list[dict[str, Any]]:
    """Live workers with their load score and level (``pipeline agents status``)."""
    from pipeline.admission.agents import list_agents

    return _rows(list_agents(services))
