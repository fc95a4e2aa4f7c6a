"""Parking in the fetch: a job whose resources are visibly held never reaches a pool process.

First the fetch itself, on the app's own channel and Redis (what one Lua call
parks, delivers, leaves alone); then real workers: parked jobs are never handed
to a pool process (``task_prerun`` counted by ``tests.tasks.deliveries``), wake
in priority then arrival order, run once with their locks, and everything the
fetch should not judge goes on as before.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import conf, explain
from pipeline.broker import fetch, parking
from pipeline.keys import WAKE_TOKEN, Keys
from pipeline.locks.engine import RedisLockEngine
from pipeline.locks.records import claims_text
from pipeline.locks.resources import CONTROL, Demand, claims
from pipeline.locks.scripts import lib_source
from pipeline.locks.ticket import Acquired, Ticket
from pipeline.messages.header import JobHeader
from pipeline.runtime.services import services_for
from tests.helpers.queuekeys import HEAD, QUEUE, WAKE
from tests.integration.locks.support import wait_for
from tests.tasks.lockprobes import hold, runs

pytestmark = pytest.mark.timeout(180)

HOLDER = "test-holder"
PRERUN = "probe:prerun"


@pytest.fixture
def channel(pipeline_app: Any) -> Iterator[Any]:
    """The app's broker channel (the pipeline's transport, parking on), consuming nothing."""
    with pipeline_app.connection_for_write() as connection:
        channel = connection.default_channel
        assert channel.park_in_fetch, "install() should turn parking in the fetch on"
        channel._acked[QUEUE] = True
        channel._served.clear()
        yield channel


def take(channel: Any) -> fetch.Taken:
    taken: fetch.Taken = channel._get_fetcher().take_or_park(channel._served_lists([QUEUE]))
    return taken


def engine(app: Any) -> RedisLockEngine:
    locks: RedisLockEngine = services_for(app).engine
    return locks


def hold_model(app: Any, model: str, holder: str = HOLDER) -> None:
    """Take *model* (and a global slot) under a holder that is no job of any worker."""
    services = services_for(app)
    ticket = Ticket(holder, holder, claims(Demand(models=(model,)), services.settings), 6)
    result = engine(app).acquire(ticket, host="test", pid=os.getpid())
    assert isinstance(result, Acquired), result


def release(app: Any, holder: str = HOLDER) -> None:
    engine(app).release(holder, holder)


def events_of(client: redis.Redis, job_id: str) -> list[str]:
    """The job's event types in the stream, in order."""
    return [fields[b"e"].decode() for _, fields in client.xrange("{pipeline}:events")
            if fields[b"j"].decode() == job_id]


def deliveries(client: redis.Redis, job_id: str) -> int:
    return int(client.hget(PRERUN, job_id) or 0)


# -- the fetch itself ------------------------------------------------------------------


def test_jobs_behind_a_held_model_are_parked_by_the_fetch_and_a_free_one_is_delivered(
        pipeline_app: Any, channel: Any, lock_redis: redis.Redis) -> None:
    hold_model(pipeline_app, "busy")
    blocked = [hold.apply_async((0, f"b{i}"), models=["busy"]) for i in range(3)]
    free = hold.apply_async((0, "free"), models=["idle"])
    assert lock_redis.llen(WAKE) == 4

    taken = take(channel)
    assert taken.message is not None and taken.message.tag
    assert json.loads(taken.message.item)["headers"]["id"] == free.id
    assert [p.job_id for p in taken.parked] == [job.id for job in blocked]
    assert [p.position for p in taken.parked] == [1, 2, 3]
    first = taken.parked[0]
    assert (first.task, first.resource, first.blocked_by) == ("lockprobes.hold", "model:busy",
                                                             HOLDER)
    assert first.reason == "waiting for model:busy (held by or queued behind test-holder), " \
                           "position 1 in line"
    # Parked as before_start parks: record, line, counters, the blocked event.
    for job in blocked:
        found = explain(job.id, pipeline_app)
        assert found.status == "parked" and found.waiting_for == "model:busy"
        # (The publisher's queued event is buffered: it may come after the park.)
        assert sorted(events_of(lock_redis, job.id)) == ["blocked", "queued"]
    assert lock_redis.zrange("{pipeline}:line:model:busy", 0, -1) == [
        job.id.encode() for job in blocked]
    assert lock_redis.hget("{pipeline}:parked:count", "6") == b"3"
    # Only the delivered message is recorded as taken; the parked ones took their
    # tokens (the one left is the delivered message's, which a worker's wait takes).
    assert lock_redis.hlen("{pipeline}:unacked") == 1
    assert lock_redis.llen(HEAD + "\x06\x166") == 0
    assert lock_redis.llen(WAKE) == 1


