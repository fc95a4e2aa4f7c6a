"""Workflows under real workers: one hold for all steps, refused shapes, nesting."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from typing import Any

import pytest
import redis
from celery import chain, chord, group

from pipeline import InvalidJobError, explain, workflow
from pipeline.messages.events import decode
from tests.helpers import redisdb
from tests.integration.locks.support import by_tag, lock_keys, queue_length, started_order, wait_for
from tests.tasks.lockprobes import hold, runs, spawn_and_wait, step

pytestmark = pytest.mark.timeout(180)


def test_job_sharing_a_model_waits_for_the_whole_workflow(
        pipeline_app: Any, workers: Callable[..., Any], lock_redis: redis.Redis) -> None:
    workers(concurrency=3)
    flow = workflow(step.s(None, 0.4, "w1"), step.s(0.4, "w2"), step.s(0.4, "w3"),
                    name="retrain", models=["a", "b"]).apply_async()
    first_id = flow.parent.parent.id
    wait_for(lambda: explain(first_id, pipeline_app).status == "running", what="w1 runs")
    job = hold.apply_async((0.1, "J"), models=["b"])
    other = hold.apply_async((0.1, "C"), models=["c"])
    assert flow.get(timeout=30) == "w1>w2>w3"
    job.get(timeout=30)
    other.get(timeout=30)
    got = by_tag(lock_redis)
    assert got["J"]["start"] >= got["w3"]["end"], "J ran before the workflow's last step ended"
    assert got["C"]["end"] < got["w3"]["end"], "a job on model c did not run meanwhile"
    assert got["w1"]["tokens"] == got["w3"]["tokens"], "steps did not share one hold"
    blocked = [decode(i, f) for i, f in lock_redis.xrange("{pipeline}:events")]
    reasons = [e for e in blocked if e.type == "blocked" and e.job_id == job.id]
    assert reasons and reasons[0].detail["holder"] == first_id
    assert "model:b" in reasons[0].detail["reason"]


def test_chain_options_apply_to_every_step(pipeline_app: Any, workers: Callable[..., Any],
                                           lock_redis: redis.Redis) -> None:
    workers(concurrency=2)
    result = chain(step.s(None, 0.0, "s1"), step.s(0.0, "s2")).apply_async(
        user="alice", priority="critical")
    assert result.get(timeout=20) == "s1>s2"
    got = by_tag(lock_redis)
    assert "user:alice" in got["s1"]["tokens"] and "user:alice" in got["s2"]["tokens"]
    started = [decode(i, f) for i, f in lock_redis.xrange("{pipeline}:events")]
    priorities = {e.detail.get("priority") for e in started if e.type == "started"}
    assert priorities == {0}


def test_chain_holding_a_group_runs_each_member_under_its_own_locks(
        pipeline_app: Any, workers: Callable[..., Any], lock_redis: redis.Redis) -> None:
    workers(concurrency=3)
    members = group(step.s(0.3, "g1").set(models=["m"]), step.s(0.3, "g2").set(models=["m"]))
    flow = chain(step.s(None, 0.2, "a"), step.s(0.2, "b"), members,
                 step.s(0.0, "d")).apply_async(models=["m"])
    assert sorted(flow.get(timeout=30).removesuffix(">d").strip("[]").split(", ")) == [
        "'a>b>g1'", "'a>b>g2'"]
    got = by_tag(lock_redis)
    assert got["a"]["tokens"] == got["b"]["tokens"], "a and b are one workflow: one hold"
    assert "model:m" in got["a"]["tokens"]
    assert min(got["g1"]["start"], got["g2"]["start"]) >= got["b"]["end"]
    assert not (got["g1"]["start"] < got["g2"]["end"] and got["g2"]["start"] < got["g1"]["end"])
    assert got["g1"]["tokens"] != got["g2"]["tokens"], "each member took its own locks"
    wait_for(lambda: not lock_keys(lock_redis), what="every lock freed")


@pytest.mark.parametrize(("member", "error"), [
    (step.s(0.0, "c").set(priority="urgent"), r"lockprobes.step.*priority='urgent'"),
    (step.s(0.0, "c").set(model="m"), r"lockprobes.step.*model='m'.*models"),
    (step.s(0.0, "c").set(user="a\x00"), r"lockprobes.step.*user="),
])
def test_a_bad_option_anywhere_in_a_canvas_is_refused_before_publishing(
        pipeline_app: Any, lock_redis: redis.Redis, member: Any, error: str) -> None:
    before = queue_length(lock_redis)
    canvas = chain(step.s(None, 0.0, "a"), group(step.s(0.0, "b"), member), step.s(0.0, "d"))
    with pytest.raises(InvalidJobError, match=error):
        canvas.apply_async()
    body = chord([step.s(None, 0.0, "x"), step.s(None, 0.0, "y")], chain(step.s(0.0, "z"), member))
    with pytest.raises(InvalidJobError, match=error):
        body.apply_async()
    assert queue_length(lock_redis) == before


def test_each_step_runs_at_its_own_priority_and_the_calls_where_it_has_none(
        pipeline_app: Any, workers: Callable[..., Any], lock_redis: redis.Redis) -> None:
    workers(concurrency=2)

    def flow(tag: str) -> Any:
        return chain(step.s(None, 0.0, f"{tag}1").set(priority=3),
                     step.s(0.0, f"{tag}2").set(priority=5), step.s(0.0, f"{tag}3"))

    assert flow("p").apply_async().get(timeout=20) == "p1>p2>p3"
    # As in Celery, a chain call's options reach its first step (over its own) only...
    assert flow("q").apply_async(priority="low").get(timeout=20) == "q1>q2>q3"
    # ...and a workflow's reach every step that has none of its own.
    named = workflow(step.s(None, 0.0, "r1").set(priority=3), step.s(0.0, "r2"),
                     priority="low")
    assert named.apply_async().get(timeout=20) == "r1>r2"
    got = by_tag(lock_redis)
    assert [got[f"p{n}"]["priority"] for n in (1, 2, 3)] == [3, 5, 6]
    assert [got[f"q{n}"]["priority"] for n in (1, 2, 3)] == [9, 5, 6]
    assert [got[f"r{n}"]["priority"] for n in (1, 2)] == [3, 9]


def test_eager_call_inside_a_job_runs_under_its_hold_at_a_global_cap_of_one(
        pipeline_app: Any, lock_redis: redis.Redis) -> None:
    from pipeline.runtime.services import _SERVICES

    pipeline_app.conf.task_always_eager = True
    old_cap = pipeline_app.conf.get("pipeline_concurrency_global")
    pipeline_app.conf.pipeline_concurrency_global = 1
    _SERVICES.clear()
    try:
        inside = spawn_and_wait.apply_async((["a"],), models=["a"]).get(timeout=20)
        extra = spawn_and_wait.apply_async((["a", "z"],), models=["a"]).get(timeout=20)
    finally:
        pipeline_app.conf.task_always_eager = False
        if old_cap is None:
            pipeline_app.conf.changes.pop("pipeline_concurrency_global", None)
        else:
            pipeline_app.conf.pipeline_concurrency_global = old_cap
        _SERVICES.clear()
    got = {r["id"]: r for r in runs(lock_redis)}
    parent = next(r for r in runs(lock_redis) if r["tag"] == "parent")
    assert got[inside]["tokens"] == parent["tokens"], "the inline child ran under its parent's hold"
    assert set(parent["tokens"]) == {"model:a", "global"}
    assert list(got[extra]["tokens"]) == ["model:z"], "it took only what the parent lacks"
    assert not lock_keys(lock_redis)


def test_job_published_inside_a_running_job_runs_under_its_hold(
        pipeline_app: Any, workers: Callable[..., Any], lock_redis: redis.Redis) -> None:
    workers(concurrency=2)
    parent = spawn_and_wait.apply_async((["a"],), models=["a"])
    child_id = parent.get(timeout=30)
    got = by_tag(lock_redis)
    assert got["child"]["id"] == child_id
    assert got["child"]["end"] <= got["parent"]["end"]


def test_job_published_inside_a_job_needing_more_than_its_hold_is_refused(
        pipeline_app: Any, workers: Callable[..., Any]) -> None:
    workers(concurrency=2)
    parent = spawn_and_wait.apply_async((["a", "z"],), models=["a"])
    with pytest.raises(Exception, match="would wait for its own parent"):
        parent.get(timeout=30)


def test_killed_worker_mid_workflow_frees_its_locks_and_the_workflow_resumes(
        pipeline_app: Any, workers: Callable[..., Any], lock_redis: redis.Redis) -> None:
    import os

    os.environ["PIPELINE_VISIBILITY_TIMEOUT"] = "4"  # the workers started below inherit it
    try:
        first = workers(concurrency=1, lock_lease=2, workflow_gap=2)
        flow = workflow(step.s(None, 0.2, "k1"), step.s(3.0, "k2"), step.s(0.0, "k3"),
                        models=["a"]).apply_async()
        workflow_id = flow.parent.parent.id
        wait_for(lambda: "k1" in by_tag(lock_redis), what="first step done")
        wait_for(lambda: explain(workflow_id, pipeline_app).status == "running", what="k2 runs")
        first.signal_group(signal.SIGKILL)
        workers(concurrency=1, lock_lease=2)
        # nothing else stays blocked: the killed step's lease runs out
        hold.apply_async((0.0, "after"), models=["a"]).get(timeout=20)
        # the unacknowledged step comes back and the workflow finishes
        assert flow.get(timeout=60) == "k1>k2>k3"
    finally:
        os.environ.pop("PIPELINE_VISIBILITY_TIMEOUT", None)
    assert started_order(lock_redis)[:2] == ["k1", "after"]
    # The last step's release follows its result.
    wait_for(lambda: not lock_keys(lock_redis), timeout=5, what="every lock freed")


def _check_hold_kept_through_a_retry(pipeline_app: Any, lock_redis: redis.Redis,
                                     retrying: Any) -> None:
    """w1, then *retrying* (retries once), then w3 on model m; J on m submitted during w1."""
    flow = workflow(step.s(None, 0.4, "w1"), retrying, step.si(None, 0.1, "w3"),
                    models=["m"]).apply_async()
    first_id = flow.parent.parent.id
    wait_for(lambda: explain(first_id, pipeline_app).status == "running", what="w1 runs")
    job = hold.apply_async((0.0, "J"), models=["m"])
    flow.get(timeout=30)
    job.get(timeout=30)
    got = by_tag(lock_redis)
    assert got["w2"]["retries"] == 1, "the step did not retry"
    assert got["J"]["start"] >= got["w3"]["end"], "J ran while the workflow waited to retry"


def test_workflow_keeps_its_hold_while_a_step_waits_to_retry(
        pipeline_app: Any, workers: Callable[..., Any], lock_redis: redis.Redis) -> None:
    from tests.tasks.lockprobes import flaky

    workers(concurrency=3)
    _check_hold_kept_through_a_retry(pipeline_app, lock_redis, flaky.si(1, "w2"))


def test_named_workflow_of_one_step_is_still_a_workflow(
        pipeline_app: Any, lock_redis: redis.Redis) -> None:
    result = workflow(step.s(None, 0.0, "only"), name="solo", models=["m"]).apply_async()
    (key,) = redisdb.queue_keys(lock_redis)
    message = json.loads(lock_redis.lindex(key, 0) or b"")
    assert message["headers"]["pipeline"] | {"submitted_at": 0} == {
        "version": 1, "models": ["m"], "workflow": result.id, "workflow_name": "solo",
        "steps": 1, "step": 1, "submitted_at": 0}


def test_workflow_keeps_its_hold_while_a_step_waits_for_its_own_retry(
        pipeline_app: Any, workers: Callable[..., Any], lock_redis: redis.Redis) -> None:
    from tests.tasks.lockprobes import retry_step

    workers(concurrency=3, workflow_gap=1)       # the retry comes after the gap alone
    _check_hold_kept_through_a_retry(pipeline_app, lock_redis, retry_step.si(2.5, "w2"))


def test_hold_kept_for_a_retry_that_could_not_be_published_is_released(
        pipeline_app: Any, lock_redis: redis.Redis) -> None:
    from types import SimpleNamespace

    from celery.exceptions import Reject

    from pipeline.job.attempts import call_with_retries
    from pipeline.locks.resources import Claim
    from pipeline.locks.ticket import Acquired, Blocked, Ticket
    from pipeline.runtime.services import services_for

    locks = services_for(pipeline_app).locks
    claim = (Claim("model:m", "x", 1),)
    taken = locks.acquire(Ticket("s1", "W", claim, 6), host="h", pid=1)
    assert isinstance(taken, Acquired)
    from pipeline.runtime.running import RunningJob

    services_for(pipeline_app).running.add("s1", RunningJob("W", taken.tokens, "W",
                                                           has_next_step=True))

    def retry(**_: Any) -> None:
        raise Reject("the broker refused the retry", requeue=False)

    task = SimpleNamespace(app=pipeline_app, services=services_for(pipeline_app), retry=retry,
                           max_retries=3, backoff=0.01,
                           backoff_max=None, jitter=False, retry_for=None, dont_retry_for=None,
                           request=SimpleNamespace(id="s1", retries=0, called_directly=False,
                                                   is_eager=False))

    def body() -> None:
        raise RuntimeError("flaky")

    with pytest.raises(Reject):
        call_with_retries(task, body, (), {})
    locks._fast.flush()
    assert locks.explain("W").status == "unknown", "the workflow kept a hold for nothing"
    from pipeline.messages.events import decode

    last = [decode(i, f) for i, f in lock_redis.xrange("{pipeline}:events")][-1]
    assert (last.type, last.job_id) == ("failed", "s1")
    assert "could not be published" in last.detail["error"]
    assert not isinstance(locks.acquire(Ticket("J", "J", claim, 6), host="h", pid=1), Blocked)


def test_next_step_of_a_holding_workflow_goes_to_the_front_at_its_own_priority(
        pipeline_app: Any, workers: Callable[..., Any], lock_redis: redis.Redis) -> None:
    workers(concurrency=1)
    flow = workflow(step.s(None, 0.5, "s1"), step.s(0.0, "s2"), models=["m"]).apply_async()
    wait_for(lambda: explain(flow.parent.id, pipeline_app).status == "running", what="s1 runs")
    fillers = [hold.apply_async((0.0, f"f{n}")) for n in range(5)]  # same level, queued first
    assert flow.get(timeout=20) == "s1>s2"
    for job in fillers:
        job.get(timeout=20)
    assert started_order(lock_redis)[:2] == ["s1", "s2"], "the held workflow waited its turn"
    assert by_tag(lock_redis)["s2"]["priority"] == 6, "its priority was rewritten"
