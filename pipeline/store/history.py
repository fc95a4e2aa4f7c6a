"""The last minutes of the job store, minute by minute: what the dashboard's charts draw.

Everything comes from the per-job times and states of the ``jobs`` table:

* depth per level at the end of each minute: jobs published before it and not
  started by then (a job cancelled or expired before it started leaves the
  queue when it finishes);
* throughput: jobs that finished in the minute, and failures (FAILED or
  DEAD_LETTERED) among them;
* wait p95: queued -> first start, of the jobs that started in the minute;
* lock-wait p95: first parked -> first start, of the parked jobs that started
  in the minute.

Each series is one grouped SQL query (the p95s use window functions, on
SQLite >= 3.25 and PostgreSQL alike), so no query reads more than one row per
minute and level into Python whatever the size of the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from pipeline.errors import InvalidJobError
from pipeline.priority import PRIORITY_STEPS, Priority, level_of
from pipeline.store import states
from pipeline.store.models import Job
from pipeline.store.stats import epoch, whole

#: The longest window served (one day of minutes).
MAX_MINUTES = 1440
#: The nearest-rank percentile of the wait series.
PERCENTILE = 0.95
#: Level labels, most urgent first.
LEVELS: tuple[str, ...] = tuple(Priority(step).label for step in PRIORITY_STEPS)
FAILED_STATES: tuple[str, ...] = (states.FAILED, states.DEAD_LETTERED)


@dataclass(frozen=True)
class History:
    """Per-minute series of a window; every list has one value per minute.

    Attributes:
        since: start of the first minute; ``until`` the end of the last.
        minutes: start of each minute.
        depth: per level (``critical`` ... ``low``, and ``unknown`` for jobs
            whose priority is not recorded), jobs waiting to start at the end
            of each minute.
        finished: jobs that finished in the minute (any final state).
        failed: jobs that failed or were dead-lettered in the minute.
        wait_p95: seconds from queued to first start (None: none started).
        lock_wait_p95: seconds from first parked to first start (None: no
            parked job started).
    """

    since: datetime
    until: datetime
    minutes: list[datetime]
    depth: dict[str, list[int]]
    finished: list[int]
    failed: list[int]
    wait_p95: list[float | None]
    lock_wait_p95: list[float | None] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data (times as ISO 8601 text in UTC)."""
        return {"since": self.since.isoformat(), "until": self.until.isoformat(),
                "minutes": [m.isoformat() for m in self.minutes], "depth": self.depth,
                "finished": self.finished, "failed": self.failed,
                "wait_p95": self.wait_p95, "lock_wait_p95": self.lock_wait_p95}


def check_minutes(minutes: Any) -> int:
    """*minutes* as an int 1..:data:`MAX_MINUTES`.

    Raises:
        InvalidJobError: anything else, naming the value and what is accepted.
    """
    if isinstance(minutes, bool) or not isinstance(minutes, int) \
            or not 1 <= minutes <= MAX_MINUTES:
        raise InvalidJobError(f"minutes={minutes!r} is not accepted: expected a whole number "
                              f"from 1 to {MAX_MINUTES}")
    return minutes


def _minute_of(column: Any, origin: float) -> ColumnElement[int]:
    """The index of the minute a stored time falls in (0 = the window's first)."""
    return whole((epoch(column) - origin) / 60.0)


def _in(column: Any, since: datetime, until: datetime) -> list[ColumnElement[bool]]:
    return [column >= since, column < until]


def _level(priority: int | None) -> str:
    return "unknown" if priority is None else level_of(priority).label


