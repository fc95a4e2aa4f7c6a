"""The lock calls run as Redis functions on Redis 7, as scripts on 6.2, the same either way."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from pipeline import conf
from pipeline.keys import Keys
from pipeline.locks.engine import RedisLockEngine
from pipeline.locks.resources import EXCLUSIVE, Claim
from pipeline.locks.scripts import library
from pipeline.locks.ticket import Acquired, Blocked, Ticket
from pipeline.runtime.embedded import EmbeddedRedis

MODEL = (Claim("model:m", EXCLUSIVE, 1),)


def _take_and_hand_off(locks: RedisLockEngine) -> None:
    assert isinstance(locks.acquire(Ticket("a", "a", MODEL, 6), host="h", pid=1), Acquired)
    waiting = locks.acquire(Ticket("b", "b", MODEL, 6), host="h", pid=1, park_message="msg-b",
                            queue_key="{pipeline}:q")
    assert isinstance(waiting, Blocked) and waiting.position == 1
    assert locks.release("a", "a", event="completed") == 1
    assert locks.explain("b").status == "granted"


def test_on_redis_7_the_calls_are_functions_of_one_library(
        make_locks: Callable[..., RedisLockEngine], lock_redis: redis.Redis) -> None:
    lock_redis.function_flush()
    locks = make_locks()
    _take_and_hand_off(locks)
    name = library()[0].split("\n", 1)[0].removeprefix("#!lua name=")
    assert [entry[1] for entry in lock_redis.function_list()] == [name.encode()]
    lock_redis.function_flush()  # lost by hand: loaded again by the next call
    assert locks.release("b", "b") == 1


def test_on_redis_6_2_the_calls_are_scripts(tmp_path: Path) -> None:
    with EmbeddedRedis(str(tmp_path)) as server:
        client = redis.Redis.from_url(server.url)
        version = str(client.info("server")["redis_version"])
        if int(version.split(".")[0]) >= 7:
            client.close()
            pytest.skip(f"the embedded server here is {version}, not 6.2: the test above "
                        "covers servers with functions")
        locks = RedisLockEngine(client, Keys(), conf.read({}))
        _take_and_hand_off(locks)
        assert not locks._fast._local.functions
        client.close()
