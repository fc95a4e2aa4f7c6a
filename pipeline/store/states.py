"""Job states, the transitions between them, and how events are merged into a row.

Events reach the recorder late, twice or out of order (a redelivered batch, a
second recorder, a ``completed`` written before its ``started``). Instead of
applying them in arrival order, each state-bearing event gets a *state key*
and a row only ever moves to a greater key:

* a terminal state (COMPLETED, FAILED, ...) outranks every waiting or running
  state, so a finished job never goes back to RUNNING;
* between terminal states a fixed rank decides (a dead letter outranks the
  failure that led to it; COMPLETED outranks all, for a requeued dead letter
  that then succeeded);
* between QUEUED, BLOCKED and RUNNING the event time decides, ties broken by
  the order of the lifecycle (queued < blocked < conflict < started < retried).

Every other column has a merge :class:`Policy` that is idempotent and, for
distinct event times, independent of arrival order. :func:`merge` applies them
in Python (to fold a batch); the writer renders the same policies as SQL for
``INSERT ... ON CONFLICT DO UPDATE``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from pipeline.messages import events

QUEUED = "QUEUED"
BLOCKED = "BLOCKED"
RUNNING = "RUNNING"
COMPLETED = "COMPLETED"
FAILED = "FAILED"
DEAD_LETTERED = "DEAD_LETTERED"
EXPIRED = "EXPIRED"
CANCELLED = "CANCELLED"

STATES: tuple[str, ...] = (
    QUEUED, BLOCKED, RUNNING, COMPLETED, FAILED, DEAD_LETTERED, EXPIRED, CANCELLED)
WAITING: frozenset[str] = frozenset({QUEUED, BLOCKED})
TERMINAL: frozenset[str] = frozenset({COMPLETED, FAILED, DEAD_LETTERED, EXPIRED, CANCELLED})

#: The lifecycle in arrival order. Out-of-order delivery may skip a step (a
#: ``started`` recorded after ``completed`` leaves the job COMPLETED), never
#: take one that is not listed here.
TRANSITIONS: Mapping[str, frozenset[str]] = {
    QUEUED: frozenset({QUEUED, BLOCKED, RUNNING}) | TERMINAL,
    BLOCKED: frozenset({QUEUED, BLOCKED, RUNNING}) | TERMINAL,
    RUNNING: frozenset({QUEUED, BLOCKED, RUNNING}) | TERMINAL,
    FAILED: frozenset({EXPIRED, CANCELLED, DEAD_LETTERED, COMPLETED}),
    EXPIRED: frozenset({CANCELLED, DEAD_LETTERED, COMPLETED}),
    CANCELLED: frozenset({DEAD_LETTERED, COMPLETED}),
    DEAD_LETTERED: frozenset({COMPLETED}),
    COMPLETED: frozenset(),
}

#: The state an event moves a job to; events missing here only go to the log
#: (``granted``, ``lock_lost``, ``released``) or change one field
#: (``reprioritized``).
EVENT_STATE: Mapping[str, str] = {
    events.QUEUED: QUEUED,
    events.BLOCKED: BLOCKED,
    events.CONFLICT: BLOCKED,
    events.STARTED: RUNNING,
    events.RETRIED: QUEUED,
    events.COMPLETED: COMPLETED,
    events.FAILED: FAILED,
    events.EXPIRED: EXPIRED,
    events.CANCELLED: CANCELLED,
    events.DEAD_LETTERED: DEAD_LETTERED,
}

_STEP_RANK: Mapping[str, int] = {
    events.QUEUED: 0, events.BLOCKED: 1, events.CONFLICT: 2, events.STARTED: 3,
    events.RETRIED: 4,
}
_FINAL_RANK: Mapping[str, int] = {
    FAILED: 1, EXPIRED: 2, CANCELLED: 3, DEAD_LETTERED: 4, COMPLETED: 5,
}
_TERMINAL_BASE = 1 << 60
_TIME_BITS = 44  # milliseconds up to the year 2527


def state_key(event_type: str, time_ms: int) -> int:
    """The merge key of the state *event_type* sets at *time_ms*; 0 if it sets none."""
    state = EVENT_STATE.get(event_type)
    if state is None:
        return 0
    if state in TERMINAL:
        return _TERMINAL_BASE + (_FINAL_RANK[state] << _TIME_BITS) + time_ms
    return time_ms * 8 + _STEP_RANK[event_type]


def is_terminal_key(key: int) -> bool:
    """Whether *key* belongs to a terminal state."""
    return key >= _TERMINAL_BASE


class Policy(enum.Enum):
    """How a column of a stored row and a newer change combine."""

    FIRST = "first"      # keep the stored value; fill it when missing
    LATEST = "latest"    # take the change's value unless the row saw later events
    MIN = "min"          # the earliest time
    MAX = "max"          # the greatest value
    WINNER = "winner"    # the value that goes with the greater state_key


#: Merge policy of every ``jobs`` column a change may carry (the key is ``id``).
JOB_POLICIES: Mapping[str, Policy] = {
    "task": Policy.FIRST, "args": Policy.FIRST, "kwargs": Policy.FIRST, "user": Policy.FIRST,
    "project": Policy.FIRST, "models": Policy.FIRST, "workflow_id": Policy.FIRST,
    "priority": Policy.LATEST, "worker_host": Policy.LATEST, "worker_pid": Policy.LATEST,
    "pool": Policy.LATEST, "agent": Policy.LATEST,
    "attempts": Policy.MAX, "updated_at": Policy.MAX,
    "queued_at": Policy.MIN, "blocked_at": Policy.MIN, "started_at": Policy.MIN,
    "state": Policy.WINNER, "state_key": Policy.WINNER, "last_event_id": Policy.WINNER,
    "finished_at": Policy.WINNER, "runtime": Policy.WINNER, "result": Policy.WINNER,
    "error": Policy.WINNER, "blocked_by_job_id": Policy.WINNER,
    "conflict_reason": Policy.WINNER,
}

#: Merge policy of the ``workflows`` columns events carry; its state and times
#: are derived from its steps (:func:`workflow_state`).
WORKFLOW_POLICIES: Mapping[str, Policy] = {
    "name": Policy.FIRST, "steps": Policy.FIRST,
    "created_at": Policy.MIN, "updated_at": Policy.MAX,
}


def _merge_value(policy: Policy, old: Any, new: Any, new_wins: bool, new_is_newer: bool) -> Any:
    if policy is Policy.WINNER:
        return new if new_wins else old
    if old is None:
        return new
    if new is None:
        return old
    if policy is Policy.FIRST:
        return old
    if policy is Policy.LATEST:
        return new if new_is_newer else old
    if policy is Policy.MIN:
        return min(old, new)
    return max(old, new)


def merge(old: Mapping[str, Any], new: Mapping[str, Any],
          policies: Mapping[str, Policy]) -> dict[str, Any]:
    """Combine a stored row (or folded change) *old* with a change *new*.

    Both map column names to values and carry ``state_key`` and ``updated_at``.
    The SQL the writer renders for the same *policies* gives the same result.
    """
    new_wins = new.get("state_key", 0) > old.get("state_key", 0)
    new_is_newer = new["updated_at"] >= old["updated_at"]
    merged = dict(old)
    for column, policy in policies.items():
        merged[column] = _merge_value(
            policy, old.get(column), new.get(column), new_wins, new_is_newer)
    return merged


def workflow_state(step_states: Mapping[str, int], step_count: int | None) -> str:
    """The state of a workflow from how many of its steps are in each state.

    Args:
        step_states: state -> number of its recorded steps in that state.
        step_count: how many steps it has, when its events said so.

    A failed, expired, cancelled or dead-lettered step ends the workflow in
    that state; it is COMPLETED once every step completed (every recorded one
    when the step count is unknown); RUNNING while a step runs or between two
    steps; else BLOCKED or QUEUED like its waiting step.
    """
    ended = [s for s in TERMINAL - {COMPLETED} if step_states.get(s)]
    if ended:
        return max(ended, key=_FINAL_RANK.__getitem__)
    done = step_states.get(COMPLETED, 0)
    recorded = sum(step_states.values())
    if done and done >= (step_count or recorded):
        return COMPLETED
    if step_states.get(RUNNING) or done:
        return RUNNING
    return BLOCKED if step_states.get(BLOCKED) else QUEUED
