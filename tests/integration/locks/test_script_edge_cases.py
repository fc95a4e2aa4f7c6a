"""Edge cases of the lock scripts found in review, each once a real bug (real Redis)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from pipeline.locks.engine import RedisLockEngine
from pipeline.locks.resources import EXCLUSIVE, Claim
from pipeline.locks.ticket import Acquired, Blocked, Cancelled, Ticket

QUEUE = "{pipeline}:testq"


def x(rid: str, capacity: int = 1) -> Claim:
    return Claim(rid, EXCLUSIVE, capacity)


def ticket(job: str, *claims: Claim, submitted: int = 0, holder: str | None = None,
           step: bool = False, guest: bool = False) -> Ticket:
    return Ticket(job, holder or job, tuple(sorted(claims)), 6, "{}", submitted, step, guest)


def take(locks: RedisLockEngine, t: Ticket) -> object:
    return locks.acquire(t, host="h", pid=1, park_message=f"msg-{t.job_id}", queue_key=QUEUE)


def test_line_behind_a_holder_dropped_lazily_is_served_by_the_sweep(
        make_locks: Callable[..., RedisLockEngine], lock_redis: redis.Redis) -> None:
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
        make_locks: Callable[..., RedisLockEngine], lock_redis: redis.Redis) -> None:
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
        make_locks: Callable[..., RedisLockEngine]) -> None:
    locks = make_locks()
    assert isinstance(take(locks, ticket("P", x("model:m"))), Acquired)
    locks.mark_cancelled("P")     # cancel without terminate: P keeps running
    assert isinstance(take(locks, ticket("g1", x("model:m"), holder="P", guest=True)), Cancelled)
    assert locks.explain("P").status == "running"
    assert isinstance(take(locks, ticket("Q", x("model:m"))), Blocked)


def test_late_release_of_an_earlier_run_does_not_free_a_later_run(
        make_locks: Callable[..., RedisLockEngine]) -> None:
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
        make_locks: Callable[..., RedisLockEngine]) -> None:
    locks = make_locks()
    take(locks, ticket("W", x("model:m")))
    assert locks.release("W", "W", keep_seconds=300) == -1
    guest = take(locks, ticket("g", x("model:m"), holder="W", guest=True))
    assert isinstance(guest, Acquired) and guest.guest
    locks.release("W", "g")                                  # the guest ends: hold stays
    assert locks.explain("W").status == "between"
    assert isinstance(take(locks, ticket("Q", x("model:m"))), Blocked)
    assert isinstance(take(locks, ticket("s2", x("model:m"), holder="W", step=True)), Acquired)


def test_cancelled_workflow_keeps_nothing_when_its_next_step_came_first(
        make_locks: Callable[..., RedisLockEngine]) -> None:
    locks = make_locks()
    take(locks, ticket("W", x("model:m")))
    locks.mark_cancelled("W")     # cancelled while step 1 runs
    # Celery publishes step 2 before step 1's release: it is dropped at once...
    assert isinstance(take(locks, ticket("s2", x("model:m"), holder="W", step=True)), Cancelled)
    # ...so step 1's release must not keep the hold for a step that never comes.
    assert locks.release("W", "W", keep_seconds=300) == 1
    assert locks.explain("W").status == "unknown"
    assert isinstance(take(locks, ticket("Q", x("model:m"))), Acquired)


def test_a_name_that_looks_like_a_delivery_tag_still_gets_one(
        make_locks: Callable[..., RedisLockEngine], lock_redis: redis.Redis) -> None:
    from pipeline.messages.envelope import envelope

    locks = make_locks()
    take(locks, ticket("H", x("model:delivery_tag")))
    headers = {"task": "t", "id": "J", "pipeline": {"version": 1, "models": ["delivery_tag"],
                                                    "workflow_name": '"delivery_tag"'}}
    stored = envelope(headers, [[], {}, {}], 6, "q", complete=False)
    locks.acquire(ticket("J", x("model:delivery_tag")), host="h", pid=1, park_message=stored,
                  queue_key=QUEUE)
    locks.release("H", "H")
    pushed = json.loads(lock_redis.rpop(QUEUE) or b"")
    assert pushed["properties"]["delivery_tag"].startswith("J.")
    assert pushed["properties"]["correlation_id"] == "J"


def test_parked_job_delivered_twice_is_counted_once_and_keeps_its_wait(
        make_locks: Callable[..., RedisLockEngine], lock_redis: redis.Redis) -> None:
    locks = make_locks()
    take(locks, ticket("H", x("model:m")))
    take(locks, ticket("J", x("model:m")))
    since = locks.explain("J").parked_at
    time.sleep(0.01)
    assert isinstance(take(locks, ticket("J", x("model:m"))), Blocked)
    assert locks.parked_counts() == {6: 1}
    assert locks.explain("J").parked_at == since
    locks.release("H", "H")
    assert locks.parked_counts() == {}


def test_job_sent_by_another_client_with_a_control_character_fails_before_locking(
        pipeline_app: Any, lock_redis: redis.Redis) -> None:
    from types import SimpleNamespace

    from pipeline.errors import InvalidJobError
    from pipeline.job.starting import ticket_for
    from pipeline.runtime.services import services_for
    from tests.tasks.lockprobes import hold as task

    request = SimpleNamespace(id="job\x1fone", pipeline={"version": 1, "models": ["m"]},
                              delivery_info={}, retries=0)
    with pytest.raises(InvalidJobError, match=r"task_id.*control characters"):
        ticket_for(task, request, services_for(pipeline_app))
    request = SimpleNamespace(id="ok", pipeline={"version": 1, "models": ["a\nb"]},
                              delivery_info={}, retries=0)
    with pytest.raises(InvalidJobError, match=r"resource.*control characters"):
        ticket_for(task, request, services_for(pipeline_app))


def test_parked_job_blocked_anew_by_something_else_writes_a_conflict_event(
        make_locks: Callable[..., RedisLockEngine], lock_redis: redis.Redis) -> None:
    from pipeline.messages.events import decode

    locks = make_locks()
    take(locks, ticket("H1", x("model:a")))
    take(locks, ticket("H2", x("model:b")))
    assert isinstance(take(locks, ticket("J", x("model:a"), x("model:b"))), Blocked)
    locks.release("H1", "H1")           # a is free, b is not: J now waits for b
    found = locks.explain("J")
    assert (found.waiting_for, found.blocked_by) == ("model:b", "H2")
    last = [decode(i, f) for i, f in lock_redis.xrange("{pipeline}:events")][-1]
    assert (last.type, last.job_id) == ("conflict", "J")
    assert last.detail["reason"].startswith("waiting for model:b (held by or queued behind H2)")
    locks.release("H2", "H2")
    assert locks.explain("J").status == "granted"


def test_a_new_holder_ahead_in_the_same_line_is_no_conflict(
        make_locks: Callable[..., RedisLockEngine], lock_redis: redis.Redis) -> None:
    from pipeline.messages.events import decode

    locks = make_locks()
    for job in ("H", "J1", "J2", "J3"):
        take(locks, ticket(job, x("model:a")))
    locks.release("H", "H")                # J1 granted; J2 now waits behind J1, same model
    assert locks.explain("J2").blocked_by == "J1"
    kinds = [decode(i, f).type for i, f in lock_redis.xrange("{pipeline}:events")]
    assert "conflict" not in kinds


def test_hold_lasts_until_its_owner_and_every_guest_have_ended(
        make_locks: Callable[..., RedisLockEngine], lock_redis: redis.Redis) -> None:
    locks = make_locks()
    take(locks, ticket("P", x("model:m")))
    g1 = take(locks, ticket("g1", x("model:m"), holder="P", guest=True))
    g2 = take(locks, ticket("g2", x("model:m"), holder="P", guest=True))
    assert isinstance(g1, Acquired) and g1.guest and isinstance(g2, Acquired) and g2.guest
    assert locks.release("P", "P") == -1, "the owner ended while its guests run"
    assert locks.explain("P").status == "guests"
    assert isinstance(take(locks, ticket("Q", x("model:m"))), Blocked)
    assert locks.release("P", "g1") == 0
    assert lock_redis.llen(QUEUE) == 0
    assert locks.release("P", "g2") == 1, "the last guest frees the hold"
    assert lock_redis.rpop(QUEUE) == b"msg-Q"


def test_guest_whose_parent_already_ended_takes_its_own_locks(
        make_locks: Callable[..., RedisLockEngine]) -> None:
    locks = make_locks()
    late = take(locks, ticket("late", x("model:m"), holder="gone", guest=True))
    assert isinstance(late, Acquired) and not late.guest and late.holder == "late"
    assert isinstance(take(locks, ticket("Q", x("model:m"))), Blocked)
    assert locks.release("late", "late") == 1
