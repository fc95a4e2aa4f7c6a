"""Claims of agent pools on the lock scripts: order, atomicity, locks, leases, delays.

The jobs are published as any caller publishes them (``apply_async(...,
agent_pool=...)``) and claimed with the scripts directly
(:class:`pipeline.locks.leases.RedisLeases`), as the API's routes claim them.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from pipeline import conf
from pipeline.job.pools import pool_lists
from pipeline.keys import Keys, pool_queue
from pipeline.locks.engine import RedisLockEngine
from pipeline.locks.leases import Granted, RedisLeases, Refused
from pipeline.locks.resources import Claim
from pipeline.locks.ticket import Acquired, Ticket
from pipeline.messages.events import decode
from tests.integration.locks.support import events_of
from tests.tasks.lockprobes import hold

POOL = "t"


@pytest.fixture
def leases(lock_redis: redis.Redis) -> Callable[..., RedisLeases]:
    """Build the claims' engine with settings overridden by keyword (``pipeline_`` omitted)."""

    def build(**overrides: Any) -> RedisLeases:
        settings = conf.read({f"pipeline_{k}": v for k, v in overrides.items()})
        return RedisLeases(lock_redis, Keys(settings.redis_prefix), settings)

    return build


def claim(engine: RedisLeases, app: Any, agent: str = "a1", pool: str = POOL) -> Granted | None:
    """Claim until a job is granted or nothing more can be."""
    while True:
        reply = engine.claim(pool, pool_queue(pool), pool_lists(app, pool), agent,
                             default_priority=6)
        if reply.granted is not None or not reply.more:
            return reply.granted


def job_of(granted: Granted | None) -> str:
    assert granted is not None
    return granted.job_id


def test_claim_takes_the_most_urgent_job_first_and_fifo_within_a_priority(
        pipeline_app: Any, leases: Callable[..., RedisLeases]) -> None:
    engine = leases(concurrency_global=0)
    low = hold.apply_async((0.0, "low"), agent_pool=POOL, priority="low")
    first = hold.apply_async((0.0, "n1"), agent_pool=POOL)
    second = hold.apply_async((0.0, "n2"), agent_pool=POOL)
    critical = hold.apply_async((0.0, "c"), agent_pool=POOL, priority="critical")
    order = [job_of(claim(engine, pipeline_app)) for _ in range(4)]
    assert order == [critical.id, first.id, second.id, low.id]
    assert claim(engine, pipeline_app) is None


def test_a_job_whose_locks_a_worker_holds_parks_and_is_claimable_once_handed_them(
        pipeline_app: Any, leases: Callable[..., RedisLeases],
        make_locks: Callable[..., RedisLockEngine], lock_redis: redis.Redis) -> None:
    engine, locks = leases(), make_locks()
    worker_job = Ticket("celery-job", "celery-job", (Claim("model:bert", "x", 1),), 6)
    assert isinstance(locks.acquire(worker_job, host="h", pid=1), Acquired)
    blocked = hold.apply_async((0.0, "b"), agent_pool=POOL, models=["bert"])
    free = hold.apply_async((0.0, "f"), agent_pool=POOL, models=["t5"])
    # The most urgent job that can run is claimed; the one behind the worker's lock parks.
    assert job_of(claim(engine, pipeline_app)) == free.id
    assert lock_redis.zrange(Keys().line("model:bert"), 0, -1) == [blocked.id.encode()]
    assert "blocked" in events_of(lock_redis, blocked.id)
    assert claim(engine, pipeline_app, "a2") is None
    # The worker's release hands the model to the parked job and puts it back in its pool.
    locks.release("celery-job", "celery-job")
    granted = claim(engine, pipeline_app, "a2")
    assert job_of(granted) == blocked.id and granted is not None
    assert granted.resources == ("global", "model:bert")
    holds = {h.holder: h for h in locks.holds()}
    assert holds[blocked.id].state == "running" and holds[blocked.id].host == "agent:a2"
    # And the other way round: a worker's job on the model parks behind the agent's hold.
    later = Ticket("celery-2", "celery-2", (Claim("model:bert", "x", 1),), 6)
    assert not isinstance(locks.acquire(later, host="h", pid=1), Acquired)


