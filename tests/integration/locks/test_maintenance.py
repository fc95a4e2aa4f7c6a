"""The beat sweep hands on what dead holders held, with no worker running."""

from __future__ import annotations

import time
from typing import Any

import redis

from pipeline.engine import engine_for
from pipeline.locks.base import Ticket
from pipeline.maintenance import SWEEP
from pipeline.resources import EXCLUSIVE, Claim


def test_beat_sweep_hands_a_dead_holders_model_to_the_parked_job(
        pipeline_app: Any, lock_redis: redis.Redis) -> None:
    pipeline_app.conf.pipeline_lock_lease = 1.0
    try:
        locks = engine_for(pipeline_app).locks
        claims = (Claim("model:m", EXCLUSIVE, 1),)
        locks.acquire(Ticket("dead", "dead", claims, 6), host="h", pid=1)
        locks.acquire(Ticket("waiting", "waiting", claims, 6), host="h", pid=1,
                      park_message="msg", queue_key="{pipeline}:pipeline")
        time.sleep(1.1)
        outcome = pipeline_app.tasks[SWEEP].apply().get()
        assert outcome == {"holds_dropped": 1, "jobs_expired": 0}
        assert locks.explain("waiting").status == "granted"
        assert "pipeline.sweep" in pipeline_app.conf.beat_schedule
    finally:
        pipeline_app.conf.changes.pop("pipeline_lock_lease", None)
