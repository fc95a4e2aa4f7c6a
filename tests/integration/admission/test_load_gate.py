"""The load gate under a real worker and a real CPU burner.

The limits are set low on purpose (CPU 0.6 of all cores, smoothed over one
second) so that burning every core crosses them whatever else the machine does.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import redis

from pipeline.admission import ALL_PAUSED, gate_state, list_agents
from pipeline.messages.events import MAINTENANCE, decode
from pipeline.runtime.services import services_for
from tests.integration.admission.conftest import cpu_burner
from tests.integration.locks.support import queue_length, wait_for
from tests.tasks.lockprobes import hold, runs

pytestmark = pytest.mark.timeout(180)

GATE = {"load_gate": True, "load_max_cpu": 0.6, "load_max_memory": 99, "load_smoothing": 1.0,
        "agent_heartbeat": 0.5, "agent_timeout": 5}


def accepting(app: Any) -> bool | None:
    agents = list_agents(services_for(app))
    return agents[0].accepting if agents else None


def gate_events(client: redis.Redis) -> list[dict[str, Any]]:
    found = [decode(i, f) for i, f in client.xrange("{pipeline}:events")]
    return [e.detail for e in found if e.type == MAINTENANCE]


def test_worker_over_its_cpu_limit_stops_taking_jobs_and_resumes_below_it_losing_none(
        pipeline_app: Any, start_workers: Callable[..., Any], lock_redis: redis.Redis) -> None:
    worker = start_workers(concurrency=2, **GATE)
    wait_for(lambda: accepting(pipeline_app) is True, timeout=20, what="worker accepting")
    before = [hold.apply_async((0.05, f"before{i}")) for i in range(4)]
    for job in before:
        job.get(timeout=20)
    long_job = hold.apply_async((5.0, "long"))
    wait_for(lambda: any(a.running for a in list_agents(services_for(pipeline_app))), timeout=10,
             what="long job running")

    with cpu_burner():
        burning = time.monotonic()
        wait_for(lambda: accepting(pipeline_app) is False, timeout=15, what="worker paused")
        assert time.monotonic() - burning < 10, "the gate took too long to close"
        assert gate_state(services_for(pipeline_app)).waiting_reason == ALL_PAUSED
        during = [hold.apply_async((0.05, f"during{i}")) for i in range(10)]
        time.sleep(2.0)
        tags = {r["tag"] for r in runs(lock_redis)}
        assert not any(t.startswith("during") for t in tags), "a paused worker took a job"
        assert queue_length(lock_redis) == 10, "jobs published while paused left the queue"

    wait_for(lambda: accepting(pipeline_app) is True, timeout=60, what="worker resumed")
    for job in during:
        job.get(timeout=30)
    long_job.get(timeout=30)
    time.sleep(0.5)
    counts = Counter(r["id"] for r in runs(lock_redis))
    expected = {j.id for j in [*before, long_job, *during]}
    assert set(counts) == expected, "a job was lost"
    assert set(counts.values()) == {1}, "a job ran twice"

    actions = [(e["action"], e["worker"]) for e in gate_events(lock_redis)]
    name = list_agents(services_for(pipeline_app))[0].name
    assert actions[:2] == [("gate_pause", name), ("gate_resume", name)]
    assert "CPU" in gate_events(lock_redis)[0]["reason"]
    log = worker.log()
    assert "stops taking new jobs" in log and "takes new jobs again" in log


def test_running_job_is_not_touched_by_a_pause(
        pipeline_app: Any, start_workers: Callable[..., Any], lock_redis: redis.Redis) -> None:
    start_workers(concurrency=1, **GATE)
    wait_for(lambda: accepting(pipeline_app) is True, timeout=20, what="worker accepting")
    long_job = hold.apply_async((4.0, "long"))
    wait_for(lambda: any(a.running for a in list_agents(services_for(pipeline_app))), timeout=10,
             what="long job running")
    with cpu_burner():
        wait_for(lambda: accepting(pipeline_app) is False, timeout=15, what="worker paused")
        paused_at = time.time()
        result = long_job.get(timeout=30)
    assert result["end"] > paused_at, "the job should have gone on running through the pause"
    assert [r["tag"] for r in runs(lock_redis)] == ["long"]
