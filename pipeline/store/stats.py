"""Statistics from the job store, computed in SQL on SQLite and PostgreSQL alike.

Averages are SQL ``AVG``; a p95 is the nearest-rank value read with ``ORDER BY
... OFFSET`` (one row), so no function reads more than a handful of rows into
Python whatever the size of the store. Every function covers a time window
``[since, until)``.

* wait: queued -> first start, of jobs that started in the window;
* execution: the last attempt's runtime (or finished - started), of jobs that
  finished in the window after running;
* lock wait: first parked -> first start, of parked jobs that started;
* rates: shares of the jobs that finished in the window;
* queue length: jobs waiting for their first start at the end of each bucket;
* contention: blocked and conflict events per resource, and how long a job
  blocked on it waited until it started.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import ColumnElement, Float, Integer, case, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from pipeline.errors import InvalidJobError
from pipeline.messages import events
from pipeline.store import states
from pipeline.store.models import Job, QueueLog
from pipeline.store.queries import queue_depth

MAX_BUCKETS = 10_000


class epoch(FunctionElement[float]):
    """Seconds since the epoch of a stored UTC time."""

    type = Float()
    inherit_cache = True


@compiles(epoch, "sqlite")
def _epoch_sqlite(element: epoch, compiler: SQLCompiler, **kw: Any) -> str:
    # julianday() is off by microseconds; whole seconds plus the %f fraction is exact
    # to the millisecond, the precision of event times.
    moment = compiler.process(element.clauses, **kw)
    return (f"(CAST(strftime('%s', {moment}) AS REAL) + CAST(strftime('%f', {moment}) AS REAL)"
            f" - CAST(strftime('%S', {moment}) AS REAL))")


@compiles(epoch)
def _epoch_default(element: epoch, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)}) AS FLOAT)"


class whole(FunctionElement[int]):
    """The integer part of a non-negative number (``floor``)."""

    type = Integer()
    inherit_cache = True


@compiles(whole, "sqlite")
def _whole_sqlite(element: whole, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST({compiler.process(element.clauses, **kw)} AS INTEGER)"


@compiles(whole)
def _whole_default(element: whole, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(FLOOR({compiler.process(element.clauses, **kw)}) AS INTEGER)"


@dataclass(frozen=True)
class Durations:
    """Count, average and 95th percentile (nearest rank) of durations in seconds."""

    count: int
    average: float | None
    p95: float | None


@dataclass(frozen=True)
class Rates:
    """Outcomes of the jobs that finished in a window."""

    finished: int
    by_state: dict[str, int]
    completion_rate: float | None  # COMPLETED / finished
    failure_rate: float | None  # (FAILED + DEAD_LETTERED) / finished
    completed_per_minute: float


def _window(column: Any, since: datetime, until: datetime) -> list[ColumnElement[bool]]:
    return [column >= since, column < until]


def durations(session: Session, seconds: ColumnElement[Any],
              where: list[ColumnElement[bool]]) -> Durations:
    """Count, average and p95 of the expression *seconds* over rows matching *where*."""
    count, average = session.execute(select(func.count(), func.avg(seconds)).where(*where)).one()
    if not count:
        return Durations(0, None, None)
    rank = max(math.ceil(0.95 * count) - 1, 0)
    p95 = session.scalar(select(seconds).where(*where).order_by(seconds).offset(rank).limit(1))
    return Durations(int(count), float(average), None if p95 is None else float(p95))


def wait_times(session: Session, since: datetime, until: datetime) -> Durations:
    """Queued -> first start, of the jobs that started in ``[since, until)``."""
    seconds = epoch(Job.started_at) - epoch(Job.queued_at)
    return durations(session, seconds,
                     [*_window(Job.started_at, since, until), Job.queued_at.is_not(None)])


def execution_times(session: Session, since: datetime, until: datetime) -> Durations:
    """Runtime of the jobs that ran and finished in ``[since, until)``."""
    seconds = func.coalesce(Job.runtime, epoch(Job.finished_at) - epoch(Job.started_at))
    return durations(session, seconds,
                     [*_window(Job.finished_at, since, until), Job.started_at.is_not(None)])


def lock_wait_times(session: Session, since: datetime, until: datetime) -> Durations:
    """First parked -> first start, of parked jobs that started in ``[since, until)``."""
    seconds = epoch(Job.started_at) - epoch(Job.blocked_at)
    return durations(session, seconds, [*_window(Job.started_at, since, until),
                                        Job.blocked_at.is_not(None),
                                        Job.blocked_at <= Job.started_at])


def rates(session: Session, since: datetime, until: datetime) -> Rates:
    """Completion and failure rates of the jobs that finished in ``[since, until)``."""
    rows = session.execute(
        select(Job.state, func.count()).where(
            Job.state.in_(states.TERMINAL), *_window(Job.finished_at, since, until))
        .group_by(Job.state))
    by_state = {state: 0 for state in sorted(states.TERMINAL)}
    by_state.update({state: int(count) for state, count in rows})
    finished = sum(by_state.values())
    failed = by_state[states.FAILED] + by_state[states.DEAD_LETTERED]
    minutes = max((until - since).total_seconds() / 60.0, 1e-9)
    return Rates(
        finished=finished, by_state=by_state,
        completion_rate=by_state[states.COMPLETED] / finished if finished else None,
        failure_rate=failed / finished if finished else None,
        completed_per_minute=by_state[states.COMPLETED] / minutes)


def queue_length(session: Session, since: datetime, until: datetime,
                 bucket: timedelta) -> list[tuple[datetime, int]]:
    """Jobs waiting for their first start at the end of each *bucket* of the window.

    Returns:
        ``(bucket start, waiting at its end)`` pairs covering ``[since, until)``.

    Raises:
        InvalidJobError: the bucket is not positive or makes more than 10000 buckets.
    """
    step = bucket.total_seconds()
    count = math.ceil((until - since).total_seconds() / step) if step > 0 else 0
    if step <= 0 or count > MAX_BUCKETS:
        raise InvalidJobError(
            f"bucket={bucket} is not accepted: expected a positive duration giving at most "
            f"{MAX_BUCKETS} buckets between {since} and {until}")
    left = func.coalesce(Job.started_at, Job.finished_at)
    known = Job.queued_at.is_not(None)
    backlog = session.scalar(select(func.count()).where(
        known, Job.queued_at < since, (left.is_(None)) | (left >= since))) or 0
    origin = since.astimezone(timezone.utc).timestamp()
    deltas = [0] * max(count, 0)
    for column, sign in ((Job.queued_at, 1), (left, -1)):
        index = whole((epoch(column) - origin) / step)
        for position, number in session.execute(
                select(index, func.count()).where(known, *_window(column, since, until))
                .group_by(index)):
            if 0 <= position < count:
                deltas[position] += sign * int(number)
    series, waiting = [], int(backlog)
    for position, delta in enumerate(deltas):
        waiting += delta
        series.append((since + position * bucket, waiting))
    return series


@dataclass(frozen=True)
class Contention:
    """How often jobs were parked behind one resource, and how long they waited."""

    resource: str
    blocked: int  # blocked and conflict events
    jobs: int
    average_wait: float | None  # seconds from being parked on it to starting


def contention(session: Session, since: datetime, until: datetime,
               limit: int = 50) -> list[Contention]:
    """Resources by how many blocked/conflict events named them in ``[since, until)``."""
    resource = QueueLog.detail["resource"].as_string()
    waited = epoch(Job.started_at) - epoch(QueueLog.created_at)
    # AVG skips the NULL of a job that has not started since it was parked.
    average = func.avg(case((Job.started_at >= QueueLog.created_at, waited), else_=None))
    rows = session.execute(
        select(resource, func.count(), func.count(QueueLog.job_id.distinct()), average)
        .outerjoin(Job, Job.id == QueueLog.job_id)
        .where(QueueLog.event.in_((events.BLOCKED, events.CONFLICT)),
               *_window(QueueLog.created_at, since, until), resource.is_not(None))
        .group_by(resource).order_by(func.count().desc(), resource).limit(limit))
    return [Contention(str(r), int(n), int(j), None if a is None else float(a))
            for r, n, j, a in rows]


@dataclass(frozen=True)
class Summary:
    """Every statistic of one window, for ``pipeline stats`` and the API.

    Attributes:
        since: start of the window; ``until`` its end.
        depth: jobs waiting now per priority 0-9 (None: not known yet), split
            into QUEUED and BLOCKED (the store's view; Redis has the live one).
        wait: queued -> first start; ``execution``: runtime; ``lock_wait``:
            first parked -> first start.
        rates: completion and failure rates of the jobs that finished.
        contention: the resources jobs were parked behind most.
    """

    since: datetime
    until: datetime
    depth: dict[int | None, dict[str, int]]
    wait: Durations
    execution: Durations
    lock_wait: Durations
    rates: Rates
    contention: list[Contention]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data (times as ISO 8601 text; depth keyed by priority as text)."""
        return {
            "since": self.since.isoformat(), "until": self.until.isoformat(),
            "depth": {("unknown" if p is None else str(p)): counts
                      for p, counts in self.depth.items()},
            "wait": dataclasses.asdict(self.wait),
            "execution": dataclasses.asdict(self.execution),
            "lock_wait": dataclasses.asdict(self.lock_wait),
            "rates": dataclasses.asdict(self.rates),
            "contention": [dataclasses.asdict(c) for c in self.contention],
        }


def summary(session: Session, since: datetime, until: datetime,
            contention_limit: int = 10) -> Summary:
    """Depth now, and wait, execution, lock wait, rates and contention of ``[since, until)``."""
    return Summary(
        since=since, until=until, depth=queue_depth(session),
        wait=wait_times(session, since, until),
        execution=execution_times(session, since, until),
        lock_wait=lock_wait_times(session, since, until),
        rates=rates(session, since, until),
        contention=contention(session, since, until, contention_limit))
