"""Ids and names holding quotes, backslashes and non-ASCII text travel the whole path intact.

Publish, park, hand-off, the events the scripts write, the job store, and the
operator's look into the broker's lists all see the same id.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from pipeline import explain
from pipeline.actions import control
from pipeline.keys import Keys
from pipeline.messages.events import decode
from pipeline.runtime.services import services_for
from pipeline.store import migrate, session
from pipeline.store.models import Job, QueueLog
from pipeline.store.recorder import Recorder
from tests.integration.locks.support import wait_for
from tests.tasks.lockprobes import hold

pytestmark = pytest.mark.timeout(120)

HOLDER = 'hold "quoted" \\ back é'
WAITER = 'wait "q" \\ ü ✓'
USER = 'ali"ce\\é'
MODEL = 'mo"del\\ü'


def test_odd_ids_and_names_park_hand_off_and_reach_the_store(
        pipeline_app: Any, workers: Callable[..., Any], lock_redis: redis.Redis,
        broker_url: str, tmp_path: Path) -> None:
    workers(concurrency=2)
    first = hold.apply_async((1.5, "holder"), task_id=HOLDER, models=[MODEL], user=USER)
    wait_for(lambda: explain(HOLDER, pipeline_app).status == "running", what="holder runs")
    second = hold.apply_async((0.0, "waiter"), task_id=WAITER, models=[MODEL])
    wait_for(lambda: explain(WAITER, pipeline_app).status == "parked", what="waiter parked")
    parked = explain(WAITER, pipeline_app)
    assert (parked.waiting_for, parked.blocked_by) == (f"model:{MODEL}", HOLDER)
    assert first.get(timeout=20)["id"] == HOLDER
    assert second.get(timeout=20)["id"] == WAITER

    entries = [decode(i, f) for i, f in lock_redis.xrange(Keys().events)]
    assert all("raw" not in e.detail for e in entries), "an event's JSON did not parse"
    started = {e.job_id: e.detail for e in entries if e.type == "started"}
    assert started[HOLDER]["holder"] == HOLDER and started[HOLDER]["user"] == USER
    assert sorted(started[WAITER]["resources"]) == ["global", f"model:{MODEL}"]
    assert {e.job_id for e in entries if e.type == "granted"} == {WAITER}

    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    migrate.upgrade(store_url)
    client = redis.Redis.from_url(broker_url, decode_responses=True)
    recorder = Recorder(client, Keys().events, store_url, block_ms=10, consumer="test")
    recorder.ensure_group()
    while recorder.run_once():
        pass
    with session.open_store(store_url)() as db:
        rows = {job.id: job for job in db.query(Job)}
        blocked = [row.detail for row in db.query(QueueLog).filter_by(job_id=WAITER,
                                                                       event="blocked")]
    assert rows[HOLDER].user == USER and rows[HOLDER].models == [MODEL]
    assert rows[WAITER].state == rows[HOLDER].state == "COMPLETED"
    assert [d["holder"] for d in blocked] == [HOLDER]


def test_odd_ids_are_found_moved_and_cancelled_in_the_broker_lists(
        pipeline_app: Any, lock_redis: redis.Redis) -> None:
    hold.apply_async((0.0, "other"), queue="idle", priority="low")
    hold.apply_async((0.0, "odd"), task_id=WAITER, queue="idle", priority="low")
    where = control.position(services_for(pipeline_app), WAITER, queue="idle")
    assert (where.where, where.place, where.priority) == ("queued", 2, 9)
    assert control.reprioritize(services_for(pipeline_app), WAITER, "critical",
                                queue="idle") == "queued"
    where = control.position(services_for(pipeline_app), WAITER, queue="idle")
    assert (where.where, where.place, where.priority) == ("queued", 1, 0)
    assert control.cancel(services_for(pipeline_app), WAITER, queue="idle") == "queued"
    assert control.position(services_for(pipeline_app), WAITER, queue="idle").where == "unknown"