def depth(session: Session, since: datetime, count: int) -> dict[str, list[int]]:
    """Jobs waiting for their first start at the end of each minute, per level."""
    until = since + timedelta(minutes=count)
    origin = since.timestamp()
    left = func.coalesce(Job.started_at, Job.finished_at)
    known = Job.queued_at.is_not(None)
    series = {level: [0] * count for level in (*LEVELS, "unknown")}
    backlog = session.execute(
        select(Job.priority, func.count())
        .where(known, Job.queued_at < since, left.is_(None) | (left >= since))
        .group_by(Job.priority))
    deltas = {level: [0] * count for level in series}
    for priority, number in backlog:
        deltas[_level(priority)][0] += int(number)
    for column, sign in ((Job.queued_at, 1), (left, -1)):
        minute = _minute_of(column, origin)
        rows = session.execute(
            select(Job.priority, minute, func.count())
            .where(known, *_in(column, since, until)).group_by(Job.priority, minute))
        for priority, index, number in rows:
            if 0 <= index < count:
                deltas[_level(priority)][index] += sign * int(number)
    for level, changes in deltas.items():
        waiting = 0
        for index, change in enumerate(changes):
            waiting += change
            series[level][index] = waiting
    return {level: values for level, values in series.items()
            if level != "unknown" or any(values)}


def finished(session: Session, since: datetime, count: int,
             only: tuple[str, ...] = tuple(sorted(states.TERMINAL))) -> list[int]:
    """Jobs that finished in each minute in one of the states *only*."""
    until = since + timedelta(minutes=count)
    minute = _minute_of(Job.finished_at, since.timestamp())
    series = [0] * count
    for index, number in session.execute(
            select(minute, func.count())
            .where(Job.state.in_(only), *_in(Job.finished_at, since, until))
            .group_by(minute)):
        if 0 <= index < count:
            series[index] = int(number)
    return series


def percentile(session: Session, seconds: ColumnElement[Any], at: Any,
               where: list[ColumnElement[bool]], since: datetime, count: int
               ) -> list[float | None]:
    """The nearest-rank :data:`PERCENTILE` of *seconds* per minute of the time *at*."""
    until = since + timedelta(minutes=count)
    minute = _minute_of(at, since.timestamp()).label("minute")
    ranked = select(
        minute, seconds.label("seconds"),
        func.row_number().over(partition_by=minute, order_by=seconds).label("rank"),
        func.count().over(partition_by=minute).label("n"),
    ).where(*where, *_in(at, since, until)).subquery()
    # The nearest rank is ceil(p * n): the first rank r with r >= p * n.
    rows = session.execute(
        select(ranked.c.minute, ranked.c.seconds)
        .where(ranked.c.rank >= PERCENTILE * ranked.c.n,
               ranked.c.rank - 1 < PERCENTILE * ranked.c.n))
    series: list[float | None] = [None] * count
    for index, value in rows:
        if 0 <= index < count and value is not None:
            series[index] = max(0.0, float(value))
    return series


def history(session: Session, minutes: int = 60, *, until: datetime | None = None) -> History:
    """Per-minute depth, throughput, failures and wait p95s of the last *minutes*.

    Args:
        session: an open session on the store.
        minutes: how many whole minutes, 1 to :data:`MAX_MINUTES`.
        until: the end of the window (default: now), rounded up to a whole
            minute so the last point is the minute under way.

    Raises:
        InvalidJobError: *minutes* is out of range.
    """
    count = check_minutes(minutes)
    end = (until or datetime.now(timezone.utc)).astimezone(timezone.utc)
    if end.second or end.microsecond:
        end = end.replace(second=0, microsecond=0) + timedelta(minutes=1)
    since = end - timedelta(minutes=count)
    started = [Job.started_at.is_not(None)]
    return History(
        since=since, until=end,
        minutes=[since + timedelta(minutes=i) for i in range(count)],
        depth=depth(session, since, count),
        finished=finished(session, since, count),
        failed=finished(session, since, count, FAILED_STATES),
        wait_p95=percentile(session, epoch(Job.started_at) - epoch(Job.queued_at),
                            Job.started_at, [*started, Job.queued_at.is_not(None)],
                            since, count),
        lock_wait_p95=percentile(session, epoch(Job.started_at) - epoch(Job.blocked_at),
                                 Job.started_at, [*started, Job.blocked_at.is_not(None),
                                                  Job.blocked_at <= Job.started_at],
                                 since, count))
