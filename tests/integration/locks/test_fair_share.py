"""Fair share in the lock scripts: projects wake in turn, each project stays FIFO."""

from __future__ import annotations

from collections.abc import Callable

import redis

from pipeline.locks.engine import RedisLockEngine
from pipeline.locks.resources import EXCLUSIVE, Claim
from pipeline.locks.ticket import Acquired, Ticket

QUEUE = "{pipeline}:testq"
SLOT = Claim("global", EXCLUSIVE, 1)


def job(name: str, project: str | None = None, priority: int = 6,
        submitted: int = 0) -> Ticket:
    claims = [SLOT, Claim(f"model:{name}", EXCLUSIVE, 1)]
    if project:
        claims.append(Claim(f"project:{project}", EXCLUSIVE, 100))
    return Ticket(name, name, tuple(sorted(claims)), priority, "{}", submitted)


def park(locks: RedisLockEngine, ticket: Ticket) -> None:
    locks.acquire(ticket, host="h", pid=1, park_message=f"msg-{ticket.job_id}", queue_key=QUEUE)


def backlog(locks: RedisLockEngine, prefix: str, project: str, count: int) -> None:
    """Park *count* jobs ``<prefix>-<project>-<i>`` of *project*, in order."""
    for i in range(count):
        park(locks, job(f"{prefix}-{project}-{i}", project))


def serve(locks: RedisLockEngine, client: redis.Redis, holder: str, count: int) -> list[str]:
    """Release *holder*, start what is handed off, and so on *count* times; the order."""
    order = []
    for _ in range(count):
        locks.release(holder, holder)
        raw = client.rpop(QUEUE)
        assert raw is not None, f"nothing handed off after {order}"
        holder = raw.decode().removeprefix("msg-")
        assert isinstance(locks.acquire(job(holder), host="h", pid=1), Acquired)
        order.append(holder)
    return order


def test_projects_parked_at_one_priority_wake_in_turn(
        make_locks: Callable[..., RedisLockEngine], lock_redis: redis.Redis) -> None:
    locks = make_locks()
    park(locks, job("holder"))
    backlog(locks, "a", "p1", 10)
    backlog(locks, "b", "p2", 3)
    assert serve(locks, lock_redis, "holder", 13) == [
        "a-p1-0", "b-p2-0", "a-p1-1", "b-p2-1", "a-p1-2", "b-p2-2",
        "a-p1-3", "a-p1-4", "a-p1-5", "a-p1-6", "a-p1-7", "a-p1-8", "a-p1-9"]


def test_a_project_that_was_idle_starts_at_the_current_turn_without_credit(
        make_locks: Callable[..., RedisLockEngine], lock_redis: redis.Redis) -> None:
    locks = make_locks()
    park(locks, job("holder"))
    backlog(locks, "a", "p1", 10)
    first = serve(locks, lock_redis, "holder", 5)
    assert first == [f"a-p1-{i}" for i in range(5)]
    backlog(locks, "b", "p2", 3)
    # p2 interleaves from here on; it does not get the five turns it did not use.
    assert serve(locks, lock_redis, first[-1], 6) == [
        "b-p2-0", "a-p1-5", "b-p2-1", "a-p1-6", "b-p2-2", "a-p1-7"]


def test_each_project_and_the_jobs_without_one_stay_fifo_when_delivered_out_of_order(
        make_locks: Callable[..., RedisLockEngine], lock_redis: redis.Redis) -> None:
    locks = make_locks()
    park(locks, job("holder"))
    for submitted in (30, 10, 20, 50, 40):                  # the order they reached Redis
        park(locks, job(f"none-{submitted}", submitted=submitted))
    served = serve(locks, lock_redis, "holder", 5)
    assert served == ["none-10", "none-20", "none-30", "none-40", "none-50"]
    for submitted in (300, 100, 200):
        park(locks, job(f"p-{submitted}", "p", submitted=submitted))
    assert serve(locks, lock_redis, served[-1], 3) == ["p-100", "p-200", "p-300"]


def test_priority_still_goes_first_across_projects(
        make_locks: Callable[..., RedisLockEngine], lock_redis: redis.Redis) -> None:
    locks = make_locks()
    park(locks, job("holder"))
    backlog(locks, "a", "p1", 3)
    park(locks, job("b-p2-urgent", "p2", priority=0))
    park(locks, job("c-low", priority=9))
    assert serve(locks, lock_redis, "holder", 5) == [
        "b-p2-urgent", "a-p1-0", "a-p1-1", "a-p1-2", "c-low"]


def test_a_level_that_drained_starts_its_turns_afresh(
        make_locks: Callable[..., RedisLockEngine], lock_redis: redis.Redis) -> None:
    locks = make_locks()
    park(locks, job("holder"))
    backlog(locks, "a", "p1", 5)
    last = serve(locks, lock_redis, "holder", 5)[-1]
    assert locks.parked_counts() == {}
    park(locks, job("b-p2-0", "p2"))
    assert lock_redis.hkeys("{pipeline}:fair:6") == [b"project:p2"]   # p1's turns forgotten
    park(locks, job("b-p2-1", "p2"))
    park(locks, job("z-p1-5", "p1"))      # p1's turn is p2's first one again (ties: by id)
    assert serve(locks, lock_redis, last, 3) == ["b-p2-0", "z-p1-5", "b-p2-1"]
