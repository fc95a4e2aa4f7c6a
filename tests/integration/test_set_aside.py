"""Bad items in the queue: set aside where an operator reads them, counted; the worker goes on."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import pytest
import redis

from pipeline.broker import setaside
from pipeline.runtime.services import services_for
from tests.integration.test_serialization import publish_pickled_task, queued_messages

ORDER_KEY = "probe:set-aside"
NORMAL_LIST = "{pipeline}:pipeline\x06\x166"


def envelope(**changes: Any) -> dict[str, Any]:
    """A kombu envelope of a Celery message for the record probe, with *changes* applied."""
    body = base64.b64encode(json.dumps([[ORDER_KEY, "x"], {}, {}]).encode()).decode()
    message: dict[str, Any] = {
        "body": body, "content-encoding": "utf-8", "content-type": "application/json",
        "headers": {"task": "tests.tasks.probes.record", "id": "bad-1", "lang": "py"},
        "properties": {"body_encoding": "base64", "delivery_tag": "t-1", "priority": 6,
                       "delivery_info": {"exchange": "", "routing_key": "pipeline"}}}
    message.update(changes)
    return message


BAD_ITEMS: dict[str, tuple[bytes, str]] = {
    "not JSON": (b"this is not json", "not JSON"),
    "not UTF-8": (b"\xff\xfe\x00garbage", "not UTF-8 text"),
    "a JSON list": (b"[1, 2, 3]", "not a broker message"),
    "an envelope without properties": (json.dumps({"body": "x"}).encode(),
                                       "not a broker message"),
    "an envelope without a delivery tag": (
        json.dumps(envelope(properties={"delivery_info": {"exchange": "", "routing_key": "q"}})
                   ).encode(), "not a broker message"),
    "a body that is not base64": (
        json.dumps(envelope(body="%%% not base64 %%%")).encode(), "body not decodable"),
    "an unknown task": (
        json.dumps(envelope(headers={"task": "no.such.task", "id": "bad-2", "lang": "py"})
                   ).encode(), "unknown task"),
}


def wait_for_run(client: redis.Redis, label: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while label.encode() not in client.lrange(ORDER_KEY, 0, -1):
        assert time.monotonic() < deadline, f"job {label} did not run: the worker stopped"
        time.sleep(0.05)


@pytest.mark.parametrize("kind", list(BAD_ITEMS))
def test_bad_item_in_the_queue_is_set_aside_and_counted_and_the_worker_keeps_consuming(
        kind: str, app: Any, redis_client: redis.Redis,
        start_worker: Callable[..., AbstractContextManager[Any]]) -> None:
    from tests.tasks.probes import record

    raw, reason = BAD_ITEMS[kind]
    redis_client.lpush(NORMAL_LIST, raw)
    with start_worker():
        record.apply_async((ORDER_KEY, "after"), priority="low")
        wait_for_run(redis_client, "after")
        deadline = time.monotonic() + 10
        while queued_messages(redis_client) and time.monotonic() < deadline:
            time.sleep(0.05)

    kept = setaside.items(services_for(app))
    assert [entry.reason for entry in kept] == [reason]
    if reason == "unknown task":  # set aside by Celery's consumer, from the decoded envelope
        assert json.loads(kept[0].content()) == json.loads(raw)
    else:  # set aside by the transport, before anything decoded it
        assert kept[0].content() == raw, "the item is kept exactly as it was"
    assert kept[0].queue == "pipeline"
    assert setaside.counts(services_for(app)) == {reason: 1, "total": 1}
    assert queued_messages(redis_client) == 0
    assert [x.decode() for x in redis_client.lrange(ORDER_KEY, 0, -1)] == ["after"]


def test_pickle_message_is_set_aside_not_dropped(
        app: Any, redis_client: redis.Redis,
        start_worker: Callable[..., AbstractContextManager[Any]]) -> None:
    from tests.tasks.probes import record

    task_id = publish_pickled_task(app, "pickled")
    with start_worker():
        record.apply_async((ORDER_KEY, "json"), priority="low").get(timeout=30)

    kept = setaside.items(services_for(app))
    assert [entry.reason for entry in kept] == ["content type not accepted"]
    stored = json.loads(kept[0].content())
    assert stored["content-type"] == "application/x-python-serialize"
    assert stored["headers"]["id"] == task_id
    assert setaside.counts(services_for(app))["total"] == 1
    assert setaside.purge(services_for(app)) == 1
    assert setaside.items(services_for(app)) == [] and setaside.counts(services_for(app)) == {}


def test_set_aside_list_keeps_the_newest_items_up_to_its_limit(
        app: Any, redis_client: redis.Redis) -> None:
    from pipeline.runtime.services import services_for

    services = services_for(app)
    for n in range(5):
        setaside.set_aside(services.redis, services.keys, f"junk {n}", queue="pipeline",
                           reason="not JSON", limit=3)
    kept = [entry.raw for entry in setaside.items(services_for(app))]
    assert kept == ["junk 4", "junk 3", "junk 2"]
    assert setaside.counts(services_for(app)) == {"not JSON": 5, "total": 5}
