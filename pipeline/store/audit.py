"""The audit log across jobs: recent operator actions and job events, newest first.

:func:`pipeline.store.queries.recent_events` reads one job's rows; this reads
the ``queue_log`` as a whole, one page at a time, optionally only some event
types, with the task of each row's job (one outer join, no extra query).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from pipeline.errors import InvalidJobError
from pipeline.messages import events
from pipeline.store.models import Job, QueueLog
from pipeline.store.queries import MAX_LIMIT, event_dict


@dataclass(frozen=True)
class AuditPage:
    """One page of the audit log, newest first, and how many rows match in all."""

    total: int
    rows: list[dict[str, Any]]


def check_events(values: Iterable[str]) -> list[str]:
    """Event type names, lower-cased and checked.

    Raises:
        InvalidJobError: one is not an event type, naming it and the known ones.
    """
    chosen = [value.strip().lower() for value in values]
    for value in chosen:
        if value not in events.EVENT_TYPES:
            raise InvalidJobError(f"event={value!r} is not accepted: expected one of "
                                  f"{', '.join(sorted(events.EVENT_TYPES))}")
    return chosen


def recent(session: Session, *, event_types: Iterable[str] | None = None,
           job_id: str | None = None, limit: int = 50, offset: int = 0) -> AuditPage:
    """The newest audit rows (of *event_types*, of *job_id* when given), one page.

    Each row is :func:`~pipeline.store.queries.event_dict` plus ``task``, the
    task name of its job when the store has it.

    Raises:
        InvalidJobError: an unknown event type.
    """
    where: list[ColumnElement[bool]] = []
    if event_types is not None:
        where.append(QueueLog.event.in_(check_events(event_types)))
    if job_id is not None:
        where.append(QueueLog.job_id == job_id)
    total = int(session.scalar(select(func.count()).select_from(QueueLog).where(*where)) or 0)
    rows = session.execute(
        select(QueueLog, Job.task).outerjoin(Job, Job.id == QueueLog.job_id).where(*where)
        .order_by(QueueLog.created_at.desc(), QueueLog.id.desc())
        .limit(max(0, min(limit, MAX_LIMIT))).offset(max(0, offset)))
    return AuditPage(total=total, rows=[{**event_dict(row), "task": task} for row, task in rows])
