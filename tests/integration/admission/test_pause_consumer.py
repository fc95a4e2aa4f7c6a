"""Pausing a Redis consumer: a message popped by a BRPOP sent before the pause keeps its place.

The worker pauses by cancelling its queue consumers. A BRPOP already sent may
still pop a message; with no consumer left, kombu would requeue it behind
every later message. The gate puts it back at the front instead.
"""

from __future__ import annotations

import json

import redis
from kombu import Connection, Consumer, Producer, Queue

from pipeline.admission.bootstep import _put_back_late_messages

QUEUE = "gate-test"


def late_delivery(broker_url: str, client: redis.Redis, *, put_back: bool) -> list[str]:
    """Cancel a consumer, then deliver the oldest message as a late BRPOP reply would."""
    with Connection(broker_url) as conn:
        channel = conn.default_channel
        queue = Queue(QUEUE, routing_key=QUEUE)
        consumer = Consumer(channel, [queue], callbacks=[lambda body, msg: None])
        consumer.consume()
        producer = Producer(channel)
        for body in ("first", "second", "third"):
            producer.publish(body, routing_key=QUEUE, serializer="json", headers={"n": body})
        consumer.cancel_by_queue(QUEUE)
        if put_back:
            _put_back_late_messages(channel, QUEUE)
        raw = client.rpop(QUEUE)                       # what the BRPOP popped: the oldest
        assert raw is not None
        conn.transport._deliver(json.loads(raw), QUEUE)
    # kombu pops from the right: the list read right to left is the order of delivery.
    return [json.loads(m)["headers"]["n"] for m in reversed(client.lrange(QUEUE, 0, -1))]


def test_message_popped_while_pausing_goes_back_to_the_front(
        broker_url: str, lock_redis: redis.Redis) -> None:
    assert late_delivery(broker_url, lock_redis, put_back=True) == ["first", "second", "third"]


def test_without_the_gate_kombu_would_requeue_it_behind_later_messages(
        broker_url: str, lock_redis: redis.Redis) -> None:
    assert late_delivery(broker_url, lock_redis, put_back=False) == ["second", "third", "first"]