def test_a_fetch_parks_at_most_its_limit_and_says_more_wait(
        pipeline_app: Any, channel: Any, lock_redis: redis.Redis) -> None:
    hold_model(pipeline_app, "busy")
    jobs = [hold.apply_async((0, f"b{i}"), models=["busy"]) for i in range(parking.LIMIT + 6)]
    first = take(channel)
    assert first.message is None and first.more
    assert len(first.parked) == parking.LIMIT
    assert lock_redis.llen(WAKE) >= 1, "the worker must be woken to go on"
    second = take(channel)
    assert second.message is None and not second.more
    assert [p.job_id for p in first.parked + second.parked] == [job.id for job in jobs]
    assert [p.position for p in second.parked] == list(range(parking.LIMIT + 1,
                                                             parking.LIMIT + 7))


def test_a_job_queued_behind_parked_ones_is_parked_even_when_the_resource_is_free(
        pipeline_app: Any, channel: Any, lock_redis: redis.Redis) -> None:
    # No barging: a line exists on the model, so a newcomer waits behind it.
    hold_model(pipeline_app, "busy")
    ahead = hold.apply_async((0, "ahead"), models=["busy"])
    take(channel)
    lock_redis.zrem("{pipeline}:res:model:busy:w", HOLDER)  # the holder vanished
    lock_redis.zadd("{pipeline}:res:model:busy:w", {"someone-else": time.time() * 1000 + 60000})
    newcomer = hold.apply_async((0, "newcomer"), models=["busy"])
    taken = take(channel)
    assert taken.message is None
    assert [p.job_id for p in taken.parked] == [newcomer.id]
    assert explain(ahead.id, pipeline_app).position == 1
    assert explain(newcomer.id, pipeline_app).position == 2


@pytest.mark.parametrize("how", ["send_task", "eta", "workflow", "cancelled", "no_priority",
                                 "bad_models", "newer_header", "control_chars", "pickle"])
def test_what_the_fetch_cannot_judge_as_its_start_would_is_delivered(
        pipeline_app: Any, channel: Any, lock_redis: redis.Redis, how: str) -> None:
    hold_model(pipeline_app, "busy")
    if how == "send_task":
        # A plain Celery publish of a pipeline task: no header, its task's models
        # are known to the worker only.
        job_id = pipeline_app.send_task("lockprobes.hold", (0, "plain")).id
    elif how == "eta":
        job_id = hold.apply_async((0, "eta"), models=["busy"], countdown=30).id
    elif how == "workflow":
        from pipeline import workflow

        job_id = workflow(hold.si(0, "w1"), hold.si(0, "w2"), models=["busy"]).apply_async(
        ).parent.id
    elif how == "cancelled":
        job_id = hold.apply_async((0, "c"), models=["busy"]).id
        lock_redis.zadd("{pipeline}:cancelled:ids", {job_id: 1})
    else:
        job_id = hold.apply_async((0, how), models=["busy"]).id
        raw = lock_redis.rpop(HEAD + "\x06\x166")
        message = json.loads(raw or b"")
        header = message["headers"]["pipeline"]
        if how == "no_priority":
            del message["properties"]["priority"]
        elif how == "bad_models":
            header["models"] = "busy"
        elif how == "newer_header":
            header["version"] = 99
        elif how == "control_chars":
            header["models"] = ["bu\nsy"]
        elif how == "pickle":
            message["content-type"] = "application/x-python-serialize"
        lock_redis.lpush(HEAD + "\x06\x166", json.dumps(message))
    taken = take(channel)
    assert taken.parked == []
    assert taken.message is not None
    assert json.loads(taken.message.item)["headers"]["id"] == job_id
    assert not lock_redis.exists(f"{{pipeline}}:park:{job_id}")


