"""Retention of the queue log: delete rows older than ``pipeline_log_retention``.

Rows go in small batches, each its own short transaction, lowest ids first,
so the sweep never holds a long lock and the recorder keeps writing meanwhile.
Several beat instances may sweep at once: on PostgreSQL a batch skips the rows
another sweep has locked (``FOR UPDATE SKIP LOCKED``); on SQLite writers take
turns anyway. A row is only deleted if it is older than the cut-off.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from pipeline.store.models import QueueLog

DEFAULT_BATCH = 5000


@dataclass(frozen=True)
class Sweep:
    """What one retention sweep did."""

    cutoff: datetime
    deleted: int
    batches: int
    complete: bool  # False when it stopped at max_batches or its time budget


def _delete_batch(session: Session, cutoff: datetime, batch_size: int) -> int:
    oldest = (select(QueueLog.id).where(QueueLog.created_at < cutoff)
              .order_by(QueueLog.id).limit(batch_size)
              .with_for_update(skip_locked=True))
    result = session.execute(
        delete(QueueLog).where(QueueLog.id.in_(oldest.scalar_subquery()),
                               QueueLog.created_at < cutoff)
        .execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)


def purge_queue_log(sessions: sessionmaker[Session], retention: float, *,
                    batch_size: int = DEFAULT_BATCH, max_batches: int | None = None,
                    time_budget: float | None = None, now: datetime | None = None) -> Sweep:
    """Delete queue-log rows older than *retention* seconds, batch by batch.

    Args:
        sessions: a session factory on the store (``session.open_store(url)``).
        retention: seconds a row is kept (``pipeline_log_retention``).
        batch_size: rows deleted per transaction.
        max_batches: stop after this many batches (None: until none are left).
        time_budget: stop starting new batches after this many seconds.
        now: the current time (tests); defaults to the clock.

    Returns:
        The cut-off used, rows deleted, batches run and whether it finished.
    """
    cutoff = (now or datetime.now(timezone.utc)) - timedelta(seconds=retention)
    deadline = None if time_budget is None else time.monotonic() + time_budget
    deleted = batches = 0
    while True:
        if max_batches is not None and batches >= max_batches:
            return Sweep(cutoff, deleted, batches, complete=False)
        if deadline is not None and time.monotonic() >= deadline:
            return Sweep(cutoff, deleted, batches, complete=False)
        with sessions.begin() as session:
            removed = _delete_batch(session, cutoff, batch_size)
        batches += 1
        deleted += removed
        if removed < batch_size:
            # Fewer than a batch: none left, or the rest is another sweep's.
            return Sweep(cutoff, deleted, batches, complete=True)
