"""BLOCKED in the result backend never overwrites a state written after it (real Redis)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from celery import states

from pipeline.job.blocked_state import store_blocked

META = {"reason": "waiting for model:m", "resource": "model:m", "blocked_by": "h",
        "position": 1}


def _request(task_id: str) -> Any:
    return SimpleNamespace(id=task_id, task="t", args=[], kwargs={}, retries=0, hostname="w",
                           delivery_info={}, properties={}, ignore_result=False,
                           parent_id=None, root_id=task_id, group=None, group_index=None,
                           stamped_headers=None, stamps={})


@pytest.mark.parametrize("before", [None, states.RETRY, "BLOCKED"])
def test_blocked_is_written_over_no_state_or_an_earlier_one(app: Any, before: str | None) -> None:
    backend = app.backend
    if before is not None:
        backend.store_result("j1", None, before)
    assert store_blocked(backend, "j1", META, _request("j1"))
    stored = backend.get_task_meta("j1")
    assert stored["status"] == "BLOCKED" and stored["result"]["resource"] == "model:m"


@pytest.mark.parametrize("later", [states.STARTED, states.SUCCESS, states.FAILURE,
                                   states.REVOKED])
def test_blocked_written_late_leaves_a_later_state_alone(app: Any, later: str) -> None:
    backend = app.backend
    failed = later in (states.FAILURE, states.REVOKED)
    result: Any = ValueError("boom") if failed else {"done": 1}
    backend.store_result("j2", result, later)
    assert not store_blocked(backend, "j2", META, _request("j2"))
    assert backend.get_task_meta("j2")["status"] == later


def test_blocked_replaces_the_started_this_process_wrote_just_before(app: Any) -> None:
    """Celery writes STARTED (task_track_started) before ``before_start`` parks the job."""
    import os

    backend = app.backend
    backend.store_result("j3", {"pid": os.getpid(), "hostname": "w"}, states.STARTED)
    assert store_blocked(backend, "j3", META, _request("j3"))
    assert backend.get_task_meta("j3")["status"] == "BLOCKED"
    backend.store_result("j4", {"pid": os.getpid() + 1, "hostname": "w"}, states.STARTED)
    assert not store_blocked(backend, "j4", META, _request("j4"))
    assert backend.get_task_meta("j4")["status"] == states.STARTED
