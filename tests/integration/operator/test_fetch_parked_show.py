"""A job parked by the worker's fetch reads as any parked job: ``pipeline show``, the store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest
from celery.signals import task_received

from pipeline.runtime.services import services_for
from tests.integration.operator.conftest import invoke, invoke_json, wait_for
from tests.tasks.lockprobes import hold

Worker = Callable[..., AbstractContextManager[Any]]


@pytest.fixture
def received() -> Iterator[list[str]]:
    """The ids of the jobs the worker's consumer received (a job parked in the fetch: none)."""
    seen: list[str] = []

    def remember(request: Any = None, **_: Any) -> None:
        seen.append(request.id)

    task_received.connect(remember, weak=False)
    yield seen
    task_received.disconnect(remember)


def test_show_and_the_store_see_a_job_parked_in_the_fetch_as_blocked_with_its_reason(
        ops_app: Any, start_worker: Worker, record_events: Callable[[], int],
        received: list[str]) -> None:
    with start_worker(pool="threads", concurrency=2):
        first = hold.apply_async((2.0, "first"), user="alice")
        wait_for(lambda: services_for(ops_app).lock_reads.explain(first.id).status == "running",
                 what="the first job to start")
        second = hold.apply_async((0.0, "second"), user="alice")
        wait_for(lambda: services_for(ops_app).lock_reads.explain(second.id).status == "parked",
                 what="the second job to park")
        assert second.id not in received, "parked by before_start, not by the fetch"
        record_events()
        outcome = invoke("show", second.id)
        data = invoke_json("show", second.id)
        second.get(timeout=20)
    assert received.count(second.id) == 1, "handed its locks, it reached the worker once"
    assert outcome.exit_code == 0, outcome.output
    lines = outcome.stdout.splitlines()
    assert lines[0] == f"{second.id} is parked, priority normal, position 1 in line"
    assert "result backend state: BLOCKED" in outcome.stdout
    assert "job store: BLOCKED  task lockprobes.hold" in outcome.stdout
    assert (f"waiting for user:alice (held by or queued behind {first.id}), position 1 in line"
            in outcome.stdout)
    assert sorted(row["event"] for row in data["history"]) == ["blocked", "queued"]
