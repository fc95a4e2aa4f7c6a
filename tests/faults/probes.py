"""Jobs of the fault suite: they record each run in a file, never in the Redis being broken.

Every run appends two JSON lines to the file named by ``$PIPELINE_FAULT_LOG``
(one write each, so lines of concurrent processes never interleave): ``start``
when the body begins and ``end`` when it returns. A run killed in between
leaves only its ``start``. See :mod:`tests.faults.ledger` for reading them.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from typing import Any

import redis
from celery.exceptions import Ignore, Reject, SoftTimeLimitExceeded

from pipeline import PipelineTask, fencing_tokens, lease_lost
from tasks.app import app

LOG_VAR = "PIPELINE_FAULT_LOG"
HOST = socket.gethostname()


def write(record: dict[str, Any]) -> None:
    """Append one record to the fault log (a no-op when the variable is unset)."""
    path = os.environ.get(LOG_VAR)
    if not path:
        return
    line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def _mark(task: Any, event: str, tag: str, **extra: Any) -> int:
    """Record a start or an end; returns which run of the job this is (1 = its first)."""
    request = task.request
    runs = 1
    path = os.environ.get(LOG_VAR)
    if path and event == "start":
        # One byte per start in a file of the job's own: its size counts the runs.
        folder = f"{path}.runs"
        os.makedirs(folder, exist_ok=True)
        marker = os.path.join(folder, request.id)
        fd = os.open(marker, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, b".")
        finally:
            os.close(fd)
        runs = os.path.getsize(marker)
    write({"id": request.id, "tag": tag, "event": event, "t": time.time(), "pid": os.getpid(),
           "host": os.environ.get("PIPELINE_FAULT_HOST") or HOST,
           "tokens": fencing_tokens(), "attempt": (request.retries or 0) + 1,
           "redelivered": bool((request.delivery_info or {}).get("redelivered")), **extra})
    return runs


@app.task(base=PipelineTask, bind=True, name="faults.work")
def work(self: Any, seconds: float = 0.0, tag: str = "", rerun_seconds: float | None = None) -> str:
    """Run for *seconds* (sleeping), recording the start and the end.

    A run after the first (the first was cut short) runs *rerun_seconds*
    instead, when given.
    """
    if _mark(self, "start", tag) > 1 and rerun_seconds is not None:
        seconds = rerun_seconds
    _sleep(seconds)
    _mark(self, "end", tag, lost=lease_lost())
    return tag


@app.task(base=PipelineTask, bind=True, name="faults.poison")
def poison(self: Any, tag: str = "") -> str:
    """Kill the process running it, every time (a job that runs out of memory)."""
    _mark(self, "start", tag)
    os.kill(os.getpid(), signal.SIGKILL)
    return tag  # never reached


def _sleep(seconds: float) -> None:
    """Sleep *seconds* of monotonic time (a stopped process wakes past its deadline at once)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(min(0.05, max(deadline - time.monotonic(), 0.0)))


@app.task(base=PipelineTask, bind=True, name="faults.end", max_retries=1, backoff=0.1,
          jitter=False)
def end(self: Any, how: str, tag: str = "") -> str:
    """End through one of Celery's unusual paths: retry, ignore, reject, raise, or sleep on
    (for a soft time limit to end it, or, stubborn, the hard one)."""
    _mark(self, "start", tag)
    if how == "retry" and not self.request.retries:
        raise self.retry(countdown=0.1)
    if how == "ignore":
        raise Ignore()
    if how == "reject":
        raise Reject("rejected on purpose", requeue=False)
    if how == "raise":
        raise KeyError("failed on purpose")  # retried once, then dead-lettered
    if how == "sleep":
        _sleep(30.0)
    if how == "stubborn":  # outlives its soft time limit: the hard one kills its process
        try:
            _sleep(30.0)
        except SoftTimeLimitExceeded:
            _sleep(30.0)
    _mark(self, "end", tag)
    return how


GUARDED_WRITE = """
local seen = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) < seen then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""


@app.task(base=PipelineTask, bind=True, name="faults.fenced")
def fenced(self: Any, before: float, after: float, tag: str, store: str) -> bool:
    """Hold for *before* s, write to *store* guarded by the fencing token, hold *after* s.

    The store refuses a write whose token is lower than one it has seen: a
    holder whose lease ran out (another holder wrote since) cannot overwrite.
    """
    _mark(self, "start", tag)
    _sleep(before)
    token = max(fencing_tokens().values(), default=0)
    client = redis.Redis.from_url(os.environ["PIPELINE_BROKER_URL"])
    wrote = bool(client.eval(GUARDED_WRITE, 1, store, token))
    client.close()
    _sleep(after)
    _mark(self, "end", tag, lost=lease_lost(), wrote=wrote, token=token)
    return wrote


@app.task(base=PipelineTask, bind=True, name="faults.step")
def step(self: Any, previous: Any, seconds: float, tag: str) -> str:
    """One step of a workflow: run *seconds*, pass the tags along."""
    _mark(self, "start", tag)
    _sleep(seconds)
    _mark(self, "end", tag)
    return f"{previous}>{tag}" if previous else tag
