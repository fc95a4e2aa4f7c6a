"""Reading the job store: one job with its history, filtered job lists, queue depth.

Every function takes a SQLAlchemy ``Session`` and runs the same on SQLite and
PostgreSQL. Time filters take aware datetimes (naive ones are read as UTC).
The statistics live in :mod:`pipeline.store.stats`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, cast, exists, func, literal_column, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from pipeline.errors import InvalidJobError
from pipeline.store import states
from pipeline.store.models import Job, QueueLog, Workflow

MAX_LIMIT = 1000


@dataclass(frozen=True)
class JobHistory:
    """A job and its queue-log rows, oldest first."""

    job: Job
    events: list[QueueLog]


def get_job(session: Session, job_id: str, *, history_limit: int = MAX_LIMIT) -> JobHistory | None:
    """The job *job_id* with its audit history, or None if the store has no such job.

    A job with log rows but no row of its own yet (only ``granted`` or
    ``lock_lost`` recorded) is reported as None as well.
    """
    job = session.get(Job, job_id)
    if job is None:
        return None
    rows = session.scalars(
        select(QueueLog).where(QueueLog.job_id == job_id)
        .order_by(QueueLog.created_at, QueueLog.id).limit(history_limit))
    return JobHistory(job=job, events=list(rows))


def get_workflow(session: Session, workflow_id: str) -> tuple[Workflow, list[Job]] | None:
    """A workflow and its steps in the order they were queued, or None."""
    workflow = session.get(Workflow, workflow_id)
    if workflow is None:
        return None
    steps = session.scalars(select(Job).where(Job.workflow_id == workflow_id)
                            .order_by(Job.queued_at, Job.id))
    return workflow, list(steps)


def _check_states(values: Iterable[str]) -> list[str]:
    chosen = [v.upper() for v in values]
    unknown = sorted(set(chosen) - set(states.STATES))
    if unknown:
        raise InvalidJobError(
            f"state={unknown[0]!r} is not accepted: expected one of {', '.join(states.STATES)}")
    return chosen


def uses_model(session: Session, model: str) -> ColumnElement[bool]:
    """A condition: the job's ``models`` list holds *model* (JSONB ``@>`` or ``json_each``)."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(Job.models, JSONB).contains([model])
    each = func.json_each(Job.models).table_valued("value").alias("model")
    return exists().select_from(each).where(literal_column("model.value") == model)


def job_filter(session: Session, *, states_: Iterable[str] | None = None,
               user: str | None = None, project: str | None = None, model: str | None = None,
               priority: int | Iterable[int] | None = None, since: datetime | None = None,
               until: datetime | None = None) -> list[ColumnElement[bool]]:
    """The WHERE conditions of :func:`list_jobs` (``since``/``until`` bound ``queued_at``)."""
    where: list[ColumnElement[bool]] = []
    if states_ is not None:
        where.append(Job.state.in_(_check_states(states_)))
    if user is not None:
        where.append(Job.user == user)
    if project is not None:
        where.append(Job.project == project)
    if model is not None:
        where.append(uses_model(session, model))
    if priority is not None:
        levels = [priority] if isinstance(priority, int) else list(priority)
        where.append(Job.priority.in_(levels))
    if since is not None:
        where.append(Job.queued_at >= since)
    if until is not None:
        where.append(Job.queued_at < until)
    return where


def list_jobs(session: Session, *, states: Iterable[str] | None = None, user: str | None = None,
              project: str | None = None, model: str | None = None,
              priority: int | Iterable[int] | None = None, since: datetime | None = None,
              until: datetime | None = None, limit: int = 100, offset: int = 0) -> list[Job]:
    """Jobs matching every given filter, most recently queued first.

    Args:
        session: an open session on the store.
        states: job states to include (any case), e.g. ``["queued", "blocked"]``.
        user: only this user's jobs.
        project: only this project's jobs.
        model: only jobs that use this model.
        priority: one priority 0-9 or several.
        since: queued at or after this time.
        until: queued before this time.
        limit: at most this many rows (capped at 1000).
        offset: rows to skip, for paging.

    Raises:
        InvalidJobError: a state name is not one of the job states.
    """
    where = job_filter(session, states_=states, user=user, project=project, model=model,
                       priority=priority, since=since, until=until)
    stmt = (
        select(Job).where(*where)
        .order_by(Job.queued_at.desc().nulls_last(), Job.id)
        .limit(max(0, min(limit, MAX_LIMIT))).offset(max(0, offset)))
    return list(session.scalars(stmt))


def count_jobs(session: Session, **filters: Any) -> int:
    """How many jobs match the filters of :func:`list_jobs` (same keywords, no paging)."""
    where = job_filter(session, states_=filters.pop("states", None), **filters)
    return int(session.scalar(select(func.count()).select_from(Job).where(*where)) or 0)


def queue_depth(session: Session) -> dict[int | None, dict[str, int]]:
    """Waiting jobs per priority (None = not known yet), split into QUEUED and BLOCKED."""
    rows = session.execute(
        select(Job.priority, Job.state, func.count())
        .where(Job.state.in_(states.WAITING)).group_by(Job.priority, Job.state))
    depth: dict[int | None, dict[str, int]] = {}
    for priority, state, count in rows:
        depth.setdefault(priority, dict.fromkeys(sorted(states.WAITING), 0))[state] = count
    return dict(sorted(depth.items(), key=lambda item: (item[0] is None, item[0] or 0)))


def recent_events(session: Session, job_id: str, limit: int = 20) -> list[QueueLog]:
    """The job's latest *limit* audit rows, oldest of them first."""
    rows = list(session.scalars(
        select(QueueLog).where(QueueLog.job_id == job_id)
        .order_by(QueueLog.created_at.desc(), QueueLog.id.desc())
        .limit(max(0, min(limit, MAX_LIMIT)))))
    return rows[::-1]


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def job_dict(job: Job) -> dict[str, Any]:
    """A ``jobs`` row as it is stored (times as ISO 8601 text in UTC; ``args``, ``kwargs``
    and ``result`` as their JSON text): the public shape is
    :class:`pipeline.observe.jobshape.JobOut`."""
    return {
        "id": job.id, "task": job.task, "args": job.args, "kwargs": job.kwargs,
        "user": job.user,
        "project": job.project, "models": list(job.models or []), "priority": job.priority,
        "state": job.state, "attempts": job.attempts, "queued_at": _iso(job.queued_at),
        "blocked_at": _iso(job.blocked_at), "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at), "runtime": job.runtime,
        "worker_host": job.worker_host, "worker_pid": job.worker_pid, "result": job.result,
        "error": job.error, "blocked_by_job_id": job.blocked_by_job_id,
        "conflict_reason": job.conflict_reason, "workflow_id": job.workflow_id,
        "pool": job.pool, "agent": job.agent, "updated_at": _iso(job.updated_at),
    }


def event_dict(row: QueueLog) -> dict[str, Any]:
    """A ``queue_log`` row as JSON-ready data."""
    return {"event": row.event, "job_id": row.job_id, "at": _iso(row.created_at),
            "detail": dict(row.detail or {})}
