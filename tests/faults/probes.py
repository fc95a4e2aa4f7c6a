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
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(min(0.05, max(deadline - time.monotonic(), 0.0)))
    _mark(self, "end", tag, lost=lease_lost())
    return tag


@app.task(base=PipelineTask, bind=True, name="faults.poison")
def poison(self: Any, tag: str = "") -> str:
    """Kill the process running it, every time (a job that runs out of memory)."""
    _mark(self, "start", tag)
    os.kill(os.getpid(), signal.SIGKILL)
    return tag  # never reached
