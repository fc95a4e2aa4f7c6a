"""Retries, dead letters, expiry, cancel, reprioritize, positions and batches, on real workers."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
from celery.exceptions import TaskRevokedError

from pipeline import InvalidJobError, explain, workflow
from pipeline.actions import control, deadletters, maintenance
from pipeline.job.batch import enqueue_many
from pipeline.messages.events import decode
from pipeline.runtime.services import services_for
from tests.integration.locks.support import events_of, queue_length, started_order, wait_for
from tests.tasks.lockprobes import flaky, hold, runs, step

pytestmark = pytest.mark.timeout(180)


def test_job_failing_every_attempt_is_dead_lettered_requeued_and_purged(
        pipeline_app: Any, workers: Callable[..., Any], lock_redis: redis.Redis) -> None:
    workers(concurrency=1)
    job = flaky.apply_async((3, "f"), models=["m"])
    with pytest.raises(RuntimeError):
        job.get(timeout=30)
    assert [r["retries"] for r in runs(lock_redis)] == [0, 1, 2]
    wait_for(lambda: deadletters.list_dead(services_for(pipeline_app)), what="a dead letter")
    [dead] = deadletters.list_dead(services_for(pipeline_app))
    assert (dead.job_id, dead.attempts) == (job.id, 3)
    assert "failed on purpose" in dead.error
    assert "dead_lettered" in events_of(lock_redis, job.id)
    assert not lock_redis.keys("{pipeline}:hold:*")

    assert deadletters.requeue(services_for(pipeline_app), [job.id]) == [job.id]
    wait_for(lambda: len(runs(lock_redis)) == 4, what="the requeued run")
    fresh = pipeline_app.AsyncResult(job.id)  # the first handle cached its failure
    wait_for(lambda: fresh.state == "SUCCESS", what="the requeued job succeeds")
    assert fresh.result == "f"
    assert deadletters.list_dead(services_for(pipeline_app)) == []

    again = flaky.apply_async((9, "g"))
    with pytest.raises(RuntimeError):
        again.get(timeout=30)
    wait_for(lambda: deadletters.list_dead(services_for(pipeline_app)), what="a second dead letter")
    assert deadletters.purge(services_for(pipeline_app)) == 1
    assert deadletters.list_dead(services_for(pipeline_app)) == []


def test_parked_job_expires_after_the_wait_timeout(
        pipeline_app: Any, workers: Callable[..., Any], lock_redis: redis.Redis) -> None:
    workers(concurrency=2, wait_timeout=1.5, lock_lease=3)
    holder = hold.apply_async((3.0, "holder"), models=["m"])
    wait_for(lambda: explain(holder.id, pipeline_app).status == "running", what="holder runs")
    patient = hold.apply_async((0.0, "patient"), models=["m"])
    flow = workflow(step.s(None, 0.0, "w1"), step.s(0.0, "w2"), models=["m"]).apply_async()
    for job_id in (patient.id, flow.parent.id):
        wait_for(lambda j=job_id: "expired" in events_of(lock_redis, j), timeout=15,
                 what="expiry")
    holder.get(timeout=10)
    time.sleep(0.5)
    assert started_order(lock_redis) == ["holder"]
    expired = next(decode(i, f) for i, f in lock_redis.xrange("{pipeline}:events")
               if f[b"j"].decode() == patient.id and f[b"e"] == b"expired")
    assert "model:m" in expired.detail["reason"]
    # The sweep marks them REVOKED, the workflow's later step with its first:
    # get() raises instead of waiting forever.
    maintenance.sweep_once(services_for(pipeline_app))
    assert (patient.state, flow.parent.state, flow.state) == ("REVOKED",) * 3
    with pytest.raises(TaskRevokedError, match="expired"):
        patient.get(timeout=5)
    assert maintenance.sweep_once(services_for(pipeline_app)).jobs_expired == 0


def test_cancel_removes_queued_and_parked_jobs(
        pipeline_app: Any, workers: Callable[..., Any], lock_redis: redis.Redis) -> None:
    workers(concurrency=2)
    holder = hold.apply_async((1.5, "holder"), models=["m"])
    wait_for(lambda: explain(holder.id, pipeline_app).status == "running", what="holder runs")
    parked = [hold.apply_async((0.0, f"p{i}"), models=["m"]) for i in range(3)]
    for job in parked:
        wait_for(lambda j=job: explain(j.id, pipeline_app).status == "parked", what="parked")
    assert control.cancel(services_for(pipeline_app), parked[1].id) == "parked"
    for job in (parked[0], parked[2]):
        job.get(timeout=20)
    time.sleep(0.3)
    assert started_order(lock_redis) == ["holder", "p0", "p2"]
    assert "cancelled" in events_of(lock_redis, parked[1].id)
    assert parked[1].state == "REVOKED"
    with pytest.raises(TaskRevokedError):
        parked[1].get(timeout=5)


def test_cancel_and_reprioritize_jobs_still_in_the_broker(
        pipeline_app: Any, workers: Callable[..., Any], lock_redis: redis.Redis) -> None:
    jobs = [hold.apply_async((0.0, f"q{i}"), priority="low") for i in range(4)]
    assert [control.position(services_for(pipeline_app), j.id).place for j in jobs] == [1, 2, 3, 4]
    assert control.cancel(services_for(pipeline_app), jobs[1].id) == "queued"
    assert control.reprioritize(services_for(pipeline_app), jobs[3].id, "critical") == "queued"
    assert control.position(services_for(pipeline_app), jobs[3].id) == control.Position(
        "queued", 1, priority=0, queue=pipeline_app.conf.task_default_queue)
    workers(concurrency=1)
    for job in (jobs[0], jobs[2], jobs[3]):
        job.get(timeout=20)
    assert started_order(lock_redis) == ["q3", "q0", "q2"]
    assert "cancelled" in events_of(lock_redis, jobs[1].id)
    with pytest.raises(TaskRevokedError):
        jobs[1].get(timeout=5)


def test_cancelled_first_step_of_a_queued_chain_revokes_the_steps_it_would_publish(
        pipeline_app: Any, lock_redis: redis.Redis) -> None:
    flow = workflow(step.s(None, 0.0, "x1"), step.s(0.0, "x2"), step.s(0.0, "x3")).apply_async()
    assert control.cancel(services_for(pipeline_app), flow.parent.parent.id) == "queued"
    with pytest.raises(TaskRevokedError):
        flow.get(timeout=5)
    assert flow.parent.state == "REVOKED"


def test_reprioritized_parked_job_moves_ahead(
        pipeline_app: Any, workers: Callable[..., Any], lock_redis: redis.Redis) -> None:
    workers(concurrency=2)
    holder = hold.apply_async((1.0, "holder"), models=["m"])
    wait_for(lambda: explain(holder.id, pipeline_app).status == "running", what="holder runs")
    first = hold.apply_async((0.0, "first"), models=["m"])
    wait_for(lambda: explain(first.id, pipeline_app).status == "parked", what="first parked")
    second = hold.apply_async((0.0, "second"), models=["m"])
    wait_for(lambda: explain(second.id, pipeline_app).status == "parked", what="second parked")
    assert control.position(services_for(pipeline_app), second.id).place == 2
    assert control.reprioritize(services_for(pipeline_app), second.id, "critical") == "parked"
    assert control.position(services_for(pipeline_app), second.id).place == 1
    first.get(timeout=20)
    second.get(timeout=20)
    assert started_order(lock_redis) == ["holder", "second", "first"]


def test_cancel_running_job_with_terminate_frees_its_locks(
        pipeline_app: Any, workers: Callable[..., Any], lock_redis: redis.Redis) -> None:
    workers(concurrency=2)
    victim = hold.apply_async((30.0, "victim"), models=["m"])
    wait_for(lambda: explain(victim.id, pipeline_app).status == "running", what="victim runs")
    waiter = hold.apply_async((0.0, "waiter"), models=["m"])
    wait_for(lambda: explain(waiter.id, pipeline_app).status == "parked", what="waiter parked")
    assert control.cancel(services_for(pipeline_app), victim.id, terminate=True) == "running"
    waiter.get(timeout=20)
    assert started_order(lock_redis) == ["waiter"]


def test_cancelled_workflow_stops_and_frees_its_locks(
        pipeline_app: Any, workers: Callable[..., Any], lock_redis: redis.Redis) -> None:
    workers(concurrency=2, workflow_gap=60)
    flow = workflow(step.s(None, 0.8, "c1"), step.s(0.8, "c2"), step.s(0.8, "c3"),
                    models=["m"]).apply_async()
    workflow_id = flow.parent.parent.id
    wait_for(lambda: explain(workflow_id, pipeline_app).status == "running", what="c1 runs")
    waiter = hold.apply_async((0.0, "waiter"), models=["m"])
    assert control.cancel(services_for(pipeline_app), workflow_id) == "running"
    waiter.get(timeout=30)
    time.sleep(1.0)
    assert started_order(lock_redis) == ["c1", "waiter"]
    with pytest.raises(TaskRevokedError):
        flow.get(timeout=10)  # the steps dropped when they arrived


def test_batch_with_one_bad_item_publishes_nothing_and_names_it(
        pipeline_app: Any, lock_redis: redis.Redis) -> None:
    items = [hold.s(0.0, f"b{i}").set(priority="normal") for i in range(1000)]
    items[617] = hold.s(0.0, "bad").set(priority="urgent!")
    with pytest.raises(InvalidJobError, match=r"item 617.*urgent!"):
        enqueue_many(pipeline_app, items)
    items[617] = hold.s(object(), "bad")
    with pytest.raises(InvalidJobError, match=r"item 617.*JSON"):
        enqueue_many(pipeline_app, items)
    assert queue_length(lock_redis) == 0
    items[617] = hold.s(0.0, "good")
    results = enqueue_many(pipeline_app, items)
    assert len(results) == 1000 and queue_length(lock_redis) == 1000


def test_guest_failing_every_attempt_is_dead_lettered_without_its_tie_to_the_parent(
        pipeline_app: Any, workers: Callable[..., Any], lock_redis: redis.Redis) -> None:
    from tests.tasks.lockprobes import spawn_until_dead

    workers(concurrency=3)
    parent = spawn_until_dead.apply_async((["m"],), models=["m"])
    child_id = parent.get(timeout=40)
    [dead] = deadletters.list_dead(services_for(pipeline_app))
    assert (dead.job_id, dead.attempts) == (child_id, 3)
    stored = json.loads(lock_redis.hget(f"{{pipeline}}:dlq:{child_id}", "msg") or b"")
    header = stored["headers"]["pipeline"]
    assert "workflow" not in header, "a requeued guest would look for its parent"
    assert header["models"] == ["m"]
