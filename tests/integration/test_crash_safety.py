"""Crash safety in the job's path, each fix on its own: a redelivered finished job, an outage
during a lock call, a lease that ran out while the process stood still, the sweep's rescue."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import redis
from celery.exceptions import Reject

from pipeline import conf
from pipeline.job import outage, starting
from pipeline.keys import Keys
from pipeline.locks.engine import RedisLockEngine
from pipeline.locks.heartbeat import Heartbeat
from pipeline.locks.resources import EXCLUSIVE, Claim
from pipeline.locks.ticket import Acquired, Ticket
from pipeline.runtime.services import services_for
from tests.faults.redisserver import PrivateRedis
from tests.integration.test_serialization import queued_messages

ORDER_KEY = "probe:crash-safety"
NORMAL_LIST = "{pipeline}:pipeline\x06\x166"
CLAIMS = (Claim("model:m", EXCLUSIVE, 1),)


def test_a_redelivered_copy_of_a_finished_job_is_dropped_not_run_again(
        app: Any, redis_client: redis.Redis,
        start_worker: Callable[..., AbstractContextManager[Any]]) -> None:
    from tests.tasks.probes import record

    result = record.apply_async((ORDER_KEY, "once"))
    raw = redis_client.lindex(NORMAL_LIST, 0)
    assert raw is not None
    with start_worker():
        assert result.get(timeout=30) == "once"
        # What kombu's restore puts back when a worker died (or lost its
        # connection) after the job ended but before its acknowledgement.
        copy = json.loads(raw)
        copy["headers"]["redelivered"] = True
        copy["properties"]["delivery_info"]["redelivered"] = True
        redis_client.lpush(NORMAL_LIST, json.dumps(copy))
        deadline = time.monotonic() + 10
        while (queued_messages(redis_client) or redis_client.hlen("{pipeline}:unacked")) \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
    assert redis_client.lrange(ORDER_KEY, 0, -1) == [b"once"]
    assert queued_messages(redis_client) == 0


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A Redis of this test alone, to stop and start."""
    with PrivateRedis(tmp_path / "redis") as server:
        yield server


def _locks(server: PrivateRedis, **settings: Any) -> RedisLockEngine:
    values = conf.read({f"pipeline_{k}": v for k, v in settings.items()})
    return RedisLockEngine(redis.Redis.from_url(server.url), Keys(values.redis_prefix), values)


def test_a_lock_call_rides_out_a_short_redis_restart(private_redis: PrivateRedis) -> None:
    locks = _locks(private_redis)
    request = SimpleNamespace(id="job-1", is_eager=False)
    private_redis.stop()
    restarter = threading.Timer(1.0, private_redis.start)
    restarter.start()
    try:
        result = starting.through_outage(request, lambda: locks.acquire(
            Ticket("job-1", "job-1", CLAIMS, 6), host="h", pid=1))
    finally:
        restarter.join()
    assert isinstance(result, Acquired)
    assert locks.explain("job-1").status == "running"


def test_a_lock_call_past_a_long_outage_requeues_the_job_instead_of_failing_it(
        private_redis: PrivateRedis, monkeypatch: pytest.MonkeyPatch) -> None:
    locks = _locks(private_redis)
    monkeypatch.setattr(outage, "BACKOFF", (0.1, 0.1))
    private_redis.stop()
    request = SimpleNamespace(id="job-2", is_eager=False)
    with pytest.raises(Reject) as refused:
        starting.through_outage(request, lambda: locks.acquire(
            Ticket("job-2", "job-2", CLAIMS, 6), host="h", pid=1))
    assert refused.value.requeue is True
    assert "requeued" in str(refused.value.reason)


def test_a_process_that_stood_still_past_its_lease_knows_it_lost_it_before_any_renewal(
        private_redis: PrivateRedis) -> None:
    locks = _locks(private_redis, lock_lease=1.0)
    assert isinstance(locks.acquire(Ticket("job-3", "job-3", CLAIMS, 6), host="h", pid=1),
                      Acquired)
    heartbeat = Heartbeat(locks, interval=60.0, lease=1.0)  # no renewal in the test's time
    heartbeat.track("job-3")
    assert not heartbeat.is_lost("job-3")
    time.sleep(1.2)  # as a process stopped by SIGSTOP would
    assert heartbeat.is_lost("job-3")
    heartbeat.stop()


def test_a_renewed_lease_is_not_lost(private_redis: PrivateRedis) -> None:
    locks = _locks(private_redis, lock_lease=1.0)
    locks.acquire(Ticket("job-4", "job-4", CLAIMS, 6), host="h", pid=1)
    heartbeat = Heartbeat(locks, interval=60.0, lease=1.0)
    heartbeat.track("job-4")
    for _ in range(4):
        time.sleep(0.4)
        assert heartbeat.beat() == []
    assert not heartbeat.is_lost("job-4")
    heartbeat.stop()


def test_the_sweep_gives_back_the_jobs_of_a_worker_that_died(
        app: Any, redis_client: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    import signal

    from pipeline.actions.maintenance import sweep_once
    from tests.faults.probes import work
    from tests.helpers.workers import SubprocessWorker

    env = {"PIPELINE_VISIBILITY_TIMEOUT": "3", "PIPELINE_LOCK_LEASE": "1",
           "PIPELINE_STORE_ENABLED": "false"}
    options = dict(app.conf.broker_transport_options)
    app.conf.broker_transport_options = {**options, "visibility_timeout": 3}
    try:
        with SubprocessWorker(redis_url, tmp_path, concurrency=1,
                              include=("tests.faults.probes",), env=env) as worker:
            job = work.apply_async((30.0, "long"))
            deadline = time.monotonic() + 20
            while not redis_client.hlen("{pipeline}:unacked"):
                assert time.monotonic() < deadline, worker.log()
                time.sleep(0.05)
            time.sleep(1.0)  # its worker renews the message meanwhile
            worker.signal_group(signal.SIGKILL)
            assert sweep_once(services_for(app)).jobs_rescued == 0, (
                "rescued before the visibility timeout")
        time.sleep(3.5)
        report = sweep_once(services_for(app))
    finally:
        app.conf.broker_transport_options = options
    assert report.jobs_rescued == 1
    assert redis_client.hlen("{pipeline}:unacked") == 0
    back = [json.loads(m) for m in redis_client.lrange(NORMAL_LIST, 0, -1)]
    assert [m["headers"]["id"] for m in back] == [job.id]


def test_a_worker_killed_as_it_takes_a_message_loses_no_job(
        app: Any, redis_client: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    """kombu pops a message, then records it as taken: a kill in between lost the job."""
    from tests.helpers.workers import SubprocessWorker
    from tests.tasks.probes import record

    env = {"PIPELINE_VISIBILITY_TIMEOUT": "2"}
    victim = SubprocessWorker(redis_url, tmp_path, name="victim", pool="solo", env=env,
                              include=("tests.tasks.probes", "tests.helpers.dies_on_take"))
    with victim:
        result = record.apply_async((ORDER_KEY, "taken"))
        assert victim.process is not None
        victim.process.wait(30)  # it killed itself as the message reached it
    assert victim.process.returncode == -9, victim.log()
    assert queued_messages(redis_client) == 0  # taken off its list
    with SubprocessWorker(redis_url, tmp_path, name="survivor", pool="solo", env=env):
        assert result.get(timeout=30) == "taken"
    assert redis_client.lrange(ORDER_KEY, 0, -1) == [b"taken"]
