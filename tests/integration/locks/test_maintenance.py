"""The beat sweep hands on what dead holders held, with no worker running."""

from __future__ import annotations

import time
from typing import Any

import redis

from pipeline.actions.maintenance import SWEEP
from pipeline.locks.resources import EXCLUSIVE, Claim
from pipeline.locks.ticket import Ticket
from pipeline.runtime.services import services_for


def test_beat_sweep_hands_a_dead_holders_model_to_the_parked_job(
        pipeline_app: Any, lock_redis: redis.Redis) -> None:
    pipeline_app.conf.pipeline_lock_lease = 1.0
    try:
        locks = services_for(pipeline_app).locks
        claims = (Claim("model:m", EXCLUSIVE, 1),)
        locks.acquire(Ticket("dead", "dead", claims, 6), host="h", pid=1)
        locks.acquire(Ticket("waiting", "waiting", claims, 6), host="h", pid=1,
                      park_message="msg", queue_key="{pipeline}:pipeline")
        time.sleep(1.1)
        outcome = pipeline_app.tasks[SWEEP].apply().get()
        assert outcome == {"holds_dropped": 1, "jobs_expired": 0, "lines_served": 0,
                           "jobs_rescued": 0, "leases_expired": 0}
        assert locks.explain("waiting").status == "granted"
        assert "pipeline.sweep" in pipeline_app.conf.beat_schedule
    finally:
        pipeline_app.conf.changes.pop("pipeline_lock_lease", None)


def _maintenance_events(client: redis.Redis) -> list[dict[str, Any]]:
    from pipeline.messages.events import MAINTENANCE, decode

    found = [decode(i, f) for i, f in client.xrange("{pipeline}:events")]
    return [e.detail for e in found if e.type == MAINTENANCE]


def test_sweep_records_what_it_did_and_an_idle_sweep_records_nothing(
        pipeline_app: Any, lock_redis: redis.Redis) -> None:
    from pipeline.actions.maintenance import SweepReport, sweep_once

    pipeline_app.conf.pipeline_lock_lease = 1.0
    pipeline_app.conf.pipeline_wait_timeout = 1.0
    try:
        locks = services_for(pipeline_app).locks
        claims = (Claim("model:m", EXCLUSIVE, 1),)
        locks.acquire(Ticket("dead", "dead", claims, 6), host="h", pid=1)
        locks.acquire(Ticket("waiting", "waiting", (Claim("model:n", EXCLUSIVE, 1),), 6),
                      host="h", pid=1)
        locks.acquire(Ticket("parked", "parked", (Claim("model:n", EXCLUSIVE, 1),), 6),
                      host="h", pid=1, park_message="msg", queue_key="{pipeline}:pipeline")
        locks.renew(["waiting"])
        assert sweep_once(services_for(pipeline_app)) == SweepReport()
        assert _maintenance_events(lock_redis) == []        # idle: nothing written
        for _ in range(2):                                  # "waiting" stays alive
            time.sleep(0.55)
            locks.renew(["waiting"])
        report = sweep_once(services_for(pipeline_app))
        assert report == SweepReport(holds_dropped=1, jobs_expired=1)
        assert _maintenance_events(lock_redis) == [{
            "action": "sweep", "count": 2, "holds_dropped": 1, "jobs_expired": 1,
            "lines_served": 0, "jobs_rescued": 0, "leases_expired": 0}]
        assert sweep_once(services_for(pipeline_app)) == SweepReport()
        assert len(_maintenance_events(lock_redis)) == 1
    finally:
        pipeline_app.conf.changes.pop("pipeline_lock_lease", None)
        pipeline_app.conf.changes.pop("pipeline_wait_timeout", None)


def test_sweep_counts_the_lines_left_for_later_that_it_served(
        make_locks: Any, lock_redis: redis.Redis) -> None:
    locks = make_locks()
    claims = (Claim("model:m", EXCLUSIVE, 1),)
    locks.acquire(Ticket("H", "H", claims, 6), host="h", pid=1)
    locks.acquire(Ticket("parked", "parked", claims, 6), host="h", pid=1,
                  park_message="m", queue_key="{pipeline}:q")
    # H's entry dropped without serving the line, which a hand-off that ran out of
    # budget left in the rewake set.
    lock_redis.zrem("{pipeline}:res:model:m:w", "H")
    lock_redis.sadd("{pipeline}:rewake", "model:m", "model:idle")
    assert locks.sweep_counts() == (0, 0, 2)
    assert locks.explain("parked").status == "granted"
    assert locks.sweep_counts() == (0, 0, 0)


def test_the_beat_sweep_gives_back_a_silent_agents_job_and_says_so(
        pipeline_app: Any, lock_redis: redis.Redis) -> None:
    from pipeline.actions.maintenance import sweep_once
    from pipeline.job.pools import pool_lists
    from tests.tasks.lockprobes import hold

    pipeline_app.conf.pipeline_lock_lease = 1.0
    try:
        services = services_for(pipeline_app)
        job = hold.apply_async((0.0, "j"), agent_pool="p", models=["m"])
        claimed = services.leases.claim("p", "pool.p", pool_lists(pipeline_app, "p"), "mute",
                                        default_priority=6)
        assert claimed.granted is not None and claimed.granted.job_id == job.id
        time.sleep(1.1)
        report = sweep_once(services)
        assert report.leases_expired == 1 and report.holds_dropped == 0
        assert _maintenance_events(lock_redis)[-1]["leases_expired"] == 1
        # Back in its list, where the next claim takes it first (kombu pops the right end).
        normal = pool_lists(pipeline_app, "p")[2]
        assert job.id in (lock_redis.lindex(normal, -1) or b"").decode()
    finally:
        pipeline_app.conf.changes.pop("pipeline_lock_lease", None)
