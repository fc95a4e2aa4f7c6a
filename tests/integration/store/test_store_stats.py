"""Queries and statistics against values worked out by hand from a fixed event set."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy.orm import Session

from pipeline.errors import InvalidJobError
from pipeline.store import queries, stats

T0 = 1_700_000_000_000
SINCE = datetime.fromtimestamp(T0 / 1000, tz=timezone.utc)
UNTIL = SINCE + timedelta(seconds=200)

# job: (queued detail, [(event, second, detail), ...])
JOBS: dict[str, tuple[dict[str, Any], list[tuple[str, int, dict[str, Any]]]]] = {
    "A": ({"priority": 0, "user": "alice", "models": ["bert"]},
          [("queued", 0, {}), ("started", 10, {}), ("completed", 20, {"runtime": 9.0})]),
    "B": ({"priority": 6, "user": "bob", "models": ["bert", "gpt"]},
          [("queued", 0, {}), ("blocked", 5, {"resource": "model:bert", "holder": "A"}),
           ("started", 25, {}), ("completed", 40, {})]),
    "C": ({"priority": 3, "user": "alice", "models": ["gpt"]},
          [("queued", 10, {}), ("started", 30, {}), ("failed", 35, {"runtime": 5.0})]),
    "D": ({"priority": 6, "user": "carol", "models": ["bert"]},
          [("queued", 20, {}), ("blocked", 22, {"resource": "model:bert", "holder": "B"}),
           ("conflict", 26, {"resource": "user:carol", "holder": "X"})]),
    "E": ({"priority": 9}, [("queued", 30, {})]),
    "F": ({"priority": 3}, [("queued", 5, {}), ("started", 15, {}),
                            ("dead_lettered", 50, {"error": "gave up"})]),
    "G": ({"priority": 9}, [("queued", 40, {}), ("expired", 100, {"reason": "waited"})]),
}


@pytest.fixture
def recorded(emit: Callable[..., None], record: Callable[[], int], db: Session) -> Session:
    for job_id, (described, steps) in JOBS.items():
        for event, second, detail in steps:
            extra = described if event == "queued" else {}
            emit(event, job_id, {**extra, **detail}, t=T0 + second * 1000)
    record()
    return db


def ids(jobs: list[Any]) -> list[str]:
    return sorted(job.id for job in jobs)


def test_job_history_lists_its_events_in_order(recorded: Session) -> None:
    found = queries.get_job(recorded, "B")
    assert found is not None
    assert [e.event for e in found.events] == ["queued", "blocked", "started", "completed"]
    assert found.events[1].detail == {  # the reason is put into words when read
        "resource": "model:bert", "holder": "A",
        "reason": "waiting for model:bert (held by or queued behind A)"}
    assert queries.get_job(recorded, "nope") is None


def test_jobs_filtered_by_state_user_model_priority_and_time(recorded: Session) -> None:
    assert ids(queries.list_jobs(recorded, states=["blocked"])) == ["D"]
    assert ids(queries.list_jobs(recorded, user="alice")) == ["A", "C"]
    assert ids(queries.list_jobs(recorded, model="bert")) == ["A", "B", "D"]
    assert ids(queries.list_jobs(recorded, model="gpt", user="bob")) == ["B"]
    assert ids(queries.list_jobs(recorded, priority=6)) == ["B", "D"]
    assert ids(queries.list_jobs(recorded, priority=[0, 9])) == ["A", "E", "G"]
    window = {"since": SINCE + timedelta(seconds=10), "until": SINCE + timedelta(seconds=25)}
    assert ids(queries.list_jobs(recorded, **window)) == ["C", "D"]
    assert [j.id for j in queries.list_jobs(recorded, limit=2)] == ["G", "E"]
    assert queries.count_jobs(recorded, states=["queued", "blocked"]) == 2


def test_unknown_state_is_refused_with_the_accepted_ones(recorded: Session) -> None:
    with pytest.raises(InvalidJobError, match=r"state=.WAITING.*QUEUED, BLOCKED"):
        queries.list_jobs(recorded, states=["waiting"])


def test_queue_depth_per_priority(recorded: Session) -> None:
    assert queries.queue_depth(recorded) == {
        6: {"BLOCKED": 1, "QUEUED": 0}, 9: {"BLOCKED": 0, "QUEUED": 1}}


def test_wait_execution_and_lock_wait_times(recorded: Session) -> None:
    # waits: A 10, B 25, C 20, F 10 -> mean 16.25, p95 (4th of 4) 25
    assert stats.wait_times(recorded, SINCE, UNTIL) == stats.Durations(4, 16.25, 25.0)
    # runs: A 9 (its runtime), B 15, C 5, F 35 -> mean 16, p95 35
    assert stats.execution_times(recorded, SINCE, UNTIL) == stats.Durations(4, 16.0, 35.0)
    # parked then started: B, 5 -> 25
    assert stats.lock_wait_times(recorded, SINCE, UNTIL) == stats.Durations(1, 20.0, 20.0)
    empty = SINCE + timedelta(days=1)
    assert stats.wait_times(recorded, empty, empty + timedelta(hours=1)) == stats.Durations(
        0, None, None)


def test_completion_and_failure_rates(recorded: Session) -> None:
    rates = stats.rates(recorded, SINCE, UNTIL)
    assert rates.finished == 5
    assert rates.by_state == {"CANCELLED": 0, "COMPLETED": 2, "DEAD_LETTERED": 1,
                              "EXPIRED": 1, "FAILED": 1}
    assert rates.completion_rate == pytest.approx(0.4)
    assert rates.failure_rate == pytest.approx(0.4)
    assert rates.completed_per_minute == pytest.approx(0.6)


def test_queue_length_over_time(recorded: Session) -> None:
    series = stats.queue_length(recorded, SINCE, SINCE + timedelta(seconds=60),
                                timedelta(seconds=10))
    assert [n for _, n in series] == [3, 2, 2, 2, 3, 3]
    assert series[1][0] == SINCE + timedelta(seconds=10)
    later = stats.queue_length(recorded, SINCE + timedelta(seconds=20),
                               SINCE + timedelta(seconds=40), timedelta(seconds=10))
    assert [n for _, n in later] == [2, 2]
    with pytest.raises(InvalidJobError, match="bucket="):
        stats.queue_length(recorded, SINCE, UNTIL, timedelta(0))


def test_contention_per_resource(recorded: Session) -> None:
    assert stats.contention(recorded, SINCE, UNTIL) == [
        stats.Contention("model:bert", blocked=2, jobs=2, average_wait=20.0),
        stats.Contention("user:carol", blocked=1, jobs=1, average_wait=None),
    ]


def test_summary_gathers_every_statistic_of_the_window(recorded: Session) -> None:
    found = stats.summary(recorded, SINCE, UNTIL)
    assert found.wait == stats.wait_times(recorded, SINCE, UNTIL)
    assert found.execution == stats.execution_times(recorded, SINCE, UNTIL)
    assert found.lock_wait == stats.lock_wait_times(recorded, SINCE, UNTIL)
    assert found.rates == stats.rates(recorded, SINCE, UNTIL)
    assert found.contention == stats.contention(recorded, SINCE, UNTIL, 10)
    assert found.depth == queries.queue_depth(recorded)
    data = found.as_dict()
    assert data["since"] == SINCE.isoformat()
    assert data["rates"]["finished"] == found.rates.finished
    assert data["depth"] == {str(p): counts for p, counts in found.depth.items()}
    assert data["contention"][0]["resource"] == found.contention[0].resource


def test_recent_events_are_the_latest_oldest_first(recorded: Session) -> None:
    assert [e.event for e in queries.recent_events(recorded, "B", 2)] == [
        "started", "completed"]
    row = queries.get_job(recorded, "B")
    assert row is not None
    data = queries.job_dict(row.job)
    assert data["state"] == "COMPLETED" and data["models"] == ["bert", "gpt"]
    assert data["queued_at"] == SINCE.isoformat()
    assert queries.event_dict(row.events[1])["detail"]["resource"] == "model:bert"
