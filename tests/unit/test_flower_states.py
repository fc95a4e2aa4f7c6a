"""Flower (celery.events.state) shows a parked job as BLOCKED, and STARTED once it runs."""

from __future__ import annotations

import itertools

from celery.events.state import State

from pipeline.app.install import register_blocked_state

_clock = itertools.count(1)


def event(kind: str, uuid: str = "job-1", **fields: object) -> dict[str, object]:
    return {"type": kind, "uuid": uuid, "hostname": "w1@h", "timestamp": float(next(_clock)),
            "local_received": float(next(_clock)), "clock": next(_clock), **fields}


def test_parked_job_shows_blocked_with_its_reason_then_started_then_success() -> None:
    register_blocked_state()  # what install() does in every process that loads the app
    state = State()
    state.event(event("task-received", name="tasks.train"))
    state.event(event("task-started"))
    state.event(event("task-blocked", reason="waiting for model:bert", position=1))
    task = state.tasks["job-1"]
    assert task.state == "BLOCKED"
    # the hand-off republishes the job: received again, then started for real
    state.event(event("task-received", name="tasks.train"))
    assert state.tasks["job-1"].state == "BLOCKED"
    state.event(event("task-started"))
    assert state.tasks["job-1"].state == "STARTED"
    state.event(event("task-succeeded", result="1", runtime=0.1))
    assert state.tasks["job-1"].state == "SUCCESS"
