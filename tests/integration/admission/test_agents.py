"""Agent records in the real Redis: listed while fresh, gone after their timeout."""

from __future__ import annotations

import time
from typing import Any

import redis

from pipeline.admission import gate_state, list_agents
from pipeline.admission.agents import AgentStatus, publish, withdraw
from pipeline.admission.gate import ALL_PAUSED
from pipeline.admission.load import LoadReading
from pipeline.runtime.services import services_for


def status(name: str, *, accepting: bool = True, cpu: float = 0.2) -> AgentStatus:
    return AgentStatus.measured(name, "host", 1, 2, 0, 0, LoadReading(cpu, 0.3, 0.0),
                                accepting=accepting, queues=("pipeline",))


def test_agent_that_stops_publishing_leaves_the_list_after_its_timeout(
        app: Any, redis_client: redis.Redis) -> None:
    services = services_for(app)
    publish(services.redis, services.keys, status("celery@quiet"), timeout=0.6)
    publish(services.redis, services.keys, status("celery@busy"), timeout=30)
    assert [a.name for a in list_agents(services_for(app))] == ["celery@busy", "celery@quiet"]
    time.sleep(0.8)
    assert [a.name for a in list_agents(services_for(app))] == ["celery@busy"]


def test_agent_key_lives_under_the_pipeline_hash_tag(app: Any, redis_client: redis.Redis) -> None:
    services = services_for(app)
    publish(services.redis, services.keys, status("celery@a"), timeout=5)
    keys = sorted(k.decode() for k in redis_client.keys("*agent*"))
    assert keys == ["{pipeline}:agent:celery@a", "{pipeline}:agents"]
    assert 0 < redis_client.pttl("{pipeline}:agent:celery@a") <= 5000


def test_withdrawn_agent_is_gone_at_once(app: Any, redis_client: redis.Redis) -> None:
    services = services_for(app)
    publish(services.redis, services.keys, status("celery@a"), timeout=30)
    withdraw(services.redis, services.keys, "celery@a")
    assert list_agents(services_for(app)) == []


def test_gate_state_says_a_queued_job_waits_only_when_every_worker_paused(
        app: Any, redis_client: redis.Redis) -> None:
    services = services_for(app)
    # no agents: nothing known
    assert gate_state(services_for(app)).waiting_reason is None
    publish(services.redis, services.keys, status("celery@a", accepting=False), timeout=30)
    publish(services.redis, services.keys, status("celery@b"), timeout=30)
    assert gate_state(services_for(app)).paused == ("celery@a",)
    assert gate_state(services_for(app)).waiting_reason is None
    publish(services.redis, services.keys, status("celery@b", accepting=False), timeout=30)
    assert gate_state(services_for(app)).all_paused
    assert gate_state(services_for(app)).waiting_reason == ALL_PAUSED == (
        "waiting: every worker is over its load limit")
