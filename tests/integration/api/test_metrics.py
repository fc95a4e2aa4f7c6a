"""``/metrics`` parsed with prometheus-client's parser: its numbers match Redis and the store."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import psutil
import redis
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from pipeline import explain
from pipeline.api.app import create_app
from pipeline.locks.resources import KINDS, Demand, claims
from pipeline.locks.ticket import Acquired, Blocked, Duplicate, Ticket
from pipeline.messages.events import EVENT_TYPES, MAINTENANCE_ACTIONS, OPERATOR_ACTIONS
from pipeline.observe.metrics import Metrics
from pipeline.runtime.net import HOST
from pipeline.runtime.services import services_for
from pipeline.store.models import QueueLog
from pipeline.store.session import session_scope
from tests.integration.api.conftest import (
    ADMIN,
    READ,
    TOKENS,
    hold_job,
    new_user,
    wait_for,
)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: TestClient) -> Samples:
    """Every sample of ``/metrics``, keyed by name and labels."""
    response = client.get("/metrics", headers=READ)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(response.text)
            for s in family.samples}


def value(samples: Samples, metric: str, /, **labels: str) -> float:
    """The sum of *metric* over the samples carrying *labels*."""
    wanted = set(labels.items())
    return sum(v for (n, found), v in samples.items() if n == metric and wanted <= found)


def store_count(url: str, event: str, job_ids: list[str]) -> int:
    with session_scope(url) as session:
        return int(session.scalar(select(func.count()).select_from(QueueLog).where(
            QueueLog.event == event, QueueLog.job_id.in_(job_ids))) or 0)


def test_metrics_match_redis_and_the_store(client: TestClient, workers: Any, app: Any,
                                           store: str, record: Callable[[], None]) -> None:
    time.sleep(0.3)  # the event reader starts at the stream's end
    user = new_user()
    first = client.post("/api/jobs", json=hold_job(1.5, user), headers=ADMIN).json()["id"]
    wait_for(lambda: explain(first, app).status == "running", what="the first job to run")
    second = client.post("/api/jobs", json=hold_job(0.0, user), headers=ADMIN).json()["id"]
    wait_for(lambda: explain(second, app).status == "parked", what="the second job to park")
    flaky = client.post("/api/jobs", json={"task": "lockprobes.flaky", "args": [100]},
                        headers=ADMIN).json()["id"]

    parked = scrape(client)
    counts = services_for(app).lock_reads.parked_counts()
    assert value(parked, "pipeline_parked_jobs", priority="normal") == counts[6] == 1
    assert value(parked, "pipeline_parked_jobs_by_kind", resource_kind="user") == 1
    assert value(parked, "pipeline_locks_held", kind="user") >= 1
    assert value(parked, "pipeline_parked_oldest_seconds") > 0

    ids = [first, second, flaky]

    def settled() -> bool:
        record()
        return store_count(store, "completed", ids) == 2 and \
            store_count(store, "dead_lettered", ids) == 1

    wait_for(settled, timeout=30, what="both holds completed and the flaky job dead-lettered")

    def counted() -> Samples | None:
        samples = scrape(client)
        done = value(samples, "celery_task_succeeded_total", name="lockprobes.hold") == 2
        return samples if done and value(samples, "celery_task_failed_total") == 1 else None

    samples = wait_for(counted, what="the metrics to count every event")
    # three published, and the flaky job's two retries published again
    assert value(samples, "celery_task_sent_total") == store_count(store, "queued", ids) == 5
    assert value(samples, "celery_task_started_total") == store_count(store, "started", ids)
    assert value(samples, "celery_task_retried_total", name="lockprobes.flaky") == \
        store_count(store, "retried", ids) == 2
    assert value(samples, "celery_task_failed_total", name="lockprobes.flaky",
                 exception="RuntimeError") == 1
    assert value(samples, "celery_task_received_total") == \
        store_count(store, "started", ids) + store_count(store, "blocked", ids)
    assert value(samples, "celery_task_runtime_count", name="lockprobes.hold") == 2
    assert value(samples, "pipeline_lock_wait_seconds_count") == 1
    assert value(samples, "pipeline_handoff_latency_seconds_count") == 1
    assert value(samples, "pipeline_dead_letters") == \
        services_for(app).redis.zcard(services_for(app).keys.dead_letters) == 1
    assert value(samples, "pipeline_dead_lettered_total", name="lockprobes.flaky") == 1
    assert value(samples, "pipeline_parked_jobs") == 0
    assert value(samples, "pipeline_metrics_events_missed_total") == 0
    assert value(samples, "celery_queue_length", queue_name="pipeline") == 0
    assert_no_gaps(samples)
    # Nothing is held once the jobs ended: every kind is there, at 0.
    for kind in KINDS:
        assert samples[("pipeline_locks_held", frozenset({("kind", kind)}))] == 0
        assert samples[("pipeline_parked_jobs_by_kind",
                        frozenset({("resource_kind", kind)}))] == 0
    # The same job's events land in one series per task and host, the worker's.
    hosts = {dict(labels)["hostname"] for (name, labels) in samples
             if name == "celery_task_received_total"
             and dict(labels)["name"] == "lockprobes.hold"}
    assert hosts == {HOST}, hosts
    assert value(samples, "celery_task_received_total", name="lockprobes.hold",
                 hostname=HOST) == 3   # two starts and one park


def assert_no_gaps(samples: Samples) -> None:
    """No empty host, no unknown task, and 0 for every label value known in advance."""
    for (name, labels), _ in samples.items():
        found = dict(labels)
        assert found.get("hostname", "-") != "", (name, found)
        assert found.get("name") != "unknown", (name, found)
        assert "" not in {v for k, v in found.items() if k != "exception"}, (name, found)
    for level in ("critical", "high", "normal", "low"):
        assert ("pipeline_parked_jobs", frozenset({("priority", level)})) in samples
        assert ("pipeline_queue_depth",
                frozenset({("priority", level), ("queue_name", "pipeline")})) in samples
    for kind in KINDS:
        assert ("pipeline_locks_held", frozenset({("kind", kind)})) in samples
        assert ("pipeline_jobs_blocked_total", frozenset({("resource_kind", kind)})) in samples
    for event_type in EVENT_TYPES:
        assert ("pipeline_events_total", frozenset({("type", event_type)})) in samples
    for action in OPERATOR_ACTIONS:
        assert ("pipeline_operator_actions_total", frozenset({("action", action)})) in samples
    for action in MAINTENANCE_ACTIONS:
        assert ("pipeline_maintenance_actions_total",
                frozenset({("action", action)})) in samples


def test_metrics_export_zeros_before_any_event(app: Any, store: str) -> None:
    metrics = Metrics(app, worker_refresh=0)
    metrics.events.known_hosts(["worker-1@db-host"])
    samples = {(s.name, frozenset(s.labels.items())): s.value
               for family in text_string_to_metric_families(metrics.render().decode())
               for s in family.samples}
    assert_no_gaps(samples)
    assert value(samples, "pipeline_locks_held") == 0
    labels = {("name", "lockprobes.hold"), ("hostname", "db-host"), ("queue_name", "pipeline")}
    for counter in ("sent", "received", "started", "succeeded", "retried", "rejected",
                    "revoked"):
        assert samples[(f"celery_task_{counter}_total", frozenset(labels))] == 0
    assert samples[("celery_task_failed_total",
                    frozenset(labels | {("exception", "")}))] == 0
    assert samples[("celery_task_runtime_count", frozenset(labels))] == 0
    assert samples[("pipeline_lock_wait_seconds_count",
                    frozenset({("name", "lockprobes.hold")}))] == 0
    assert samples[("pipeline_jobs_expired_total", frozenset({("name", "lockprobes.hold")}))] == 0


def test_a_job_running_before_the_metrics_started_is_named_from_the_store(
        app: Any, store: str, workers: Any, record: Callable[[], None]) -> None:
    from tests.tasks import lockprobes

    job = lockprobes.hold.apply_async(kwargs={"seconds": 1.5}, user=new_user()).id
    wait_for(lambda: explain(job, app).status == "running", what="the job to run")
    record()   # the store knows its task and its worker host
    api = create_app(app, tokens=TOKENS, metrics=Metrics(app, worker_refresh=0))
    with TestClient(api) as late:
        time.sleep(0.3)  # the reader starts at the stream's end: the job's start is behind it

        def counted() -> Samples | None:
            samples = scrape(late)
            return samples if value(samples, "celery_task_succeeded_total") == 1 else None

        samples = wait_for(counted, what="the job's completion to be counted")
    assert value(samples, "celery_task_succeeded_total", name="lockprobes.hold",
                 hostname=HOST) == 1
    assert value(samples, "pipeline_metrics_events_unlabelled_total") == 0
    assert_no_gaps(samples)


def _park(app: Any, count: int) -> None:
    """Park *count* jobs behind a hold on one user (straight through the lock engine)."""
    services = services_for(app)
    needed = claims(Demand(user="crowd"), services.settings)
    taken = services.locks.acquire(Ticket("holder", "holder", needed, 6), host="test",
                                 pid=os.getpid())
    assert isinstance(taken, (Acquired, Duplicate))
    for _ in range(count):
        job = str(uuid.uuid4())
        result = services.locks.acquire(Ticket(job, job, needed, 9), host="test", pid=os.getpid(),
                                      park_message='{"body":"[]"}', queue_key="q")
        assert isinstance(result, Blocked)


def _own_ports(redis_port: int) -> set[int]:
    """The local ports of this process's connections to Redis."""
    return {c.laddr.port for c in psutil.Process().net_connections("tcp")
            if c.raddr and c.raddr.port == redis_port}


