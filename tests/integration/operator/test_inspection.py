"""The read-only operator views (pipeline.observe.inspection) on the real Redis."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from pipeline.admission.agents import AgentStatus, publish
from pipeline.admission.load import LoadReading
from pipeline.locks.ticket import Acquired, Blocked
from pipeline.observe import inspection
from pipeline.runtime.services import services_for
from tests.integration.locks.support import wait_for
from tests.integration.operator.support import lock, model, reads, user
from tests.tasks.probes import record


def test_queue_depth_counts_the_messages_of_each_level(app: Any) -> None:
    for level in ("high", "high", "low", "critical"):
        record.apply_async(("probe:depth", level), priority=level)
    assert inspection.queue_depth(services_for(app)) == {
        "critical": 1, "high": 2, "normal": 0, "low": 1}


def test_running_jobs_and_locks_list_every_live_hold(app: Any) -> None:
    assert isinstance(lock(app, "j1", user("alice"), model("bert")), Acquired)
    assert isinstance(lock(app, "j2", reads("gpt")), Acquired)

    running = {r.job_id: r for r in inspection.running_jobs(services_for(app))}
    assert set(running) == {"j1", "j2"}
    assert running["j1"].resources == ("model:bert", "user:alice")
    assert running["j1"].state == "running" and running["j1"].host == "testhost"
    assert running["j1"].pid == "4242" and running["j1"].token > 0
    assert not running["j1"].lease_expired

    held = [(h.resource, h.kind, h.name, h.mode, h.job_id)
            for h in inspection.locks(services_for(app))]
    assert held == [("model:bert", "model", "bert", "exclusive", "j1"),
                    ("model:gpt", "model", "gpt", "shared", "j2"),
                    ("user:alice", "user", "alice", "exclusive", "j1")]
    assert inspection.locks(services_for(app))[0].as_dict()["mode"] == "exclusive"


def test_parked_jobs_say_what_they_wait_for_and_their_place(app: Any) -> None:
    lock(app, "holder", model("bert"))
    assert isinstance(lock(app, "second", model("bert"), submitted_ms=2), Blocked)
    assert isinstance(lock(app, "first", model("bert"), priority=3, submitted_ms=5), Blocked)

    parked = {p.job_id: p for p in inspection.parked_jobs(services_for(app))}
    assert parked["first"].position == 1 and parked["second"].position == 2
    assert parked["first"].priority == "high" and parked["second"].priority == "normal"
    assert parked["second"].waiting_for == "model:bert"
    assert parked["second"].blocked_by == "holder"
    assert "waiting for model:bert" in parked["second"].reason
    assert [p.job_id for p in inspection.parked_jobs(services_for(app), limit=1)] == ["second"]


def test_status_sums_up_the_system(app: Any) -> None:
    lock(app, "run-a", user("alice"), model("bert"))
    lock(app, "run-b", user("bob"), reads("gpt"))
    lock(app, "park-1", user("alice"), priority=0)
    lock(app, "park-2", model("bert"), priority=9)
    record.apply_async(("probe:status", "x"), priority="low")
    services = services_for(app)
    services.redis.zadd(services.keys.dead_letters, {"dead-1": 1.0})

    found = inspection.status(services_for(app), with_workers=False)

    assert found.depth == {"critical": 0, "high": 0, "normal": 0, "low": 1}
    assert (found.running, found.granted, found.between) == (2, 0, 0)
    assert found.parked == 2
    assert found.parked_by_priority == {"critical": 1, "high": 0, "normal": 0, "low": 1}
    assert found.parked_by_kind == {"model": 1, "user": 1}
    assert found.locks_by_user == {"alice": 1, "bob": 1}
    assert found.locks_by_model == {"bert": 1, "gpt": 1}
    assert found.dead_letters == 1
    assert found.capacities == {"user": 1, "project": 2, "model": 1, "global": 5}
    assert found.utilisation == pytest.approx(2 / 5) and found.level == "MODERATE"
    assert found.workers is None
    data = found.as_dict()
    assert data["queued"] == 1 and data["parked_by_kind"] == {"model": 1, "user": 1}


class CommandCounter:
    """Counts the Redis commands a client sends (a pipeline's commands one by one)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        single, batch = redis.Redis.execute_command, redis.client.Pipeline.execute

        def counted_single(client: Any, *args: Any, **kwargs: Any) -> Any:
            if not isinstance(client, redis.client.Pipeline):
                self.count += 1
            return single(client, *args, **kwargs)

        def counted_batch(pipe: Any, *args: Any, **kwargs: Any) -> Any:
            self.count += len(pipe.command_stack)
            return batch(pipe, *args, **kwargs)

        monkeypatch.setattr(redis.Redis, "execute_command", counted_single)
        monkeypatch.setattr(redis.client.Pipeline, "execute", counted_batch)


@pytest.mark.parametrize("parked", [3, 300])
def test_status_reads_the_same_whatever_the_number_parked(
        app: Any, parked: int, monkeypatch: pytest.MonkeyPatch) -> None:
    lock(app, "holder", model("bert"))
    for n in range(parked):
        lock(app, f"p{n}", model("bert"), submitted_ms=n + 1)
    inspection.status(services_for(app), with_workers=False)  # scripts loaded, clients connected
    counter = CommandCounter(monkeypatch)

    found = inspection.status(services_for(app), with_workers=False)

    assert found.parked == parked
    # Four list lengths, the holds index, one record per hold, three counters.
    assert counter.count <= 10, counter.count


def test_workers_are_read_from_their_load_records(app: Any) -> None:
    services = services_for(app)
    reading = LoadReading(cpu=0.5, memory=0.5, queue_depth=1.0)
    for name, accepting in (("w1@host", True), ("w2@host", False)):
        publish(services.redis, services.keys, AgentStatus.measured(
            name, "host", 1, 2, 1, 2, reading, accepting=accepting,
            pause_reason="" if accepting else "cpu 95% over 80%"), timeout=30)
    seen = inspection.workers(services_for(app))
    assert [(w.name, w.source, w.level, w.accepting) for w in seen] == [
        ("w1@host", "agent", "HIGH", True), ("w2@host", "agent", "HIGH", False)]
    assert seen[0].score == pytest.approx(0.625) and seen[1].pause_reason.startswith("cpu")


def test_workers_without_load_records_are_found_by_a_ping(app: Any, start_worker: Any) -> None:
    with start_worker(perform_ping_check=False):
        # A worker busy starting (or a loaded machine) may answer a ping late.
        seen = wait_for(lambda: inspection.workers(services_for(app), timeout=1.0), timeout=20,
                        what="the worker to answer a ping")
    assert len(seen) == 1 and seen[0].source == "ping" and "@" in seen[0].name


def test_load_levels_are_the_agents_levels() -> None:
    levels = [inspection.load_level(u) for u in (None, 0.0, 0.39, 0.4, 0.59, 0.6, 0.79, 0.8, 1)]
    assert levels == ["LOW", "LOW", "LOW", "MODERATE", "MODERATE", "HIGH", "HIGH",
                      "CRITICAL", "CRITICAL"]
