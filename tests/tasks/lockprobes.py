"""Jobs that record when they ran, for the lock tests and benchmarks.

Each run appends one JSON record (job id, tag, start, end, pid, fencing tokens)
to the Redis list ``lockprobe:runs`` on the broker's Redis.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import redis
from celery.exceptions import Ignore, Reject

from pipeline import PipelineTask, fencing_tokens
from pipeline.runtime.services import services_for
from tasks.app import app
from tests.tasks.probes import client as _client

RUNS_KEY = "lockprobe:runs"
def _record(task: Any, tag: str, started: float) -> dict[str, Any]:
    record = {"id": task.request.id, "tag": tag, "start": started, "end": time.time(),
              "pid": os.getpid(), "tokens": fencing_tokens(), "retries": task.request.retries,
              "priority": (task.request.delivery_info or {}).get("priority")}
    _client().rpush(RUNS_KEY, json.dumps(record))
    return record


@app.task(base=PipelineTask, bind=True, name="lockprobes.hold")
def hold(self: Any, seconds: float = 0.0, tag: str = "") -> dict[str, Any]:
    """Hold the job's locks for *seconds*, then record the run."""
    started = time.time()
    if seconds:
        time.sleep(seconds)
    return _record(self, tag, started)


@app.task(base=PipelineTask, bind=True, name="lockprobes.misbehave", max_retries=3)
def misbehave(self: Any, how: str, seconds: float = 0.0, tag: str = "") -> Any:
    """End through one of Celery's unusual paths: retry, ignore, reject, raise, sleep."""
    started = time.time()
    _record(self, tag or how, started)
    if how == "retry" and self.request.retries < 1:
        raise self.retry(countdown=0.1)
    if how == "ignore":
        raise Ignore()
    if how == "reject":
        raise Reject("rejected on purpose", requeue=False)
    if how == "raise":
        raise RuntimeError("failed on purpose")
    if how == "sleep":
        time.sleep(seconds)
    return how


def runs(client: redis.Redis) -> list[dict[str, Any]]:
    """Every recorded run, in the order they were recorded."""
    return [json.loads(raw) for raw in client.lrange(RUNS_KEY, 0, -1)]


@app.task(base=PipelineTask, bind=True, name="lockprobes.sleep_once")
def sleep_once(self: Any, seconds: float, tag: str = "") -> dict[str, Any]:
    """Sleep on the first delivery only (a redelivered copy finishes at once)."""
    started = time.time()
    if _client().set(f"lockprobe:slept:{self.request.id}", 1, nx=True, ex=600):
        time.sleep(seconds)
    return _record(self, tag, started)


@app.task(base=PipelineTask, bind=True, name="lockprobes.step")
def step(self: Any, previous: Any = None, seconds: float = 0.0, tag: str = "") -> str:
    """One step of a workflow: hold for *seconds*, record, pass the tags along."""
    started = time.time()
    if seconds:
        time.sleep(seconds)
    _record(self, tag, started)
    return f"{previous}>{tag}" if previous else tag


@app.task(base=PipelineTask, bind=True, name="lockprobes.spawn_and_wait")
def spawn_and_wait(self: Any, child_models: list[str], timeout: float = 20.0) -> str:
    """Publish a child job and wait until it has run (it must not wait on its parent)."""
    started = time.time()
    child = hold.apply_async((0.0, "child"), models=child_models)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if any(r["id"] == child.id for r in runs(_client())):
            _record(self, "parent", started)
            return child.id
        time.sleep(0.05)
    raise TimeoutError(f"child {child.id} did not run within {timeout}s")


@app.task(base=PipelineTask, bind=True, name="lockprobes.flaky", max_retries=2,
          backoff=0.05, jitter=False)
def flaky(self: Any, fail_times: int, tag: str = "") -> str:
    """Fail the first *fail_times* attempts (counted across requeues), then succeed."""
    started = time.time()
    _record(self, tag, started)
    if _client().incr(f"lockprobe:attempts:{self.request.id}") <= fail_times:
        raise RuntimeError(f"attempt failed on purpose ({tag})")
    return tag


@app.task(base=PipelineTask, bind=True, name="lockprobes.retry_step")
def retry_step(self: Any, countdown: float, tag: str = "") -> str:
    """A workflow step that asks for one retry itself (``self.retry``) after *countdown* s."""
    started = time.time()
    _record(self, tag, started)
    if self.request.retries < 1:
        raise self.retry(countdown=countdown)
    return tag


@app.task(base=PipelineTask, bind=True, name="lockprobes.spawn_until_dead")
def spawn_until_dead(self: Any, child_models: list[str], timeout: float = 20.0) -> str:
    """Publish a child that fails every attempt and hold until it is dead-lettered."""
    from pipeline.actions import deadletters

    child = flaky.apply_async((100, "child"), models=child_models)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if any(d.job_id == child.id for d in deadletters.list_dead(services_for(app))):
            return str(child.id)
        time.sleep(0.05)
    raise TimeoutError(f"child {child.id} was not dead-lettered within {timeout}s")