def _commands_during(app: Any, action: Callable[[], Any]) -> list[str]:
    """The commands this process sent to the test's Redis database while *action* ran.

    Read with MONITOR; other processes (a worker's load records of another test's
    module-scoped worker) are left out by the client's port.
    """
    url = services_for(app).redis.connection_pool.connection_kwargs
    database = url.get("db", 0)
    monitor_client = redis.Redis(host=url.get("host"), port=url.get("port"), db=database)
    seen: list[tuple[int, str]] = []
    marker = f"end-{uuid.uuid4().hex}"
    ready = threading.Event()

    def watch() -> None:
        with monitor_client.monitor() as monitor:
            ready.set()
            while True:
                command = monitor.next_command()
                if marker in command["command"]:
                    return
                if command.get("db") == database:
                    seen.append((int(command.get("client_port") or 0), command["command"]))

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    ready.wait(5)
    time.sleep(0.2)
    action()
    ours = _own_ports(int(url.get("port") or 6379))
    services_for(app).redis.echo(marker)
    thread.join(10)
    return [command for port, command in seen if port in ours]


def test_a_scrape_reads_a_fixed_number_of_keys_however_many_jobs_are_parked(
        app: Any, store: str) -> None:
    from pipeline.observe.metrics import StateCollector

    collector = StateCollector(services_for(app))
    _park(app, 20)
    list(collector.collect())  # the first scrape opens its connections (SELECT): not counted
    few = _commands_during(app, lambda: list(collector.collect()))
    assert any(command.startswith("LLEN") for command in few), few
    _park(app, 1500)
    assert services_for(app).lock_reads.parked_counts()[9] == 1520
    many = _commands_during(app, lambda: list(collector.collect()))
    parked_reads = [c for c in many if ":park:" in c]
    assert len(parked_reads) <= 2, parked_reads
    assert len(many) == len(few), (few, many)
