"""The Lua scripts, driven directly through RedisLockEngine on the real Redis."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import redis

from pipeline.keys import WAKE_TOKEN, wake_key
from pipeline.locks.engine import RedisLockEngine
from pipeline.locks.resources import EXCLUSIVE, SHARED, Claim
from pipeline.locks.ticket import Acquired, Blocked, Duplicate, Ticket
from pipeline.messages.events import decode

QUEUE = "{pipeline}:testq"
HOST = "testhost"


def ticket(job: str, *claims: Claim, priority: int = 6, holder: str | None = None,
           submitted_ms: int = 0, step: bool = False, guest: bool = False) -> Ticket:
    return Ticket(job, holder or job, tuple(sorted(claims)), priority, "{}", submitted_ms, step,
                  guest)


def model(name: str, mode: str = EXCLUSIVE) -> Claim:
    return Claim(f"model:{name}", mode, 1)


def take(locks: RedisLockEngine, t: Ticket) -> Acquired | Blocked | Duplicate:
    """Acquire, parking with a recognisable message when blocked."""
    return locks.acquire(t, host=HOST, pid=1, park_message=f"msg-{t.job_id}", queue_key=QUEUE)


def deliver(client: redis.Redis) -> str:
    """Take the next handed-off message the way a worker does (BRPOP's end)."""
    raw = client.rpop(QUEUE)
    assert raw is not None, "no job was handed off"
    return raw.decode().removeprefix("msg-")


def events(client: redis.Redis) -> list[tuple[str, str]]:
    return [(e.type, e.job_id) for e in
            (decode(i, f) for i, f in client.xrange("{pipeline}:events"))]


def pushed(client: redis.Redis) -> list[str]:
    """Messages handed to the queue, in the order a worker would take them."""
    return [m.decode() for m in reversed(client.lrange(QUEUE, 0, -1))]


def test_free_resources_are_taken_in_one_call_with_tokens(
        make_locks: Callable[..., RedisLockEngine], lock_redis: redis.Redis) -> None:
    locks = make_locks()
    result = take(locks, ticket("j1", model("a"), Claim("user:alice", EXCLUSIVE, 1)))
    assert isinstance(result, Acquired) and set(result.tokens) == {"model:a", "user:alice"}
    first = result.tokens["model:a"]
    assert result.tokens["user:alice"] == first, "one token for the whole grant"
    assert events(lock_redis) == [("started", "j1")]
    assert locks.release("j1", "j1", event="completed") == 2
    again = take(locks, ticket("j2", model("a")))
    assert isinstance(again, Acquired) and list(again.tokens) == ["model:a"]
    assert again.tokens["model:a"] > first


def test_blocked_job_without_message_is_left_untouched(
        make_locks: Callable[..., RedisLockEngine], lock_redis: redis.Redis) -> None:
    locks = make_locks()
    take(locks, ticket("holder", model("a")))
    result = locks.acquire(ticket("j2", model("a")), host=HOST, pid=1)
    assert result == Blocked("model:a", "holder", 0)
    assert not lock_redis.exists("{pipeline}:park:j2")
    assert locks.parked_counts() == {}


def test_parked_job_is_handed_its_locks_and_message_by_the_release(
        make_locks: Callable[..., RedisLockEngine], lock_redis: redis.Redis) -> None:
    locks = make_locks()
    take(locks, ticket("holder", model("a")))
    assert take(locks, ticket("waiter", model("a"))) == Blocked("model:a", "holder", 1)
    assert locks.parked_counts() == {6: 1}
    assert locks.explain("waiter").status == "parked"

    locks.release("holder", "holder", event="completed")

    assert pushed(lock_redis) == ["msg-waiter"]
    # With a token on the queue's wake list: an idle worker takes it at once.
    assert lock_redis.lrange(wake_key(QUEUE), 0, -1) == [WAKE_TOKEN.encode()]
    assert locks.explain("waiter").status == "granted"
    assert locks.parked_counts() == {}
    started = take(locks, ticket("waiter", model("a")))
    assert isinstance(started, Acquired) and list(started.tokens) == ["model:a"]
    assert [e for e in events(lock_redis) if e[1] == "waiter"] == [
        ("blocked", "waiter"), ("granted", "waiter"), ("started", "waiter")]


def test_job_needing_two_models_never_holds_one_while_waiting(
        make_locks: Callable[..., RedisLockEngine], lock_redis: redis.Redis) -> None:
    locks = make_locks()
    take(locks, ticket("x", model("a")))
    assert isinstance(take(locks, ticket("ab", model("a"), model("b"))), Blocked)
    assert lock_redis.zcard("{pipeline}:res:model:b:w") == 0
    # b stays usable by others while ab waits for a
    assert isinstance(take(locks, ticket("b-only", model("b"))), Acquired)
    locks.release("x", "x")
    assert pushed(lock_redis) == []  # still blocked by b-only
    locks.release("b-only", "b-only")
    assert pushed(lock_redis) == ["msg-ab"]


def test_readers_share_a_model_and_a_writer_excludes_them(
        make_locks: Callable[..., RedisLockEngine]) -> None:
    locks = make_locks()
    assert isinstance(take(locks, ticket("r1", model("m", SHARED))), Acquired)
    assert isinstance(take(locks, ticket("r2", model("m", SHARED))), Acquired)
    assert take(locks, ticket("w", model("m"))) == Blocked("model:m", "r1", 1)
    locks.release("r1", "r1")
    assert locks.explain("w").status == "parked"
    locks.release("r2", "r2")
    assert locks.explain("w").status == "granted"
    assert isinstance(take(locks, ticket("r3", model("m", SHARED))), Blocked)


def test_capacity_limits_holders_of_a_project(make_locks: Callable[..., RedisLockEngine]) -> None:
    locks = make_locks()
    project = Claim("project:nlp", EXCLUSIVE, 2)
    assert isinstance(take(locks, ticket("p1", project)), Acquired)
    assert isinstance(take(locks, ticket("p2", project)), Acquired)
    assert isinstance(take(locks, ticket("p3", project)), Blocked)
    locks.release("p1", "p1")
    assert locks.explain("p3").status == "granted"


def test_parked_jobs_wake_by_priority_then_submission(
        make_locks: Callable[..., RedisLockEngine], lock_redis: redis.Redis) -> None:
    locks = make_locks()
    take(locks, ticket("holder", model("a")))
    order = [("low1", 9, 1), ("norm1", 6, 2), ("crit", 0, 3), ("norm2", 6, 4), ("low2", 9, 5)]
    for job, priority, submitted in order:
        take(locks, ticket(job, model("a"), priority=priority, submitted_ms=submitted))
    woken = []
    current = "holder"
    for _ in order:
        locks.release(current, current)
        current = deliver(lock_redis)
        woken.append(current)
        assert isinstance(take(locks, ticket(current, model("a"))), Acquired)
    assert woken == ["crit", "norm1", "norm2", "low1", "low2"]


def test_newcomer_does_not_overtake_parked_jobs(
        make_locks: Callable[..., RedisLockEngine], lock_redis: redis.Redis) -> None:
    locks = make_locks()
    take(locks, ticket("holder", model("a")))
    take(locks, ticket("first", model("a"), submitted_ms=10))
    locks.release("holder", "holder")  # "first" is granted, not yet started
    late = take(locks, ticket("late", model("a"), submitted_ms=20))
    assert isinstance(late, Blocked) and late.blocked_by == "first"
    # a newcomer of higher priority goes ahead of waiting normal jobs, never past a holder
    take(locks, ticket("first", model("a")))
    urgent = take(locks, ticket("urgent", model("a"), priority=0, submitted_ms=30))
    assert isinstance(urgent, Blocked) and urgent.position == 1


def test_expired_lease_lets_another_job_in_with_a_higher_token(
        make_locks: Callable[..., RedisLockEngine], lock_redis: redis.Redis) -> None:
    locks = make_locks(lock_lease=1.0)
    first = take(locks, ticket("old", model("a")))
    assert isinstance(first, Acquired)
    time.sleep(1.1)
    new = take(locks, ticket("new", model("a")))
    assert isinstance(new, Acquired) and new.tokens["model:a"] > first.tokens["model:a"]
    # the old holder wakes up and releases: the new holder keeps its lock
    assert locks.release("old", "old") == 0
    assert locks.explain("new").status == "running"
    assert lock_redis.zscore("{pipeline}:res:model:a:w", "new") is not None
    assert locks.renew(["old"]) == ["old"]


def test_renew_extends_the_lease(make_locks: Callable[..., RedisLockEngine],
                                 lock_redis: redis.Redis) -> None:
    locks = make_locks(lock_lease=1.0)
    take(locks, ticket("j", model("a")))
    for _ in range(3):
        time.sleep(0.5)
        assert locks.renew(["j"]) == []
    assert isinstance(take(locks, ticket("other", model("a"))), Blocked)


def test_sweep_hands_on_the_resources_of_a_dead_holder(
        make_locks: Callable[..., RedisLockEngine], lock_redis: redis.Redis) -> None:
    locks = make_locks(lock_lease=1.0)
    take(locks, ticket("dead", model("a")))
    take(locks, ticket("waiter", model("a")))
    assert locks.sweep() == (0, 0)
    time.sleep(1.1)
    assert locks.sweep() == (1, 0)
    assert pushed(lock_redis) == ["msg-waiter"]
    assert ("lock_lost", "dead") in events(lock_redis)


def test_grant_that_is_never_started_expires_and_passes_on(
        make_locks: Callable[..., RedisLockEngine], lock_redis: redis.Redis) -> None:
    locks = make_locks(lock_grant_ttl=1.0)
    take(locks, ticket("holder", model("a")))
    take(locks, ticket("lost", model("a"), submitted_ms=1))
    take(locks, ticket("next", model("a"), submitted_ms=2))
    locks.release("holder", "holder")
    assert deliver(lock_redis) == "lost"  # taken by a process that dies before starting it
    time.sleep(1.1)
    locks.sweep()
    assert deliver(lock_redis) == "next"
    # the late start of the first grant is an ordinary acquire again: it parks
    assert isinstance(take(locks, ticket("lost", model("a"))), Blocked)


def test_job_parked_past_the_wait_timeout_expires_with_its_reason(
        make_locks: Callable[..., RedisLockEngine], lock_redis: redis.Redis) -> None:
    locks = make_locks(wait_timeout=1.0)
    take(locks, ticket("holder", model("a")))
    take(locks, ticket("patient", model("a")))
    time.sleep(1.1)
    assert locks.sweep() == (0, 1)
    expired = [decode(i, f) for i, f in lock_redis.xrange("{pipeline}:events")][-1]
    assert (expired.type, expired.job_id) == ("expired", "patient")
    assert "model:a" in expired.detail["reason"]
    assert locks.explain("patient").status == "unknown"
    assert locks.parked_counts() == {}


def test_cancel_and_reprioritize_parked_jobs(make_locks: Callable[..., RedisLockEngine],
                                             lock_redis: redis.Redis) -> None:
    locks = make_locks()
    take(locks, ticket("holder", model("a")))
    for n, job in enumerate(["j1", "j2", "j3"]):
        take(locks, ticket(job, model("a"), submitted_ms=n + 1))
    assert locks.cancel_parked("j1", "no longer needed")
    assert not locks.cancel_parked("j1", "twice")
    assert locks.reprioritize_parked("j3", 0) == 6
    assert locks.reprioritize_parked("missing", 0) is None
    assert locks.explain("j3").position == 1
    assert locks.parked_counts() == {0: 1, 6: 1}
    locks.release("holder", "holder")
    assert pushed(lock_redis) == ["msg-j3"]


def test_redelivered_message_of_a_running_job_is_a_duplicate(
        make_locks: Callable[..., RedisLockEngine]) -> None:
    locks = make_locks()
    take(locks, ticket("j", model("a")))
    assert take(locks, ticket("j", model("a"))) == Duplicate()


def test_workflow_keeps_its_hold_between_steps(make_locks: Callable[..., RedisLockEngine],
                                              lock_redis: redis.Redis) -> None:
    locks = make_locks()
    both = (model("a"), model("b"))
    step1 = take(locks, ticket("step1", *both, holder="wf"))
    assert isinstance(step1, Acquired)
    assert locks.release("wf", "step1", keep_seconds=30) == -1
    assert isinstance(take(locks, ticket("other", model("b"))), Blocked)
    step2 = take(locks, ticket("step2", *both, holder="wf", step=True))
    assert isinstance(step2, Acquired) and step2.tokens == step1.tokens, "the same hold"
    assert locks.release("wf", "step2") == 2
    assert pushed(lock_redis) == ["msg-other"]


def test_every_change_writes_one_event_with_its_detail(
        make_locks: Callable[..., RedisLockEngine], lock_redis: redis.Redis) -> None:
    locks = make_locks()
    take(locks, ticket("a", model("m")))
    take(locks, ticket("b", model("m")))
    locks.release("a", "a", event="completed", detail=json.dumps({"result": "1"}))
    got = [decode(i, f) for i, f in lock_redis.xrange("{pipeline}:events")]
    assert [(e.type, e.job_id) for e in got] == [
        ("started", "a"), ("blocked", "b"), ("granted", "b"), ("completed", "a")]
    blocked = got[1].detail
    assert blocked["resource"] == "model:m" and blocked["holder"] == "a"
    assert blocked["position"] == 1
    assert got[0].detail["token"] < locks.explain("b").tokens["model:m"]


def test_release_sent_without_waiting_runs_on_a_redis_that_never_saw_the_scripts(
        make_locks: Callable[..., RedisLockEngine], lock_redis: redis.Redis) -> None:
    lock_redis.script_flush()
    locks = make_locks()  # a new process's engine: its connection is made on first use
    take(locks, ticket("holder", model("a")))
    take(locks, ticket("waiter", model("a")))
    locks.release("holder", "holder", event="completed", wait=False)
    # no further call from this engine: the hand-off must have happened anyway
    deadline = time.monotonic() + 2
    while not lock_redis.llen(QUEUE) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert deliver(lock_redis) == "waiter"
    assert ("completed", "holder") in events(lock_redis)


def test_expiry_index_skips_jobs_no_longer_parked_and_uses_the_latest_park(
        make_locks: Callable[..., RedisLockEngine], lock_redis: redis.Redis) -> None:
    locks = make_locks(wait_timeout=1.0)
    take(locks, ticket("holder", model("a")))
    take(locks, ticket("gone", model("a"), submitted_ms=1))
    take(locks, ticket("again", model("a"), submitted_ms=2))
    assert locks.cancel_parked("gone", "test")
    assert locks.cancel_parked("again", "test")
    time.sleep(0.7)
    take(locks, ticket("again", model("a"), submitted_ms=2))      # parked once more, later
    time.sleep(0.5)
    assert locks.sweep() == (0, 0), "expired on the time of its first park"
    assert lock_redis.llen("{pipeline}:parked:order") == 1, "stale entries were kept"
    time.sleep(0.6)
    assert locks.sweep() == (0, 1)
    assert lock_redis.llen("{pipeline}:parked:order") == 0


def test_parked_record_is_one_compact_string_and_explains_the_job(
        make_locks: Callable[..., RedisLockEngine], lock_redis: redis.Redis) -> None:
    locks = make_locks()
    take(locks, ticket("holder", model("a")))
    take(locks, ticket("w\u00e9ird \"id\"", model("a"), priority=3))
    assert lock_redis.type("{pipeline}:park:w\u00e9ird \"id\"") == b"string"
    found = locks.explain("w\u00e9ird \"id\"")
    assert (found.status, found.waiting_for, found.blocked_by, found.position, found.priority) \
        == ("parked", "model:a", "holder", 1, 3)
    assert locks.reprioritize_parked("w\u00e9ird \"id\"", 1) == 3
    assert locks.explain("w\u00e9ird \"id\"").priority == 1


def test_message_stored_without_its_tags_is_completed_at_hand_off(
        make_locks: Callable[..., RedisLockEngine], lock_redis: redis.Redis) -> None:
    from pipeline.messages.envelope import envelope

    locks = make_locks()
    take(locks, ticket("holder", model("a")))
    headers = {"lang": "py", "task": "t", "id": 'j"1', "retries": 0, "timelimit": [None, None]}
    body = [[1], {}, {"callbacks": None, "chain": None}]
    stored = envelope(headers, body, 6, "q", complete=False)
    assert "delivery_tag" not in stored and "retries" not in stored and "null" not in stored
    locks.acquire(ticket('j"1', model("a")), host=HOST, pid=1, park_message=stored,
                  queue_key=QUEUE)
    complete = envelope(headers, body, 6, "q")
    locks.acquire(ticket("j2", model("a")), host=HOST, pid=1, park_message=complete,
                  queue_key=QUEUE)
    locks.release("holder", "holder")
    message = json.loads(pushed(lock_redis)[0])
    token = locks.explain('j"1').tokens["model:a"]
    assert message["properties"]["correlation_id"] == 'j"1'
    assert message["properties"]["delivery_tag"] == f'j"1.{token}'
    assert message["headers"]["id"] == 'j"1' and json.loads(message["body"]) == [[1], {}, {}]
    locks.release('j"1', 'j"1')
    assert pushed(lock_redis)[0] == complete, "a complete message is pushed as it was"


def test_parked_jobs_are_counted_by_the_kind_of_what_blocks_them(
        make_locks: Callable[..., RedisLockEngine], lock_redis: redis.Redis) -> None:
    locks = make_locks()
    alice = Claim("user:alice", EXCLUSIVE, 1)
    take(locks, ticket("holder", model("a")))
    take(locks, ticket("alice1", alice))
    assert take(locks, ticket("w1", model("a"))) == Blocked("model:a", "holder", 1)
    assert take(locks, ticket("w2", alice)) == Blocked("user:alice", "alice1", 1)
    # Blocked by both: counted once, under the first resource that blocks it.
    assert isinstance(take(locks, ticket("w3", model("a"), alice)), Blocked)
    assert locks.parked_by_kind() == {"model": 2, "user": 1}
    assert [p.job_id for p in locks.parked_jobs()] == ["w1", "w2", "w3"]
    assert [p.job_id for p in locks.parked_jobs(limit=2)] == ["w1", "w2"]

    locks.release("alice1", "alice1", event="completed")   # w2 is handed user:alice
    assert locks.parked_by_kind() == {"model": 2}
    locks.release("holder", "holder", event="completed")   # w1 is handed model:a
    # w3 now waits only behind w1 and w2, both granted: still blocked by a model.
    assert sum(locks.parked_by_kind().values()) == 1
    assert [p.job_id for p in locks.parked_jobs()] == ["w3"]
    locks.cancel_parked("w3", "test")
    assert locks.parked_by_kind() == {}
    assert locks.parked_jobs() == []


def test_jobs_published_within_one_millisecond_are_served_in_submission_order(
        make_locks: Callable[..., RedisLockEngine], lock_redis: redis.Redis) -> None:
    locks = make_locks()
    take(locks, ticket("holder", model("a")))
    # Delivered in the reverse order of their submission, 0.3 ms apart.
    take(locks, ticket("second", model("a"), submitted_ms=1_764_000_000_000.5))
    take(locks, ticket("first", model("a"), submitted_ms=1_764_000_000_000.2))
    locks.release("holder", "holder")
    assert pushed(lock_redis) == ["msg-first"]
