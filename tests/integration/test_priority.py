"""Priorities on the real Redis broker with a real worker.

One queue, kombu's priority steps 0/3/6/9 and ``queue_order_strategy=priority``:
a worker always takes the most urgent waiting job, and a plain ``.delay()``
queues as NORMAL (FIFO among normal jobs) rather than as the most urgent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import pytest
import redis

ORDER_KEY = "probe:order"


def wait_for_length(client: redis.Redis, key: str, length: int, timeout: float = 120.0) -> None:
    """Wait until the list *key* holds *length* entries."""
    deadline = time.monotonic() + timeout
    while client.llen(key) < length:
        assert time.monotonic() < deadline, (
            f"only {client.llen(key)} of {length} jobs ran within {timeout} s")
        time.sleep(0.05)


def started_order(client: redis.Redis) -> list[str]:
    """Labels of the probes in the order they started."""
    return [raw.decode() for raw in client.lrange(ORDER_KEY, 0, -1)]


def test_critical_job_queued_last_starts_before_the_queued_low_jobs(
        app: Any, redis_client: redis.Redis,
        start_worker: Callable[..., AbstractContextManager[Any]]) -> None:
    from tests.tasks.probes import record

    for number in range(300):
        record.apply_async((ORDER_KEY, f"low-{number}"), priority="low")
    record.apply_async((ORDER_KEY, "critical"), priority="critical")

    with start_worker(concurrency=1):
        wait_for_length(redis_client, ORDER_KEY, 301)

    order = started_order(redis_client)
    lows_before = order.index("critical")
    assert lows_before <= 10, f"{lows_before} low jobs started before the critical one"
    assert sorted(order) == sorted(["critical"] + [f"low-{n}" for n in range(300)])


def test_plain_delay_queues_as_normal_behind_earlier_normal_jobs(
        app: Any, redis_client: redis.Redis,
        start_worker: Callable[..., AbstractContextManager[Any]]) -> None:
    from tests.tasks.probes import plain_record, record

    for number in range(50):
        record.apply_async((ORDER_KEY, f"normal-{number}"), priority="normal")
    record.delay(ORDER_KEY, "pipeline-delay")
    plain_record.delay(ORDER_KEY, "plain-delay")

    with start_worker(concurrency=1):
        wait_for_length(redis_client, ORDER_KEY, 52)

    order = started_order(redis_client)
    assert order[:50] == [f"normal-{n}" for n in range(50)], order[:50]
    assert set(order[50:]) == {"pipeline-delay", "plain-delay"}


def test_high_job_overtakes_normal_and_low_jobs_but_not_critical_ones(
        app: Any, redis_client: redis.Redis,
        start_worker: Callable[..., AbstractContextManager[Any]]) -> None:
    from tests.tasks.probes import record

    for level in ("low", "normal", "high", "critical"):
        for number in range(3):
            record.apply_async((ORDER_KEY, f"{level}-{number}"), priority=level)

    with start_worker(concurrency=1):
        wait_for_length(redis_client, ORDER_KEY, 12)

    levels = [label.split("-")[0] for label in started_order(redis_client)]
    assert levels == ["critical"] * 3 + ["high"] * 3 + ["normal"] * 3 + ["low"] * 3


def test_app_without_a_default_priority_still_queues_plain_calls_as_normal(
        redis_client: redis.Redis, redis_url: str) -> None:
    from celery import Celery

    from pipeline import PipelineTask
    from pipeline.app.install import install

    app = install(Celery("bare", broker=redis_url, set_as_current=False))
    app.conf.task_default_queue = "bare"

    @app.task(base=PipelineTask, name="bare.noop", shared=False)
    def noop() -> None: ...

    assert app.conf.task_default_priority == 6
    noop.delay()
    noop.apply_async(priority="critical")
    assert redis_client.llen("{pipeline}:bare\x06\x166") == 1, "plain call not queued as normal"
    assert redis_client.llen("{pipeline}:bare") == 1


def test_bad_priority_on_a_later_step_of_a_chain_raises_before_publishing(
        app: Any, redis_client: redis.Redis) -> None:
    from celery import chain

    from pipeline.errors import InvalidJobError
    from tests.tasks.probes import record

    flow = chain(record.si(ORDER_KEY, "a"), record.si(ORDER_KEY, "b").set(priority="bogus"))
    with pytest.raises(InvalidJobError, match=r"step 2.*bogus"):
        flow.apply_async()
    assert not [k for k in redis_client.keys("*pipeline*") if redis_client.type(k) == b"list"]


def test_priority_none_means_the_default_level_not_the_most_urgent(
        app: Any, redis_client: redis.Redis) -> None:
    import json

    from pipeline.broker.layout import queue_lists
    from tests.tasks.probes import record

    record.apply_async((ORDER_KEY, "none"), priority=None)
    record.apply_async((ORDER_KEY, "critical"), priority="critical")
    lists = queue_lists(app)
    lengths = {key: redis_client.llen(key) for key in lists}
    assert lengths[lists[0]] == 1 and lengths[lists[2]] == 1, lengths
    message = json.loads(redis_client.lindex(lists[2], 0) or b"")
    assert message["properties"]["priority"] == 6


def test_a_running_job_reads_started_not_pending(
        app: Any, redis_client: redis.Redis,
        start_worker: Callable[..., AbstractContextManager[Any]]) -> None:
    from tests.tasks.probes import record

    job = record.apply_async((ORDER_KEY, "slow", 1.5))
    with start_worker(concurrency=1):
        wait_for_length(redis_client, ORDER_KEY, 1, timeout=20)
        assert job.state == "STARTED"
        assert job.get(timeout=20) == "slow"
