"""A worker takes a message and records it as taken in one Lua call; every push leaves a token.

What the transport does between ``BRPOP`` and the consumer is tested with real
workers elsewhere (``test_crash_safety``); here the fetch and the tokens, on the
app's own channel and Redis.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest
import redis
from redis.crc import key_slot

from pipeline.broker import fetch
from pipeline.broker.rescue import rescue_silent
from pipeline.keys import WAKE_TOKEN
from tests.helpers import redisdb
from tests.helpers.queuekeys import NORMAL_LIST, QUEUE, WAKE


@pytest.fixture
def channel(app: Any) -> Iterator[Any]:
    """The app's broker channel (the pipeline's transport), consuming nothing."""
    with app.connection_for_write() as connection:
        yield connection.default_channel


def take(channel: Any, *, acked: bool = True) -> fetch.Fetched | None:
    channel._acked[QUEUE] = acked
    channel._served.clear()
    found: fetch.Fetched | None = channel._get_fetcher().take(channel._served_lists([QUEUE]))
    return found


def tokens(client: redis.Redis) -> int:
    return int(client.llen(WAKE))


def test_a_published_message_comes_with_a_wake_token(
        app: Any, redis_client: redis.Redis) -> None:
    from tests.tasks.probes import record

    record.apply_async(("probe:fetch", "a"))
    record.apply_async(("probe:fetch", "b"), priority="critical")
    assert redisdb.queued(redis_client) == 2
    assert tokens(redis_client) == 2
    assert redis_client.lrange(WAKE, 0, -1) == [WAKE_TOKEN.encode()] * 2


def test_a_taken_message_is_recorded_as_taken_in_the_same_call(
        app: Any, channel: Any, redis_client: redis.Redis) -> None:
    from tests.tasks.probes import record

    result = record.apply_async(("probe:fetch", "a"))
    taken = take(channel)
    assert taken is not None and taken.queue == QUEUE and taken.tag
    assert redisdb.queued(redis_client) == 0
    # kombu's own record: [message, exchange, routing key], under the delivery tag.
    entry = json.loads(redis_client.hget("{pipeline}:unacked", taken.tag) or b"")
    assert entry == [json.loads(taken.item), "", QUEUE]
    assert entry[0]["headers"]["id"] == result.id
    assert redis_client.zscore("{pipeline}:unacked_index", taken.tag) is not None

    # The worker that took it died before running it: once it counts as silent,
    # the message goes back to its queue, with a token.
    redis_client.zadd("{pipeline}:unacked_index", {taken.tag: 0})
    assert rescue_silent(app) == 1
    assert redisdb.queued(redis_client) == 1
    assert not redis_client.hlen("{pipeline}:unacked")
    assert tokens(redis_client) >= 1
    again = take(channel)
    assert again is not None and json.loads(again.item)["headers"]["id"] == result.id


def test_messages_pushed_without_tokens_are_taken_and_keep_one_worker_awake(
        channel: Any, redis_client: redis.Redis) -> None:
    message = json.loads(json.dumps({
        "body": "", "content-encoding": "utf-8", "content-type": "application/json",
        "headers": {"task": "tests.tasks.probes.record", "id": "x"},
        "properties": {"body_encoding": "base64", "priority": 6,
                       "delivery_info": {"exchange": "", "routing_key": QUEUE}}}))
    for n in range(3):
        message["properties"]["delivery_tag"] = f"raw-{n}"
        redis_client.lpush(NORMAL_LIST, json.dumps(message))
    assert tokens(redis_client) == 0

    first = take(channel)
    assert first is not None and first.tag == "raw-0"  # oldest first, as kombu serves
    assert tokens(redis_client) == 1  # two left: the next worker is woken
    redis_client.delete(WAKE)
    second, third = take(channel), take(channel)
    assert second is not None and third is not None
    assert (second.tag, third.tag) == ("raw-1", "raw-2")
    assert tokens(redis_client) == 1  # from the second take; the third left none to add
    assert take(channel) is None
    assert tokens(redis_client) == 0  # stale tokens are cleared by a look that finds nothing
    assert redis_client.hlen("{pipeline}:unacked") == 3


def test_the_most_urgent_level_is_taken_first(
        app: Any, channel: Any, redis_client: redis.Redis) -> None:
    from tests.tasks.probes import record

    low = record.apply_async(("probe:fetch", "low"), priority="low")
    critical = record.apply_async(("probe:fetch", "critical"), priority="critical")
    taken = [take(channel), take(channel)]
    assert [json.loads(t.item)["headers"]["id"] for t in taken if t] == [critical.id, low.id]


def test_a_consumer_without_acknowledgements_gets_no_record(
        app: Any, channel: Any, redis_client: redis.Redis) -> None:
    from tests.tasks.probes import record

    record.apply_async(("probe:fetch", "a"))
    taken = take(channel, acked=False)
    assert taken is not None and taken.tag == ""
    assert not redis_client.hlen("{pipeline}:unacked")


def test_an_item_that_is_no_message_is_handed_back_unrecorded(
        channel: Any, redis_client: redis.Redis) -> None:
    for item in (b"not json", b"[1, 2]", json.dumps({"properties": {"delivery_tag": 5}})):
        redis_client.lpush(NORMAL_LIST, item)
        taken = take(channel)
        assert taken is not None and taken.tag == "" and taken.item == (
            item if isinstance(item, bytes) else item.encode())
    assert not redis_client.hlen("{pipeline}:unacked")


def test_the_keys_of_a_fetch_lie_in_one_cluster_slot(channel: Any) -> None:
    lists = channel._served_lists([QUEUE, "other"])
    assert len(lists.keys) == 2 + 2 * 4 + 2
    assert {key_slot(key.encode()) for key in lists.keys} == {key_slot(b"{pipeline}")}


def test_purging_a_queue_drops_its_tokens_with_its_messages(
        app: Any, channel: Any, redis_client: redis.Redis) -> None:
    from tests.tasks.probes import record

    record.apply_async(("probe:fetch", "a"))
    assert channel.queue_purge(QUEUE) == 1
    assert redisdb.queued(redis_client) == 0 and tokens(redis_client) == 0


@pytest.fixture
def slow_timeout(app: Any) -> Iterator[float]:
    """Idle workers wait 30 s before they look for messages on their own (1 s by default)."""
    before = app.conf.broker_transport_options
    app.conf.broker_transport_options = {**before, "polling_interval": 30}
    try:
        yield 30.0
    finally:
        app.conf.broker_transport_options = before


def test_an_idle_worker_is_woken_by_each_kind_of_push_not_by_its_timeout(
        app: Any, channel: Any, redis_client: redis.Redis, slow_timeout: float,
        start_worker: Callable[..., AbstractContextManager[Any]]) -> None:
    from tests.tasks.probes import record

    def ran(label: str, since: float) -> None:
        deadline = since + slow_timeout / 3
        while label.encode() not in redis_client.lrange("probe:fetch", 0, -1):
            assert time.monotonic() < deadline, f"{label} waited for the worker's timeout"
            time.sleep(0.02)

    # A message given back from a silent worker's record (by the worker's own look at start).
    record.apply_async(("probe:fetch", "given back"))
    taken = take(channel)  # by a worker that died right after
    assert taken is not None and tokens(redis_client) == 1
    redis_client.delete(WAKE)
    redis_client.zadd("{pipeline}:unacked_index", {taken.tag: 0})
    with start_worker(pool="threads", concurrency=2):
        ran("given back", time.monotonic())
        time.sleep(0.5)  # the worker is idle, waiting on its queue's wake list
        since = time.monotonic()
        record.apply_async(("probe:fetch", "published"))
        ran("published", since)

        # A parked job: handed its locks (message and token pushed by the release script).
        first = record.apply_async(("probe:fetch", "holder", 1.0), models=["fetch-m"])
        record.apply_async(("probe:fetch", "parked"), models=["fetch-m"])
        first.get(timeout=20)
        ran("parked", time.monotonic())
