"""Events written to the real Redis stream end up as the right rows, on both databases."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pipeline.keys import Keys
from pipeline.store import states
from pipeline.store.models import Job, QueueLog, Workflow
from pipeline.store.recorder import GROUP, Recorder, RecorderThread

STREAM = Keys().events

Emit = Callable[..., None]
T0 = 1_700_000_000_000


def at(offset_ms: int) -> datetime:
    return datetime.fromtimestamp((T0 + offset_ms) / 1000, tz=timezone.utc)


def log_of(db: Session, job_id: str) -> list[str]:
    return list(db.scalars(select(QueueLog.event).where(QueueLog.job_id == job_id)
                           .order_by(QueueLog.created_at, QueueLog.id)))


def job(db: Session, job_id: str) -> Job:
    db.expire_all()
    found = db.get(Job, job_id)
    assert found is not None, f"no row for {job_id}"
    return found


def emit_run(emit: Emit, job_id: str, start: int = 0, **started: Any) -> None:
    emit("queued", job_id, {"task": "tasks.train", "priority": 3, "user": "alice",
                            "project": "nlp", "models": ["bert"], "attempt": 1}, t=T0 + start)
    emit("started", job_id, {"host": "w1", "pid": 42, "attempt": 1, **started},
         t=T0 + start + 1000)


def test_job_that_runs_ends_completed_with_its_times(emit: Emit, record: Callable[[], int],
                                                      db: Session) -> None:
    emit_run(emit, "ok")
    emit("completed", "ok", {"result": "42", "runtime": 2.5}, t=T0 + 3500)
    assert record() == 3
    row = job(db, "ok")
    assert (row.state, row.attempts, row.task, row.user, row.project, row.models,
            row.priority) == (states.COMPLETED, 1, "tasks.train", "alice", "nlp", ["bert"], 3)
    assert (row.queued_at, row.started_at, row.finished_at) == (at(0), at(1000), at(3500))
    assert (row.result, row.runtime, row.worker_host, row.worker_pid) == ("42", 2.5, "w1", 42)
    assert log_of(db, "ok") == ["queued", "started", "completed"]


def test_job_that_fails_keeps_its_error(emit: Emit, record: Callable[[], int],
                                        db: Session) -> None:
    emit_run(emit, "bad")
    emit("failed", "bad", {"error": "ValueError('x')", "runtime": 0.1}, t=T0 + 2000)
    record()
    row = job(db, "bad")
    assert (row.state, row.error, row.finished_at) == (states.FAILED, "ValueError('x')", at(2000))
    assert log_of(db, "bad") == ["queued", "started", "failed"]


def test_job_retried_twice_then_completed_has_three_attempts(
        emit: Emit, record: Callable[[], int], db: Session) -> None:
    emit_run(emit, "retry")
    for attempt in (1, 2):
        emit("retried", "retry", {"error": "boom", "countdown": 1, "attempt": attempt},
             t=T0 + 2000 * attempt)
        record()  # one batch per step: the SQL merge, not only the in-batch fold
        assert job(db, "retry").state == states.QUEUED
        emit("started", "retry", {"attempt": attempt + 1, "pid": 42 + attempt},
             t=T0 + 2000 * attempt + 1000)
        record()
        assert job(db, "retry").state == states.RUNNING
    emit("completed", "retry", {"result": "done"}, t=T0 + 6000)
    record()
    row = job(db, "retry")
    assert (row.state, row.attempts, row.error, row.worker_pid) == (
        states.COMPLETED, 3, None, 44)
    assert (row.queued_at, row.started_at, row.finished_at) == (at(0), at(1000), at(6000))
    assert log_of(db, "retry") == ["queued", "started", "retried", "started", "retried",
                                   "started", "completed"]


def test_parked_job_is_blocked_with_its_reason_then_runs(
        emit: Emit, record: Callable[[], int], db: Session) -> None:
    emit("queued", "p", {"task": "t", "priority": 6, "models": ["bert"]}, t=T0)
    emit("blocked", "p", {"resource": "model:bert", "holder": "ok", "position": 1,
                          "reason": "waiting for model:bert (held by ok)"}, t=T0 + 100)
    record()
    row = job(db, "p")
    assert (row.state, row.blocked_by_job_id, row.conflict_reason) == (
        states.BLOCKED, "ok", "waiting for model:bert (held by ok)")
    emit("granted", "p", {"holder": "p", "resources": ["model:bert"]}, t=T0 + 4000)
    record()
    assert job(db, "p").state == states.BLOCKED
    emit("started", "p", {"attempt": 1}, t=T0 + 4100)
    emit("completed", "p", {"result": "1"}, t=T0 + 5000)
    record()
    row = job(db, "p")
    assert (row.state, row.blocked_at, row.started_at, row.finished_at) == (
        states.COMPLETED, at(100), at(4100), at(5000))
    assert row.blocked_by_job_id is None
    assert log_of(db, "p") == ["queued", "blocked", "granted", "started", "completed"]


def test_replaying_the_same_events_leaves_the_same_rows(
        emit: Emit, recorder: Recorder, record: Callable[[], int], db: Session,
        store_redis: redis.Redis) -> None:
    emit_run(emit, "a", workflow="wf1")
    emit("completed", "a", {"result": "1"}, t=T0 + 2000)
    entries = store_redis.xrange(STREAM)
    record()
    before = [(j.id, j.state, j.attempts, j.updated_at, j.last_event_id)
              for j in db.scalars(select(Job))]
    recorder.record(entries)  # the same stream entries once more
    db.expire_all()
    after = [(j.id, j.state, j.attempts, j.updated_at, j.last_event_id)
             for j in db.scalars(select(Job))]
    assert after == before
    assert db.scalar(select(func.count()).select_from(QueueLog)) == 3


def test_completed_recorded_before_started_still_ends_completed(
        emit: Emit, record: Callable[[], int], db: Session) -> None:
    emit("completed", "late", {"result": "1", "runtime": 1.0}, t=T0 + 3000)
    record()
    assert job(db, "late").state == states.COMPLETED
    emit_run(emit, "late")
    record()
    row = job(db, "late")
    assert (row.state, row.queued_at, row.started_at, row.finished_at) == (
        states.COMPLETED, at(0), at(1000), at(3000))
    assert row.task == "tasks.train"


def test_steps_of_a_workflow_make_its_row(emit: Emit, record: Callable[[], int],
                                          db: Session) -> None:
    for step, offset in (("s1", 0), ("s2", 10_000)):
        emit("queued", step, {"task": "t", "workflow": "wf", "workflow_name": "retrain",
                              "workflow_steps": ["prep", "train"]}, t=T0 + offset)
        emit("started", step, {"workflow": "wf"}, t=T0 + offset + 1000)
        record()
        assert db.get(Workflow, "wf") is not None
        db.expire_all()
        assert db.get(Workflow, "wf").state == states.RUNNING  # type: ignore[union-attr]
        emit("completed", step, {"result": "1"}, t=T0 + offset + 2000)
        record()
    db.expire_all()
    flow = db.get(Workflow, "wf")
    assert flow is not None
    assert (flow.name, flow.steps, flow.state, flow.created_at, flow.started_at,
            flow.finished_at) == ("retrain", ["prep", "train"], states.COMPLETED, at(0),
                                  at(1000), at(12_000))


def test_recorded_events_are_trimmed_from_the_stream(
        emit: Emit, record: Callable[[], int], store_redis: redis.Redis) -> None:
    for n in range(5):
        emit_run(emit, f"j{n}")
    record()
    assert store_redis.xlen(STREAM) == 0
    emit("completed", "j0", {}, t=T0 + 9000)
    assert store_redis.xlen(STREAM) == 1


def test_entries_read_but_not_acknowledged_are_recorded_after_a_restart(
        emit: Emit, store_redis: redis.Redis, store_url: str, db: Session) -> None:
    emit_run(emit, "crash")
    first = Recorder(store_redis, STREAM, store_url, consumer="same", block_ms=10)
    first.ensure_group()
    # Read as the recorder does, then "die" before writing.
    assert len(store_redis.xreadgroup(GROUP, "same", {STREAM: ">"}, count=10)) == 1
    assert store_redis.xpending(STREAM, GROUP)["pending"] == 2
    again = Recorder(store_redis, STREAM, store_url, consumer="same", block_ms=10)
    assert again.run_once() == 2
    assert job(db, "crash").state == states.RUNNING
    assert store_redis.xpending(STREAM, GROUP)["pending"] == 0


def test_entries_of_a_dead_recorder_are_taken_over(
        emit: Emit, store_redis: redis.Redis, store_url: str, db: Session) -> None:
    emit_run(emit, "orphan")
    Recorder(store_redis, STREAM, store_url).ensure_group()
    store_redis.xreadgroup(GROUP, "dead", {STREAM: ">"}, count=10)
    time.sleep(0.05)
    survivor = Recorder(store_redis, STREAM, store_url, consumer="alive", claim_idle_ms=20,
                        block_ms=10)
    survivor._own_backlog = False
    assert survivor.run_once() == 2
    assert job(db, "orphan").state == states.RUNNING
    assert store_redis.xlen(STREAM) == 0


def test_recorder_thread_records_until_stopped(
        emit: Emit, store_redis: redis.Redis, store_url: str, db: Session) -> None:
    thread = RecorderThread(lambda: Recorder(store_redis, STREAM, store_url, block_ms=50))
    thread.start()
    try:
        emit_run(emit, "live")
        deadline = time.monotonic() + 10
        while db.scalar(select(func.count()).select_from(QueueLog)) < 2:
            assert time.monotonic() < deadline, "the recorder thread wrote nothing"
            time.sleep(0.05)
            db.rollback()
    finally:
        thread.stop()
    assert not thread.is_alive()
    assert job(db, "live").state == states.RUNNING


def test_another_consumer_group_keeps_the_entries_it_has_not_read(
        emit: Emit, record: Callable[[], int], store_redis: redis.Redis) -> None:
    store_redis.xgroup_create(STREAM, "metrics", id="0", mkstream=True)
    emit_run(emit, "shared")
    record()
    assert store_redis.xlen(STREAM) == 2
    read = store_redis.xreadgroup("metrics", "m", {STREAM: ">"}, count=1)[0][1]
    emit("completed", "shared", {}, t=T0 + 5000)
    record()
    assert store_redis.xlen(STREAM) == 3  # the metrics group still holds its first entry
    read += store_redis.xreadgroup("metrics", "m", {STREAM: ">"}, count=10)[0][1]
    store_redis.xack(STREAM, "metrics", *[i for i, _ in read])
    emit("completed", "other", {}, t=T0 + 6000)
    record()
    assert store_redis.xlen(STREAM) == 1  # only what the metrics group has not read


def test_pending_entries_trimmed_away_do_not_hold_back_the_stream(
        emit: Emit, store_redis: redis.Redis, store_url: str, db: Session) -> None:
    emit_run(emit, "cut")
    first = Recorder(store_redis, STREAM, store_url, consumer="same", block_ms=10)
    first.ensure_group()
    store_redis.xreadgroup(GROUP, "same", {STREAM: ">"}, count=10)
    store_redis.xtrim(STREAM, maxlen=0)  # the safety cap dropped them before recording
    emit("queued", "next", {}, t=T0 + 9000)
    again = Recorder(store_redis, STREAM, store_url, consumer="same", block_ms=10)
    while again.run_once():
        pass
    assert store_redis.xpending(STREAM, GROUP)["pending"] == 0
    assert store_redis.xlen(STREAM) == 0
    assert job(db, "next").state == states.QUEUED