def test_an_item_that_is_no_message_is_set_aside_and_the_jobs_behind_it_still_park(
        pipeline_app: Any, channel: Any, lock_redis: redis.Redis) -> None:
    hold_model(pipeline_app, "busy")
    parked = hold.apply_async((0, "p"), models=["busy"])
    lock_redis.lpush(HEAD + "\x06\x166", b"\xff not json {")
    lock_redis.lpush(WAKE, WAKE_TOKEN)
    after = hold.apply_async((0, "after"), models=["busy"])
    assert channel._take([QUEUE]) is False  # nothing to deliver, nothing fatal
    assert lock_redis.llen("{pipeline}:set_aside") == 1
    assert explain(parked.id, pipeline_app).status == "parked"
    assert explain(after.id, pipeline_app).status == "parked"


#: Runs park.lua's header_claims on a header (JSON) and capacities.
CLAIMS_PROBE = """
local text = header_claims(cjson.decode(ARGV[1]), {user = tonumber(ARGV[2]),
  project = tonumber(ARGV[3]), model = tonumber(ARGV[4]), global = tonumber(ARGV[5])})
return text or false
"""
NAMES = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)
CAPACITY = st.integers(min_value=0, max_value=3)


@pytest.fixture(scope="module")
def claims_probe() -> Any:
    from importlib import resources

    from tests.helpers import redisdb

    client = redis.Redis.from_url(redisdb.db_url(5))
    park_lua = resources.files("pipeline.broker").joinpath("park.lua").read_text("utf-8")
    yield client.register_script(lib_source() + park_lua + CLAIMS_PROBE)
    client.close()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(user=st.none() | NAMES, project=st.none() | NAMES, models=st.lists(NAMES, max_size=4),
       shared=st.lists(NAMES, max_size=3), caps=st.tuples(CAPACITY, CAPACITY, CAPACITY,
                                                          CAPACITY))
def test_the_fetch_computes_the_claims_before_start_takes(
        claims_probe: Any, user: str | None, project: str | None, models: list[str],
        shared: list[str], caps: tuple[int, int, int, int]) -> None:
    demand = Demand(user, project, tuple(models), tuple(shared))
    header = JobHeader.of(demand, submitted_at=1.5).encode()
    worker = conf.read({"pipeline_capacity_user": caps[0], "pipeline_capacity_project": caps[1],
                        "pipeline_capacity_model": caps[2],
                        "pipeline_concurrency_global": caps[3]})
    expected = claims(demand, worker)
    got = claims_probe(args=[json.dumps(header), *caps])
    if any(CONTROL.search(c.resource) for c in expected):
        assert got is None  # before_start fails such a job: the fetch delivers it
    elif not expected:
        assert got == b""
    else:
        assert got.decode() == claims_text(expected)


def test_parking_in_the_fetch_can_be_turned_off(pipeline_app: Any) -> None:
    settings = conf.read({**pipeline_app.conf, "pipeline_park_in_fetch": False})
    assert parking.transport_options(settings) == {}
    on = parking.transport_options(conf.read(pipeline_app.conf))
    assert on["capacities"] == [1, 2, 1, 5] and on["base"] == Keys().base
    waits = conf.read({**pipeline_app.conf, "pipeline_redis_wait_replicas": 1})
    assert parking.transport_options(waits) == {}


# -- real workers ----------------------------------------------------------------------


@pytest.fixture
def parking_workers(broker_url: str, tmp_path: Any) -> Iterator[Callable[..., Any]]:
    """Real workers that count what their pool processes are handed (``probe:prerun``)."""
    from tests.helpers.workers import SubprocessWorker

    started: list[SubprocessWorker] = []

    def start(concurrency: int = 1, **settings: Any) -> SubprocessWorker:
        env = {"PIPELINE_STORE_ENABLED": "false",
               **{f"PIPELINE_{k.upper()}": str(v) for k, v in settings.items()}}
        worker = SubprocessWorker(broker_url, tmp_path, name=f"fp{len(started) + 1}",
                                  concurrency=concurrency,
                                  include=("tests.tasks.lockprobes", "tests.tasks.deliveries"),
                                  env=env)
        started.append(worker)
        return worker.start()

    yield start
    for worker in started:
        worker.stop()


