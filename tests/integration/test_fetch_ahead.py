"""While its queues hold more, a worker sends its next fetch at once, with its acks.

A worker that took a message and saw more behind it does not wait on the wake
lists for the next: it sends the fetch itself in place of the wait, and the
acknowledgements given since ride in the same Lua call. Here the fetch's part
(the Lua call), the channel's part (a fetch in flight as the channel closes, a
script Redis forgot) and a real worker's round trips.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.helpers import redisdb
from tests.helpers.queuekeys import HEAD, INDEX, QUEUE, UNACKED, WAKE


@pytest.fixture
def channel(app: Any) -> Iterator[Any]:
    """A fresh broker channel of the app (the pipeline's transport)."""
    with app.connection_for_write() as connection:
        yield connection.channel()


def publish(count: int) -> list[str]:
    from tests.tasks.probes import record

    return [record.apply_async(("probe:ahead", str(n))).id for n in range(count)]


def ids(items: list[bytes]) -> list[str]:
    return [json.loads(item)["headers"]["id"] for item in items]


def test_a_fetch_sent_at_once_removes_the_acked_records_and_takes_its_token(
        app: Any, channel: Any, redis_client: redis.Redis) -> None:
    published = publish(3)
    assert redis_client.llen(WAKE) == 3
    channel._acked[QUEUE] = True
    lists = channel._served_lists([QUEUE])
    fetcher = channel._get_fetcher()

    first = fetcher.take_or_park(lists)  # after a wait: the wait took the token
    assert first.message is not None and first.left
    assert redis_client.llen(WAKE) == 3

    reply = redis_client.execute_command(*fetcher.command(lists, [first.message.tag]))
    second = fetcher.read(lists, reply)
    assert second.message is not None and second.left
    assert not redis_client.hexists(UNACKED, first.message.tag)
    assert redis_client.zscore(INDEX, first.message.tag) is None
    assert redis_client.hexists(UNACKED, second.message.tag)
    assert redis_client.llen(WAKE) == 2  # in place of a wait: its token went with it

    reply = redis_client.execute_command(*fetcher.command(lists, [second.message.tag]))
    third = fetcher.read(lists, reply)
    assert third.message is not None and not third.left  # nothing behind it
    assert ids([m.item for m in (first.message, second.message, third.message)
                if m is not None]) == published
    assert redis_client.hlen(UNACKED) == 1

    reply = redis_client.execute_command(*fetcher.command(lists, [third.message.tag]))
    nothing = fetcher.read(lists, reply)
    assert nothing.message is None and not nothing.left
    assert redis_client.hlen(UNACKED) == 0 and redis_client.llen(WAKE) == 0


def consume(channel: Any, got: list[Any]) -> None:
    channel._acked.clear()
    channel.basic_consume(QUEUE, False, lambda message: got.append(message), consumer_tag="t")


def start(channel: Any, *, ahead: bool) -> None:
    """Start the channel's next take as its loop would, the fetch loaded: *ahead*, a fetch
    sent alone (the last one left messages), else the wait with the fetch behind it."""
    fetcher = channel._get_fetcher()
    fetcher._function = fetcher._load()  # as the channel's first fetch does
    client = channel.client
    if getattr(client, "connection", None) is None:  # the poller gives it one as it registers
        client.connection = client.connection_pool.get_connection()
    channel._ahead = ahead
    channel._brpop_start()
    assert channel._sent_fetch is not None and channel._sent_fetch[2] is not ahead


def test_a_message_a_fetch_took_for_a_closing_channel_goes_back_to_the_head(
        app: Any, channel: Any, redis_client: redis.Redis) -> None:
    published = publish(2)
    got: list[Any] = []
    consume(channel, got)
    start(channel, ahead=True)
    channel.close()  # kombu reads the outstanding reply as it closes
    assert got == []
    back = redis_client.lrange(HEAD + "\x06\x166", 0, -1)
    # The list is served from its right end: the first message is next again.
    assert ids(back) == list(reversed(published))
    assert redis_client.hlen(UNACKED) == 0 and redis_client.zcard(INDEX) == 0
    assert redis_client.llen(WAKE) >= 1


def test_a_fetch_redis_has_no_function_for_is_made_again_and_loses_no_ack(
        app: Any, channel: Any, redis_client: redis.Redis) -> None:
    published = publish(2)
    got: list[Any] = []
    consume(channel, got)
    # An earlier message's record, whose ack rides with the fetch.
    redis_client.hset(UNACKED, "earlier", "[]")
    redis_client.zadd(INDEX, {"earlier": time.time()})
    channel.qos._riders.append("earlier")
    start(channel, ahead=True)
    assert channel._sent_fetch is not None and channel._sent_fetch[1] == ["earlier"]
    # Redis forgets its functions and scripts (a restart, FUNCTION FLUSH) before the fetch runs.
    redis_client.function_flush()
    redis_client.script_flush()
    assert channel._brpop_read() is True
    assert [m.headers["id"] for m in got] == published[:1]
    assert not redis_client.hexists(UNACKED, "earlier")
    assert redis_client.hexists(UNACKED, got[0].delivery_tag)
    channel.close()


def test_an_idle_channel_sends_its_fetch_behind_its_wait_and_gets_the_message_with_the_token(
        app: Any, channel: Any, redis_client: redis.Redis) -> None:
    got: list[Any] = []
    consume(channel, got)
    start(channel, ahead=False)  # idle: the wait, and the fetch behind it
    client = channel.client
    time.sleep(0.1)
    assert not client.connection.can_read(timeout=0)  # the wait holds the fetch back
    published = publish(1)
    assert channel._brpop_read() is True  # one read: the token, then the message
    assert [m.headers["id"] for m in got] == published
    assert redis_client.hexists(UNACKED, got[0].delivery_tag)
    assert redis_client.llen(WAKE) == 0
    channel.close()


def test_a_message_taken_behind_a_wait_as_the_channel_closes_goes_back(
        app: Any, channel: Any, redis_client: redis.Redis) -> None:
    published = publish(1)
    got: list[Any] = []
    consume(channel, got)
    start(channel, ahead=False)  # the token is there: the wait returns and the fetch takes it
    channel.close()
    assert got == []
    assert ids(redis_client.lrange(HEAD + "\x06\x166", 0, -1)) == published
    assert redis_client.hlen(UNACKED) == 0 and redis_client.llen(WAKE) >= 1


def test_acks_left_waiting_for_a_fetch_are_sent_by_the_keeper(
        app: Any, channel: Any, redis_client: redis.Redis) -> None:
    redis_client.hset(UNACKED, "left", "[]")
    redis_client.zadd(INDEX, {"left": time.time()})
    qos = channel.qos
    qos._riders.append("left")
    qos._riders_since = time.monotonic()
    qos.renew()
    assert redis_client.hexists(UNACKED, "left")  # the loop may still send it
    qos._riders_since -= 2.0
    qos.renew()
    assert not redis_client.hexists(UNACKED, "left") and not qos._riders
    channel.close()


def test_a_draining_worker_spends_one_call_per_message(
        app: Any, redis_client: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    """A wait, a fetch and an ack per message are one fetch while the queue holds more."""
    from tests.helpers.workers import SubprocessWorker
    from tests.tasks.probes import record

    count = 60
    results = [record.apply_async(("probe:ahead", str(n))) for n in range(count)]
    redis_client.config_resetstat()
    env = {"PIPELINE_STORE_ENABLED": "false"}
    with SubprocessWorker(redis_url, tmp_path, name="drain", pool="solo", env=env) as worker:
        deadline = time.monotonic() + 60
        while redis_client.llen("probe:ahead") < count:
            assert time.monotonic() < deadline, worker.log()
            time.sleep(0.05)
        calls = {name: int(stats["calls"]) for name, stats in
                 redis_client.info("commandstats").items()
                 for name in [name.removeprefix("cmdstat_")]}
        time.sleep(0.5)
        assert redisdb.queued(redis_client) == 0
        assert redis_client.hlen(UNACKED) == 0, "an ack did not reach Redis"
    assert [r.id for r in results]
    # Waits: the first, and after the queue ran dry; never one per message.
    assert calls.get("brpop", 0) < count // 4, calls
    # One fetch per job (a function, or a script on Redis 6), beside its two lock calls.
    assert calls.get("fcall", 0) + calls.get("evalsha", 0) >= 3 * count, calls
    # A job's own writes take two transactions (its result with its notice, its events);
    # an ack sent on its own (kombu's MULTI, HDEL, ZREM, EXEC) would be a third per job.
    assert calls.get("exec", 0) < 2 * count + count // 4, calls
