"""Messages are JSON only: a pickle message is refused and logged, and the worker goes on."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import pytest
import redis

from tests.helpers import redisdb

ORDER_KEY = "probe:serialization"


def publish_pickled_task(app: Any, label: str) -> str:
    """Publish a task message for the record probe, serialized with pickle, by hand."""
    task_id = str(uuid.uuid4())
    queue = app.amqp.queues[app.conf.task_default_queue]
    headers = {"lang": "py", "task": "tests.tasks.probes.record", "id": task_id, "root_id": task_id,
               "parent_id": None, "group": None, "retries": 0, "eta": None, "expires": None,
               "argsrepr": repr((ORDER_KEY, label)), "kwargsrepr": "{}", "origin": "test"}
    body = ((ORDER_KEY, label), {}, {"callbacks": None, "errbacks": None, "chain": None,
                                     "chord": None})
    with app.connection_for_write() as connection:
        producer = connection.Producer(serializer="pickle")
        producer.publish(body, exchange=queue.exchange, routing_key=queue.routing_key,
                         declare=[queue], headers=headers, priority=6,
                         correlation_id=task_id)
    return task_id


def queued_messages(client: redis.Redis) -> int:
    return redisdb.queued(client)


def test_pickle_message_is_refused_and_logged_and_the_worker_keeps_consuming(
        app: Any, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture,
        start_worker: Callable[..., AbstractContextManager[Any]]) -> None:
    from tests.tasks.probes import record

    publish_pickled_task(app, "pickled")
    assert queued_messages(redis_client) == 1

    caplog.set_level(logging.INFO)
    with start_worker():
        result = record.apply_async((ORDER_KEY, "json"), priority="low")
        assert result.get(timeout=30) == "json"
        deadline = time.monotonic() + 10
        while queued_messages(redis_client) and time.monotonic() < deadline:
            time.sleep(0.05)

    ran = [raw.decode() for raw in redis_client.lrange(ORDER_KEY, 0, -1)]
    assert ran == ["json"], f"the pickled job must never run: {ran}"
    assert queued_messages(redis_client) == 0, "the refused message must not stay queued"
    refused = [r for r in caplog.records
               if "pickle" in r.getMessage() and r.levelno >= logging.ERROR]
    assert refused, "the worker must log that it refused a pickle message"
