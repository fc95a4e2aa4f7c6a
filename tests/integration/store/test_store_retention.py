"""The retention sweep deletes only queue-log rows older than the retention, in batches."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from pipeline.store import retention, session
from pipeline.store.models import QueueLog

NOW = datetime(2026, 1, 10, tzinfo=timezone.utc)
WEEK = 7 * 24 * 3600.0


def add_rows(url: str, count: int, age: timedelta, prefix: str) -> None:
    rows = [{"stream_id": f"{prefix}-{n}", "event": "queued", "job_id": f"{prefix}{n}",
             "created_at": NOW - age, "detail": {}} for n in range(count)]
    with session.open_store(url).begin() as s:
        s.execute(insert(QueueLog), rows)


def remaining(db: Session) -> list[str]:
    db.rollback()
    return sorted(db.scalars(select(QueueLog.stream_id)))


def test_only_rows_older_than_the_retention_are_deleted_in_batches(
        store_url: str, db: Session) -> None:
    add_rows(store_url, 35, timedelta(days=8), "old")
    add_rows(store_url, 5, timedelta(days=6), "new")
    sweep = retention.purge_queue_log(session.open_store(store_url), WEEK, batch_size=10,
                                      now=NOW)
    assert (sweep.deleted, sweep.batches, sweep.complete) == (35, 4, True)
    assert sweep.cutoff == NOW - timedelta(days=7)
    assert remaining(db) == sorted(f"new-{n}" for n in range(5))


def test_sweep_stops_after_its_batch_budget_and_the_next_one_goes_on(
        store_url: str, db: Session) -> None:
    add_rows(store_url, 30, timedelta(days=30), "old")
    sessions = session.open_store(store_url)
    first = retention.purge_queue_log(sessions, WEEK, batch_size=10, max_batches=2, now=NOW)
    assert (first.deleted, first.complete) == (20, False)
    assert len(remaining(db)) == 10
    second = retention.purge_queue_log(sessions, WEEK, batch_size=10, now=NOW)
    assert second.deleted == 10 and second.complete
    assert remaining(db) == []


def test_sweeps_running_at_once_delete_each_row_once(store_url: str, db: Session) -> None:
    add_rows(store_url, 300, timedelta(days=8), "old")
    add_rows(store_url, 3, timedelta(hours=1), "new")
    sessions = session.open_store(store_url)
    results: list[retention.Sweep] = []
    errors: list[BaseException] = []

    def sweep() -> None:
        try:
            results.append(retention.purge_queue_log(sessions, WEEK, batch_size=7, now=NOW))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=sweep) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sum(r.deleted for r in results) == 300
    db.rollback()
    assert db.scalar(select(func.count()).select_from(QueueLog)) == 3
