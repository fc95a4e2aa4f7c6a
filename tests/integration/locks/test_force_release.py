"""force_release.lua, driven directly through RedisLockEngine on the real Redis."""

from __future__ import annotations

import time
from collections.abc import Callable

import redis

from pipeline.locks.engine import RedisLockEngine
from pipeline.locks.resources import EXCLUSIVE, SHARED, Claim
from pipeline.locks.ticket import Acquired, Blocked
from pipeline.messages.events import decode
from tests.integration.locks.test_scripts import deliver, events, model, pushed, take, ticket


def operator_events(client: redis.Redis) -> list[tuple[str, dict[str, object]]]:
    found = (decode(i, f) for i, f in client.xrange("{pipeline}:events"))
    return [(e.job_id, e.detail) for e in found if e.type == "operator"]


def test_forced_release_hands_the_resource_to_the_next_parked_job(
        make_locks: Callable[..., RedisLockEngine], lock_redis: redis.Redis) -> None:
    locks = make_locks()
    first = take(locks, ticket("stuck", model("a")))
    assert isinstance(first, Acquired)
    assert take(locks, ticket("waiter", model("a"))) == Blocked("model:a", "stuck", 1)

    ended, handed = locks.force_release("model:a", by="ops", reason="stuck for an hour")

    assert [(h.holder, h.job, h.token) for h in ended] == [
        ("stuck", "stuck", first.tokens["model:a"])]
    assert [c.resource for c in ended[0].claims] == ["model:a"]
    assert handed == ["waiter"]
    assert pushed(lock_redis) == ["msg-waiter"]
    assert locks.explain("waiter").status == "granted"
    assert ("lock_lost", "stuck") in events(lock_redis)
    assert operator_events(lock_redis) == [("stuck", {
        "action": "lock_release", "by": "ops", "target": "model:a",
        "reason": "stuck for an hour", "count": 1})]


def test_ended_holder_finds_its_lease_lost_and_never_frees_the_new_holder(
        make_locks: Callable[..., RedisLockEngine], lock_redis: redis.Redis) -> None:
    locks = make_locks()
    old = take(locks, ticket("old", model("a")))
    assert isinstance(old, Acquired)
    take(locks, ticket("new", model("a")))
    locks.force_release("model:a", by="ops", reason="test")
    assert deliver(lock_redis) == "new"
    new = take(locks, ticket("new", model("a")))
    assert isinstance(new, Acquired) and new.tokens["model:a"] > old.tokens["model:a"]

    assert locks.renew(["old"]) == ["old"]
    # The old run's own release, late, with its token or without: nothing is freed.
    assert locks.release("old", "old", event="completed", token=old.tokens["model:a"]) == 0
    assert locks.release("old", "old") == 0
    assert locks.explain("new").status == "running"
    assert lock_redis.zscore("{pipeline}:res:model:a:w", "new") is not None


def test_an_ended_hold_frees_all_its_resources_and_wakes_their_lines(
        make_locks: Callable[..., RedisLockEngine], lock_redis: redis.Redis) -> None:
    locks = make_locks()
    alice = Claim("user:alice", EXCLUSIVE, 1)
    take(locks, ticket("stuck", model("a"), alice))
    take(locks, ticket("wants-alice", alice, submitted_ms=1))
    take(locks, ticket("wants-a", model("a"), submitted_ms=2))

    ended, handed = locks.force_release("model:a", by="ops", reason="test")

    assert sorted(c.resource for c in ended[0].claims) == ["model:a", "user:alice"]
    assert handed == ["wants-a"]
    assert sorted(pushed(lock_redis)) == ["msg-wants-a", "msg-wants-alice"]
    assert not lock_redis.exists("{pipeline}:hold:stuck")
    assert lock_redis.zscore("{pipeline}:holders", "stuck") is None


def test_every_shared_reader_is_ended_and_the_writer_gets_the_model(
        make_locks: Callable[..., RedisLockEngine], lock_redis: redis.Redis) -> None:
    locks = make_locks()
    take(locks, ticket("r1", model("m", SHARED)))
    take(locks, ticket("r2", model("m", SHARED)))
    take(locks, ticket("writer", model("m")))

    ended, handed = locks.force_release("model:m", by="ops", reason="test")

    assert sorted(h.holder for h in ended) == ["r1", "r2"]
    assert handed == ["writer"]
    assert len(operator_events(lock_redis)) == 2


def test_a_resource_nobody_holds_ends_nothing_and_writes_nothing(
        make_locks: Callable[..., RedisLockEngine], lock_redis: redis.Redis) -> None:
    locks = make_locks()
    assert locks.force_release("model:free", by="ops", reason="test") == ([], [])
    assert events(lock_redis) == []


def test_a_holder_entry_without_its_record_is_removed(
        make_locks: Callable[..., RedisLockEngine], lock_redis: redis.Redis) -> None:
    locks = make_locks()
    deadline = int(time.time() * 1000) + 60_000
    lock_redis.zadd("{pipeline}:res:model:a:w", {"ghost": deadline})
    lock_redis.zadd("{pipeline}:holders", {"ghost": deadline})

    ended, _ = locks.force_release("model:a", by="ops", reason="ghost")

    assert [(h.holder, h.job) for h in ended] == [("ghost", "")]
    assert lock_redis.zcard("{pipeline}:res:model:a:w") == 0
    assert lock_redis.zscore("{pipeline}:holders", "ghost") is None
    assert isinstance(take(locks, ticket("next", model("a"))), Acquired)
    assert operator_events(lock_redis)[0] == ("", {
        "action": "lock_release", "by": "ops", "target": "model:a", "reason": "ghost",
        "count": 1})