def test_jobs_behind_a_holder_are_parked_without_reaching_a_pool_process_then_run_once(
        pipeline_app: Any, parking_workers: Callable[..., Any], lock_redis: redis.Redis) -> None:
    worker = parking_workers(concurrency=1)
    hold_model(pipeline_app, "busy")
    jobs = [hold.apply_async((0, f"j{i}"), models=["busy"]) for i in range(20)]
    wait_for(lambda: all(explain(j.id, pipeline_app).status == "parked" for j in jobs),
             what="every job parked")
    assert all(deliveries(lock_redis, j.id) == 0 for j in jobs), \
        "a parked job was handed to a pool process"
    log = worker.log_path.read_text()
    assert f"job {jobs[0].id} (lockprobes.hold) parked: waiting for model:busy (held by or " \
           f"queued behind {HOLDER}), position 1 in line (by the fetch that took its message)" \
           in log
    # The BLOCKED state as Flower and the result backend see it.
    assert pipeline_app.AsyncResult(jobs[0].id).state == "BLOCKED"

    release(pipeline_app)
    for job in jobs:
        job.get(timeout=30)
    done = runs(lock_redis)
    assert [r["tag"] for r in done] == [f"j{i}" for i in range(20)], "not in arrival order"
    assert all(deliveries(lock_redis, j.id) == 1 for j in jobs), "a job ran more than once"
    for before, after in itertools.pairwise(done):
        assert after["start"] >= before["end"]
        assert after["tokens"]["model:busy"] > before["tokens"]["model:busy"]
    # (The publisher's queued event is buffered: it may reach the stream after the
    # park; the store orders them by their times.)
    history = [e for e in events_of(lock_redis, jobs[0].id) if e != "queued"]
    assert history == ["blocked", "granted", "started", "completed"], history
    assert history.count("blocked") == 1


def test_fetch_parked_jobs_wake_in_priority_then_arrival_order(
        pipeline_app: Any, parking_workers: Callable[..., Any], lock_redis: redis.Redis) -> None:
    hold_model(pipeline_app, "busy")
    plan = [("low", "l1"), ("normal", "n1"), ("high", "h1"), ("low", "l2"), ("high", "h2"),
            ("normal", "n2"), ("critical", "c1")]
    jobs = [hold.apply_async((0, tag), models=["busy"], priority=prio) for prio, tag in plan]
    parking_workers(concurrency=1)
    wait_for(lambda: all(explain(j.id, pipeline_app).status == "parked" for j in jobs),
             what="every job parked")
    release(pipeline_app)
    for job in jobs:
        job.get(timeout=30)
    assert [r["tag"] for r in runs(lock_redis)] == ["c1", "h1", "h2", "n1", "n2", "l1", "l2"]
    assert all(deliveries(lock_redis, j.id) == 1 for j in jobs)


def test_a_job_whose_resources_are_free_runs_at_once_beside_parked_ones(
        pipeline_app: Any, parking_workers: Callable[..., Any], lock_redis: redis.Redis) -> None:
    parking_workers(concurrency=1)
    hold_model(pipeline_app, "busy")
    waiting = [hold.apply_async((0, f"w{i}"), models=["busy"]) for i in range(5)]
    free = hold.apply_async((0, "free"), models=["idle"])
    assert free.get(timeout=15)["tag"] == "free"
    assert [explain(j.id, pipeline_app).status for j in waiting] == ["parked"] * 5
    release(pipeline_app)
    for job in waiting:
        job.get(timeout=30)


def test_plain_tasks_and_malformed_messages_beside_parked_jobs(
        pipeline_app: Any, parking_workers: Callable[..., Any], lock_redis: redis.Redis) -> None:
    from tests.tasks.probes import plain_record

    hold_model(pipeline_app, "busy")
    parked = hold.apply_async((0, "parked"), models=["busy"])
    lock_redis.lpush(HEAD + "\x06\x166", b"not a message")
    lock_redis.lpush(WAKE, WAKE_TOKEN)
    plain = plain_record.apply_async(("probe:fetchpark", "plain"))
    # Published without the pipeline's header: before_start judges it, as before.
    sent = pipeline_app.send_task("lockprobes.hold", (0, "sent"))
    parking_workers(concurrency=1)
    assert plain.get(timeout=15) == "plain"
    assert sent.get(timeout=15)["tag"] == "sent"
    assert deliveries(lock_redis, sent.id) == 1
    assert deliveries(lock_redis, parked.id) == 0
    assert lock_redis.llen("{pipeline}:set_aside") == 1
    release(pipeline_app)
    assert parked.get(timeout=30)["tag"] == "parked"
