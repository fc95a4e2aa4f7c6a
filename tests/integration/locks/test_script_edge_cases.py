"""Edge cases of the lock scripts found in review, each once a real bug (real Redis)."""

from __future__ import annotations

import time
from collections.abc import Callable

import redis

from pipeline.locks.base import Acquired, Blocked, Cancelled, Ticket
from pipeline.locks.redis import RedisLocks
from pipeline.resources import EXCLUSIVE, Claim

QUEUE = "{pipeline}:testq"


def x(rid: str, capacity: int = 1) -> Claim:
    return Claim(rid, EXCLUSIVE, capacity)


def ticket(job: str, *claims: Claim, submitted: int = 0, holder: str | None = None,
           step: bool = False) -> Ticket:
    return Ticket(job, holder or job, tuple(sorted(claims)), 6, "{}", submitted, step)


def take(locks: RedisLocks, t: Ticket) -> object:
    return locks.acquire(t, host="h", pid=1, park_message=f"msg-{t.job_id}", queue_key=QUEUE)


def test_line_behind_a_holder_dropped_lazily_is_served_by_the_sweep(
        make_locks: Callable[..., RedisLocks], lock_redis: redis.Redis) -> None:
    locks = make_locks(lock_lease=1)
    now = int(time.time() * 1000)
    take(locks, ticket("H", x("model:b")))                        # dies: never renewed
    take(locks, ticket("G", x("user:u")))
    take(locks, ticket("Y", x("model:b"), submitted=now - 5000))
    take(locks, ticket("Xj", x("user:u"), x("model:b"), submitted=now - 1000))
    time.sleep(0.6)
    locks.renew(["G"])
    time.sleep(0.6)
    locks.release("G", "G")       # serving Xj drops H's expired entry on model:b lazily
    locks.sweep()
    assert locks.explain("Y").status == "granted", "Y stayed parked behind a free model"


def test_wake_that_runs_out_of_budget_is_finished_later(
        make_locks: Callable[..., RedisLocks], lock_redis: redis.Redis) -> None:
    locks = make_locks()
    now = int(time.time() * 1000)
    slot = x("global", 2)
    take(locks, ticket("A0", x("user:alice"), slot))
    take(locks, ticket("G", slot))
    for i in range(300):          # all blocked by global now, by alice once it frees
        take(locks, ticket(f"a{i:03d}", x("user:alice"), slot, submitted=now - 100_000 + i))
    take(locks, ticket("bob", x("user:bob"), slot, submitted=now - 1000))
    locks.release("G", "G")
    locks.sweep()
    assert locks.explain("bob").status == "granted", "a free global slot stayed idle"


def test_guest_of_a_cancelled_running_job_does_not_free_its_hold(
        make_locks: Callable[..., RedisLocks]) -> None:
    locks = make_locks()
    assert isinstance(take(locks, ticket("P", x("model:m"))), Acquired)
    locks.mark_cancelled("P")     # cancel without terminate: P keeps running
    assert isinstance(take(locks, ticket("g1", x("model:m"), holder="P")), Cancelled)
    assert locks.explain("P").status == "running"
    assert isinstance(take(locks, ticket("Q", x("model:m"))), Blocked)


def test_late_release_of_an_earlier_run_does_not_free_a_later_run(
        make_locks: Callable[..., RedisLocks]) -> None:
    locks = make_locks(lock_lease=1)
    first = take(locks, ticket("J", x("model:m")))
    assert isinstance(first, Acquired)
    time.sleep(1.2)
    locks.sweep()
    second = take(locks, ticket("J", x("model:m")))          # a retry or redelivery
    assert isinstance(second, Acquired)
    assert locks.release("J", "J", token=first.tokens["model:m"]) == 0
    assert locks.holders_of("model:m")[0][0] == "J"
    assert locks.release("J", "J", token=second.tokens["model:m"]) == 1


def test_late_guest_does_not_take_over_a_workflow_between_steps(
        make_locks: Callable[..., RedisLocks]) -> None:
    locks = make_locks()
    take(locks, ticket("W", x("model:m")))
    assert locks.release("W", "W", keep_seconds=300) == -1
    guest = take(locks, ticket("g", x("model:m"), holder="W"))
    assert isinstance(guest, Acquired) and guest.guest
    locks.release("W", "g")                                  # the guest ends: hold stays
    assert locks.explain("W").status == "between"
    assert isinstance(take(locks, ticket("Q", x("model:m"))), Blocked)
    assert isinstance(take(locks, ticket("s2", x("model:m"), holder="W", step=True)), Acquired)


def test_cancelled_workflow_keeps_nothing_when_its_next_step_came_first(
        make_locks: Callable[..., RedisLocks]) -> None:
    locks = make_locks()
    take(locks, ticket("W", x("model:m")))
    locks.mark_cancelled("W")     # cancelled while step 1 runs
    # Celery publishes step 2 before step 1's release: it is dropped at once...
    assert isinstance(take(locks, ticket("s2", x("model:m"), holder="W", step=True)), Cancelled)
    # ...so step 1's release must not keep the hold for a step that never comes.
    assert locks.release("W", "W", keep_seconds=300) == 1
    assert locks.explain("W").status == "unknown"
    assert isinstance(take(locks, ticket("Q", x("model:m"))), Acquired)
