"""Random sequences of lock operations keep the engine's invariants (real Redis).

After every step: no resource has more writers than its capacity, readers and
writers never hold a model together, every parked job waits in at least one
line and every line entry belongs to a parked job, the per-priority counters
match the parked jobs, and no job both holds and waits. At the end, releasing
whatever holds until nothing is left hands every parked job its locks
(nobody starves, nothing leaks).
"""

from __future__ import annotations

from collections.abc import Callable

import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.locks.engine import RedisLockEngine
from pipeline.locks.resources import EXCLUSIVE, SHARED, Claim
from pipeline.locks.ticket import Acquired, Blocked, Ticket

QUEUE = "{pipeline}:testq"
RESOURCES = [("user:u1", 1), ("user:u2", 1), ("model:a", 1), ("model:b", 1),
             ("project:p", 2), ("global", 3)]

claim_sets = st.lists(st.sampled_from(range(len(RESOURCES))), min_size=1, max_size=3,
                      unique=True)
operation = st.one_of(
    st.tuples(st.just("submit"), claim_sets, st.sampled_from([0, 3, 6, 9]), st.booleans()),
    st.tuples(st.just("release"), st.integers(0, 50)),
    st.tuples(st.just("start_granted"), st.integers(0, 50)),
    st.tuples(st.just("cancel"), st.integers(0, 50)),
)


def claims_of(indexes: list[int], shared: bool) -> tuple[Claim, ...]:
    out = []
    for i in indexes:
        rid, cap = RESOURCES[i]
        mode = SHARED if shared and rid.startswith("model:") else EXCLUSIVE
        out.append(Claim(rid, mode, cap))
    return tuple(sorted(out))


def check(client: redis.Redis) -> None:
    parked = {k.decode().split(":", 2)[2] for k in client.keys("{pipeline}:park:*")}
    holders = {k.decode().split(":", 2)[2] for k in client.keys("{pipeline}:hold:*")}
    assert not parked & holders, f"jobs both holding and parked: {parked & holders}"
    for rid, cap in RESOURCES:
        writers = client.zcard(f"{{pipeline}}:res:{rid}:w")
        readers = client.zcard(f"{{pipeline}}:res:{rid}:r")
        assert writers <= cap, f"{rid} has {writers} writers, capacity {cap}"
        assert not (writers and readers), f"{rid} has writers and readers together"
    in_lines: set[str] = set()
    for key in client.keys("{pipeline}:line:*"):
        members = {m.decode() for m in client.zrange(key, 0, -1)}
        assert members <= parked, f"{key!r} lists jobs that are not parked"
        in_lines |= members
    assert in_lines == parked, f"parked jobs in no line: {parked - in_lines}"
    counts = {int(k): int(v) for k, v in client.hgetall("{pipeline}:parked:count").items()}
    assert sum(counts.values()) == len(parked)


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(operation, min_size=5, max_size=60))
def test_random_operations_keep_the_invariants(
        ops: list[tuple[object, ...]], make_locks: Callable[..., RedisLockEngine],
        lock_redis: redis.Redis) -> None:
    lock_redis.flushdb()
    locks = make_locks()
    running: list[str] = []
    tickets = {}
    serial = 0
    for op in ops:
        if op[0] == "submit":
            _, indexes, priority, shared = op
            serial += 1
            job = f"j{serial}"
            ticket = Ticket(job, job, claims_of(list(indexes), bool(shared)), int(priority),
                            "{}", serial)
            tickets[job] = ticket
            result = locks.acquire(ticket, host="h", pid=1, park_message=job, queue_key=QUEUE)
            if isinstance(result, Acquired):
                running.append(job)
            else:
                assert isinstance(result, Blocked) and result.position >= 1
        elif op[0] == "release" and running:
            job = running.pop(int(op[1]) % len(running))
            assert locks.release(job, job) >= 1
        elif op[0] == "start_granted":
            raw = lock_redis.rpop(QUEUE)
            if raw is not None:
                job = raw.decode()
                assert isinstance(locks.acquire(tickets[job], host="h", pid=1), Acquired)
                running.append(job)
        elif op[0] == "cancel":
            parked = sorted(k.decode().split(":", 2)[2]
                            for k in lock_redis.keys("{pipeline}:park:*"))
            if parked:
                assert locks.cancel_parked(parked[int(op[1]) % len(parked)], "test")
        check(lock_redis)

    # Drain: start every grant and release every holder until nothing is left.
    for _ in range(500):
        raw = lock_redis.rpop(QUEUE)
        if raw is not None:
            job = raw.decode()
            assert isinstance(locks.acquire(tickets[job], host="h", pid=1), Acquired)
            running.append(job)
        elif running:
            job = running.pop(0)
            locks.release(job, job)
        else:
            break
        check(lock_redis)
    assert not lock_redis.keys("{pipeline}:park:*"), "parked jobs were never handed their locks"
    assert not lock_redis.keys("{pipeline}:res:*"), "locks leaked"
