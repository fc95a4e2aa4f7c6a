"""The dashboard's per-minute history and the audit log, against SQLite rows inserted by hand.

Window: the five minutes before ``END``; minute index 0 is [END-5m, END-4m).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from pipeline.errors import InvalidJobError
from pipeline.store import audit, history, migrate, session
from pipeline.store.models import Job, QueueLog

END = datetime(2026, 12, 7, 17, 0, tzinfo=timezone.utc)


def at(minutes: float, seconds: float = 0.0) -> datetime:
    """END minus *minutes*, plus *seconds*."""
    return END - timedelta(minutes=minutes) + timedelta(seconds=seconds)


def job(job_id: str, priority: int | None, state: str, queued: datetime,
        started: datetime | None = None, finished: datetime | None = None,
        blocked: datetime | None = None, task: str = "tasks.train") -> Job:
    return Job(id=job_id, task=task, priority=priority, state=state, state_key=0, attempts=1,
               queued_at=queued, started_at=started, finished_at=finished, blocked_at=blocked,
               updated_at=finished or started or queued)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Session]:
    """A migrated SQLite store holding the rows worked out below."""
    url = f"sqlite:///{tmp_path / 'pipeline.db'}"
    migrate.upgrade(url)
    with session.open_store(url)() as s:
        s.add_all([
            # critical: queued and started in minute 0 (wait 10 s), completed in minute 1
            job("A", 0, "COMPLETED", at(5, 10), at(5, 20), at(4)),
            # normal: queued in minute 0, parked at +5 s, started in minute 2, failed there
            job("B", 6, "FAILED", at(5), at(3, 5), at(3, 30), blocked=at(5, 5)),
            # normal: queued before the window, still waiting
            job("C", 6, "QUEUED", at(10)),
            # high: queued and started in minute 1 (wait 30 s), dead-lettered there
            job("E", 3, "DEAD_LETTERED", at(4), at(4, 30), at(4, 40)),
            # low: queued in minute 3, cancelled in minute 4 without starting
            job("D", 9, "CANCELLED", at(2, 10), None, at(1, 10)),
            # finished before the window: counts nowhere
            job("OLD", 6, "COMPLETED", at(30), at(29), at(28)),
        ])
        # normal: twenty jobs queued in minute 4, waiting 1..20 s, completed there
        s.add_all(job(f"F{k:02d}", 6, "COMPLETED", at(1, 5), at(1, 5 + k), at(1, 40))
                  for k in range(1, 21))
        s.add_all([
            QueueLog(stream_id="1-0", event="queued", job_id="A", created_at=at(5, 10),
                     detail={}),
            QueueLog(stream_id="2-0", event="operator", job_id="", created_at=at(2),
                     detail={"action": "flush", "by": "admin", "count": 3}),
            QueueLog(stream_id="3-0", event="completed", job_id="A", created_at=at(4),
                     detail={}),
        ])
        s.commit()
        yield s
    session.dispose_all()


def test_depth_per_level_counts_jobs_published_and_not_started_at_each_minute_end(
        db: Session) -> None:
    found = history.history(db, 5, until=END)
    assert found.minutes[0] == at(5) and found.until == END
    assert found.depth["critical"] == [0, 0, 0, 0, 0]
    assert found.depth["high"] == [0, 0, 0, 0, 0]
    assert found.depth["normal"] == [2, 2, 1, 1, 1]
    assert found.depth["low"] == [0, 0, 0, 1, 0]
    assert "unknown" not in found.depth


def test_throughput_and_failures_per_minute(db: Session) -> None:
    found = history.history(db, 5, until=END)
    assert found.finished == [0, 2, 1, 0, 21]
    assert found.failed == [0, 1, 1, 0, 0]


def test_wait_and_lock_wait_p95_per_minute(db: Session) -> None:
    found = history.history(db, 5, until=END)
    assert found.wait_p95 == pytest.approx([10.0, 30.0, 125.0, None, 19.0])
    assert found.lock_wait_p95 == [None, None, pytest.approx(120.0), None, None]


def test_window_end_rounds_up_to_the_minute_under_way(db: Session) -> None:
    found = history.history(db, 5, until=at(1, 30))
    assert found.until == at(0) and len(found.minutes) == 5
    assert found.as_dict()["minutes"][0] == at(5).isoformat()


@pytest.mark.parametrize("minutes", [0, -1, 1441, "60", 2.5, True])
def test_bad_minutes_are_refused_naming_the_value_and_the_range(
        db: Session, minutes: object) -> None:
    with pytest.raises(InvalidJobError, match=r"minutes=.* is not accepted: expected a whole "
                                              r"number from 1 to 1440"):
        history.history(db, minutes)  # type: ignore[arg-type]


def test_audit_log_lists_the_newest_rows_first_with_their_task(db: Session) -> None:
    page = audit.recent(db, limit=2)
    assert page.total == 3
    assert [(r["event"], r["job_id"], r["task"]) for r in page.rows] == [
        ("operator", "", None), ("completed", "A", "tasks.train")]
    assert page.rows[0]["detail"]["action"] == "flush"
    assert [r["event"] for r in audit.recent(db, limit=2, offset=2).rows] == ["queued"]
    only = audit.recent(db, event_types=["OPERATOR"])
    assert only.total == 1 and only.rows[0]["event"] == "operator"


def test_audit_log_refuses_an_unknown_event_type(db: Session) -> None:
    with pytest.raises(InvalidJobError, match="event='nope' is not accepted: expected one of"):
        audit.recent(db, event_types=["nope"])