def test_twenty_concurrent_claimers_never_get_one_job_twice(
        pipeline_app: Any, leases: Callable[..., RedisLeases]) -> None:
    ids = {hold.apply_async((0.0, str(n)), agent_pool=POOL).id for n in range(60)}
    engine = leases(concurrency_global=0)
    got: list[str] = []
    guard = threading.Lock()
    start = threading.Barrier(20)

    def agent(number: int) -> None:
        start.wait()
        while (granted := claim(engine, pipeline_app, f"a{number}")) is not None:
            with guard:
                got.append(granted.job_id)

    threads = [threading.Thread(target=agent, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(got) == sorted(ids)


def test_twenty_concurrent_claimers_of_one_users_jobs_get_one_and_park_the_rest(
        pipeline_app: Any, leases: Callable[..., RedisLeases], lock_redis: redis.Redis) -> None:
    for n in range(20):
        hold.apply_async((0.0, str(n)), agent_pool=POOL, user="alice")
    engine = leases()
    got: list[Granted | None] = []
    start = threading.Barrier(20)

    def agent(number: int) -> None:
        start.wait()
        got.append(claim(engine, pipeline_app, f"a{number}"))

    threads = [threading.Thread(target=agent, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len([g for g in got if g is not None]) == 1
    assert lock_redis.zcard(Keys().line("user:alice")) == 19


def test_a_lease_that_runs_out_gives_the_job_back_and_refuses_the_late_agent(
        pipeline_app: Any, leases: Callable[..., RedisLeases], lock_redis: redis.Redis) -> None:
    engine = leases(lock_lease=1.0)
    job = hold.apply_async((0.0, "j"), agent_pool=POOL, user="bob")
    first = claim(engine, pipeline_app, "slow")
    assert first is not None and engine.start(job.id, first.lease) != Refused("stale")
    time.sleep(1.2)
    assert engine.expire() == 1
    entries = [decode(i, f) for i, f in lock_redis.xrange(Keys().events)]
    given = [e for e in entries if e.job_id == job.id and e.type == "queued"
             and e.detail.get("given_back")]
    assert len(given) == 1 and "lease of agent slow ran out" in given[0].detail["reason"]
    assert not lock_redis.keys(Keys().holder("*"))  # its locks went with the lease
    second = claim(engine, pipeline_app, "quick")
    assert second is not None and second.job_id == job.id and second.token > first.token
    assert engine.finish(job.id, first.lease) == Refused("stale")
    assert engine.renew(job.id, first.lease) == Refused("stale")
    ended = engine.finish(job.id, second.lease)
    assert not isinstance(ended, Refused) and ended.agent == "quick"
    assert engine.finish(job.id, second.lease) == Refused("none")


def test_a_call_after_the_deadline_gives_the_job_back_before_any_sweep(
        pipeline_app: Any, leases: Callable[..., RedisLeases]) -> None:
    engine = leases(lock_lease=1.0)
    job = hold.apply_async((0.0, "j"), agent_pool=POOL)
    granted = claim(engine, pipeline_app)
    assert granted is not None
    time.sleep(1.2)
    assert engine.finish(job.id, granted.lease) == Refused("expired")
    assert job_of(claim(engine, pipeline_app, "a2")) == job.id


def test_a_heartbeat_renews_the_lease_and_the_locks_together(
        pipeline_app: Any, leases: Callable[..., RedisLeases], lock_redis: redis.Redis) -> None:
    engine = leases(lock_lease=2.0)
    job = hold.apply_async((0.0, "j"), agent_pool=POOL, models=["m"])
    granted = claim(engine, pipeline_app)
    assert granted is not None
    for _ in range(3):
        time.sleep(0.8)
        deadline = engine.renew(job.id, granted.lease)
        assert isinstance(deadline, float) and deadline > time.time() + 1.5
    hold_deadline = lock_redis.zscore(Keys().writers("model:m"), job.id)
    assert hold_deadline is not None and abs(hold_deadline / 1000 - deadline) < 0.01
    assert engine.expire() == 0


def test_locks_released_by_hand_make_the_next_heartbeat_give_the_job_back(
        pipeline_app: Any, leases: Callable[..., RedisLeases],
        make_locks: Callable[..., RedisLockEngine]) -> None:
    engine = leases()
    job = hold.apply_async((0.0, "j"), agent_pool=POOL, models=["m"])
    granted = claim(engine, pipeline_app)
    assert granted is not None
    make_locks().force_release("model:m", by="test", reason="stuck")
    assert engine.renew(job.id, granted.lease) == Refused("lost")
    assert job_of(claim(engine, pipeline_app, "a2")) == job.id


def test_a_pools_wake_tokens_never_outnumber_its_messages_nor_run_out_while_any_is_left(
        pipeline_app: Any, leases: Callable[..., RedisLeases], lock_redis: redis.Redis) -> None:
    engine = leases(concurrency_global=0)
    for n in range(10):
        hold.apply_async((0.0, str(n)), agent_pool=POOL)
    wake = pool_lists(pipeline_app, POOL)[0] + "\x06\x16wake"
    assert lock_redis.llen(wake) == 10
    claim(engine, pipeline_app)
    assert lock_redis.llen(wake) == 9
    lock_redis.delete(wake)  # the tokens were taken by waiting agents that then claimed none
    claim(engine, pipeline_app)
    assert lock_redis.llen(wake) == 1  # one left, for the next agent waiting
    for _ in range(8):
        claim(engine, pipeline_app)
    assert lock_redis.llen(wake) == 0 and claim(engine, pipeline_app) is None


def test_a_countdown_keeps_a_pool_job_from_agents_until_it_is_due(
        pipeline_app: Any, leases: Callable[..., RedisLeases]) -> None:
    engine = leases()
    later = hold.apply_async((0.0, "later"), agent_pool=POOL, countdown=1.0)
    now = hold.apply_async((0.0, "now"), agent_pool=POOL)
    assert job_of(claim(engine, pipeline_app)) == now.id
    reply = engine.claim(POOL, pool_queue(POOL), pool_lists(pipeline_app, POOL), "a",
                         default_priority=6)
    assert reply.granted is None and reply.next_due is not None
    assert 0 < reply.next_due - time.time() <= 1.0
    time.sleep(reply.next_due - time.time() + 0.05)
    assert job_of(claim(engine, pipeline_app)) == later.id


def test_a_pool_job_past_its_expiry_is_dropped_and_listed_to_be_revoked(
        pipeline_app: Any, leases: Callable[..., RedisLeases], lock_redis: redis.Redis) -> None:
    engine = leases()
    job = hold.apply_async((0.0, "j"), agent_pool=POOL, expires=0.2)
    time.sleep(0.3)
    assert claim(engine, pipeline_app) is None
    assert "expired" in events_of(lock_redis, job.id)
    assert [item.split(b"\x1f")[0] for item in lock_redis.lrange(Keys().expired, 0, -1)] == \
        [job.id.encode()]


def test_an_item_of_a_pool_that_is_no_task_message_is_set_aside(
        pipeline_app: Any, leases: Callable[..., RedisLeases], lock_redis: redis.Redis) -> None:
    lists = pool_lists(pipeline_app, POOL)
    lock_redis.lpush(lists[2], "not json")
    good = hold.apply_async((0.0, "j"), agent_pool=POOL)
    assert job_of(claim(leases(), pipeline_app)) == good.id
    [kept] = lock_redis.lrange(Keys().set_aside, 0, -1)
    assert json.loads(kept)["raw"] == "not json"
