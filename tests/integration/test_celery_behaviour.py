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


@pytest.mark.parametrize("parked_by", ["fetch", "before_start"])
def test_a_job_handed_its_locks_arrives_with_the_request_fields_celery_writes(
        app: Any, start_worker: Callable[..., AbstractContextManager[Any]],
        received_headers: dict[str, dict[str, Any]], redis_client: Any,
        parked_by: str) -> None:
    """A parked job returns through the broker with its message (the worker's fetch
    parks the message as it was published; ``before_start`` a stored copy); a
    ``task_received`` handler reads ``replaced_task_nesting`` there as plain Celery sets it."""
    from pipeline import explain

    options = dict(app.conf.broker_transport_options)
    if parked_by == "before_start":
        app.conf.broker_transport_options = {**options, "park_in_fetch": {}}
    try:
        with start_worker(pool="threads", concurrency=2):
            first = record.apply_async(("probe", "first", 1.0), models=["m"])
            deadline = time.monotonic() + 10
            while explain(first.id, app).status != "running" and time.monotonic() < deadline:
                time.sleep(0.02)
            second = record.apply_async(("probe", "second"), models=["m"])
            assert second.get(timeout=30) and first.get(timeout=30)
    finally:
        app.conf.broker_transport_options = options
    deliveries = [h for key, h in received_headers.items() if key.startswith(second.id)]
    # Parked in the fetch, the second job reached the worker once: handed its locks.
    assert len(deliveries) == (1 if parked_by == "fetch" else 2), deliveries
    assert all(h.get("replaced_task_nesting") == 0 for h in deliveries), deliveries
