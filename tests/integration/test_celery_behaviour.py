"""What a Celery user sees of a job is what plain Celery shows: errors, request fields.

Each test names the plain-Celery behaviour the pipeline keeps.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest
from celery.signals import task_received

from tests.tasks.probes import record

pytestmark = pytest.mark.timeout(120)


def test_a_job_called_with_arguments_that_do_not_bind_fails_at_once_without_retries(
        app: Any, worker: Any) -> None:
    """``send_task`` skips the publisher's argument check: the worker's TypeError is final."""
    result = app.send_task(record.name, args=("only-one",), kwargs={"nope": 1})
    started = time.monotonic()
    with pytest.raises(TypeError):
        result.get(timeout=10)
    assert time.monotonic() - started < 5
    assert result.state == "FAILURE"


@pytest.fixture
def received_headers() -> Iterator[dict[str, dict[str, Any]]]:
    """The request headers of every delivery a worker receives, by delivery."""
    seen: dict[str, dict[str, Any]] = {}

    def remember(request: Any = None, **_: Any) -> None:
        seen[f"{request.id}:{len(seen)}"] = dict(request.request_dict)

    task_received.connect(remember, weak=False)
    yield seen
    task_received.disconnect(remember)


def test_a_job_handed_its_locks_arrives_with_the_request_fields_celery_writes(
        app: Any, start_worker: Callable[..., AbstractContextManager[Any]],
        received_headers: dict[str, dict[str, Any]], redis_client: Any) -> None:
    """A parked job returns through the broker with a stored copy of its message; a
    ``task_received`` handler reads ``replaced_task_nesting`` there as plain Celery sets it."""
    with start_worker(pool="threads", concurrency=2):
        first = record.apply_async(("probe", "first", 1.0), models=["m"])
        second = record.apply_async(("probe", "second"), models=["m"])
        assert second.get(timeout=30) and first.get(timeout=30)
    deliveries = [h for key, h in received_headers.items() if key.startswith(second.id)]
    assert len(deliveries) == 2, "the second job was parked once, then handed its locks"
    assert all(h.get("replaced_task_nesting") == 0 for h in deliveries), deliveries
