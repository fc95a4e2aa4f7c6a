"""The merge rules of the job store, without a database."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from pipeline.messages import events
from pipeline.messages.events import JobEvent
from pipeline.store import states, writer

T0 = 1_700_000_000_000


def ev(kind: str, t: int, detail: dict[str, Any] | None = None, job: str = "j1") -> JobEvent:
    return JobEvent(kind, job, T0 + t, detail or {}, stream_id=f"{T0 + t}-0")


def fold_job(sequence: list[JobEvent]) -> dict[str, Any]:
    """Fold events one at a time, in the given (arrival) order, like separate batches."""
    row: dict[str, Any] | None = None
    for event in sequence:
        change = writer.job_change(event)
        if change is not None:
            row = change if row is None else states.merge(row, change, states.JOB_POLICIES)
    assert row is not None
    return row


RETRIED_TWICE = [
    ev("queued", 0, {"task": "t", "priority": 3, "attempt": 1}),
    ev("started", 10, {"attempt": 1, "host": "h", "pid": 1}),
    ev("retried", 20, {"attempt": 1, "error": "boom"}),
    ev("started", 30, {"attempt": 2, "pid": 2}),
    ev("retried", 40, {"attempt": 2, "error": "boom again"}),
    ev("started", 50, {"attempt": 3, "pid": 3}),
    ev("completed", 60, {"result": "ok", "runtime": 0.005}),
]
ORDER_FREE = ("state", "state_key", "attempts", "queued_at", "started_at", "finished_at",
              "result", "error", "runtime", "task")


def test_terminal_state_outranks_every_waiting_or_running_state() -> None:
    finished = states.state_key(events.FAILED, 0)
    for kind in (events.QUEUED, events.BLOCKED, events.CONFLICT, events.STARTED,
                 events.RETRIED):
        assert states.state_key(kind, 10**13) < finished


def test_dead_letter_outranks_the_failure_before_it_whatever_the_times() -> None:
    assert states.state_key(events.DEAD_LETTERED, 0) > states.state_key(events.FAILED, 10**12)


def test_log_only_events_carry_no_state() -> None:
    for kind in (events.GRANTED, events.LOCK_LOST, events.RELEASED, events.REPRIORITIZED):
        assert states.state_key(kind, T0) == 0
    assert writer.job_change(ev(events.GRANTED, 0)) is None


def test_job_retried_twice_then_completed_has_three_attempts() -> None:
    row = fold_job(RETRIED_TWICE)
    assert row["state"] == states.COMPLETED
    assert row["attempts"] == 3
    assert row["worker_pid"] == 3
    assert row["error"] is None and row["result"] == "ok"
    assert row["started_at"] == writer.utc(T0 + 10)
    assert row["finished_at"] == writer.utc(T0 + 60)


def test_any_arrival_order_gives_the_same_row() -> None:
    expected = {k: fold_job(RETRIED_TWICE)[k] for k in ORDER_FREE}
    for order in itertools.islice(itertools.permutations(RETRIED_TWICE), 0, 5040, 7):
        row = fold_job(list(order))
        assert {k: row[k] for k in ORDER_FREE} == expected


@given(st.permutations(RETRIED_TWICE), st.integers(min_value=1, max_value=3))
def test_replaying_events_changes_nothing(order: list[JobEvent], copies: int) -> None:
    once = fold_job(list(order))
    assert fold_job(list(order) * copies) == once


def test_late_started_does_not_reopen_a_completed_job() -> None:
    row = fold_job([ev("completed", 50, {"result": "1"}), ev("started", 10, {"attempt": 1})])
    assert row["state"] == states.COMPLETED
    assert row["started_at"] == writer.utc(T0 + 10)
    assert row["finished_at"] == writer.utc(T0 + 50)


def test_blocked_event_names_the_holder_and_the_reason() -> None:
    row = fold_job([ev("queued", 0), ev("blocked", 5, {
        "resource": "model:bert", "holder": "j0", "position": 2, "reason": "waiting for bert"})])
    assert row["state"] == states.BLOCKED
    assert row["blocked_by_job_id"] == "j0"
    assert row["conflict_reason"] == "waiting for bert"
    row = fold_job([ev("queued", 0), ev("blocked", 5, {"holder": "j0", "reason": "a"}),
                    ev("conflict", 7, {"holder": "j9", "reason": "b"})])
    assert (row["state"], row["blocked_by_job_id"], row["conflict_reason"]) == (
        states.BLOCKED, "j9", "b")


def test_started_clears_the_blocking_job_and_keeps_when_it_was_parked() -> None:
    row = fold_job([ev("blocked", 5, {"holder": "j0", "reason": "a"}), ev("started", 9)])
    assert row["state"] == states.RUNNING
    assert row["blocked_by_job_id"] is None
    assert row["blocked_at"] == writer.utc(T0 + 5)


def test_started_supplies_queued_at_when_the_queued_event_is_missing() -> None:
    row = fold_job([ev("started", 3000, {"queued_at": (T0 + 1000) / 1000.0})])
    assert row["queued_at"] == writer.utc(T0 + 1000)


def test_reprioritize_changes_priority_but_an_older_event_does_not_undo_it() -> None:
    row = fold_job([ev("queued", 0, {"priority": 6}), ev("reprioritized", 10, {"priority": 0}),
                    ev("queued", 0, {"priority": 6})])
    assert row["priority"] == 0


def test_lifecycle_in_order_only_takes_listed_transitions() -> None:
    parked = [ev("queued", 0), ev("blocked", 1), ev("conflict", 2), ev("started", 3),
              ev("failed", 4), ev("dead_lettered", 5)]
    for sequence in (RETRIED_TWICE, parked):
        previous = None
        row: dict[str, Any] | None = None
        for event in sequence:
            change = writer.job_change(event)
            assert change is not None
            row = change if row is None else states.merge(row, change, states.JOB_POLICIES)
            if previous is not None and row["state"] != previous:
                assert row["state"] in states.TRANSITIONS[previous]
            previous = row["state"]


def test_workflow_state_follows_its_steps() -> None:
    assert states.workflow_state({"QUEUED": 1}, 2) == states.QUEUED
    assert states.workflow_state({"COMPLETED": 1, "QUEUED": 1}, 2) == states.RUNNING
    assert states.workflow_state({"COMPLETED": 1}, 2) == states.RUNNING
    assert states.workflow_state({"COMPLETED": 2}, 2) == states.COMPLETED
    assert states.workflow_state({"COMPLETED": 1}, None) == states.COMPLETED
    assert states.workflow_state({"COMPLETED": 1, "FAILED": 1}, 3) == states.FAILED
    assert states.workflow_state({"BLOCKED": 1}, None) == states.BLOCKED


def test_summaries_are_bounded_text() -> None:
    assert writer.summary({"a": [1, 2]}) == '{"a": [1, 2]}'
    assert len(writer.summary("x" * 10_000) or "") == 4000
