"""The reference agent (``pipeline agent``): claim a pool's jobs over HTTP and run them.

Each job runs as a command (the job as JSON on its stdin, its stdout as the
result, its exit code as success) or through a Python handler
(``module:function``, called with the job as a dict). While it runs the agent
sends a heartbeat every third of the lease; a heartbeat refused (the lease ran
out, the job was cancelled) stops the work. Stopping the agent (SIGTERM,
Ctrl-C) stops the work too and gives the job back to its pool at once, so
another agent runs it without waiting for the lease to run out.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import signal
import socket
import subprocess
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.remote.client import Answer, ApiClient, ApiUnreachable

logger = logging.getLogger(__name__)
#: What the command's stdin gets (the lease stays with the agent).
JOB_FIELDS = ("id", "task", "args", "kwargs", "priority", "resources", "attempt", "pool",
              "workflow", "fencing_token")
#: The most of a failed command's stderr sent as its error.
ERROR_TAIL = 4000
#: Seconds an outcome is sent again while the API does not answer.
REPORT_PATIENCE = 300.0


def default_agent_id() -> str:
    """``host-pid``: unique on a host, readable in the store."""
    return f"{socket.gethostname()}-{os.getpid()}"


def load_handler(path: str) -> Callable[[dict[str, Any]], Any]:
    """The function ``module:function`` names.

    Raises:
        ValueError: *path* is not ``module:function`` or names nothing callable.
    """
    module, sep, name = path.partition(":")
    if not sep or not module or not name:
        raise ValueError(f"handler={path!r} is not accepted: expected module:function")
    found = getattr(importlib.import_module(module), name, None)
    if not callable(found):
        raise ValueError(f"handler={path!r} is not accepted: {module} has no function {name}")
    return found  # type: ignore[no-any-return]


class Work:
    """One job being run: a command or a handler."""

    outcome: tuple[bool, Any, str | None] | None = None

    def done(self) -> bool:
        """Whether it ended (its outcome is set)."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop it (the job is given back or was taken away)."""


class CommandWork(Work):
    """A command: the job as JSON on stdin; stdout is the result, the exit code success."""

    def __init__(self, command: Sequence[str], job: dict[str, Any]) -> None:
        env = {**os.environ, "PIPELINE_JOB_ID": str(job["id"]),
               "PIPELINE_FENCING_TOKEN": str(job.get("fencing_token", ""))}
        self.process = subprocess.Popen(
            list(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=env, start_new_session=True)
        self._reader = threading.Thread(target=self._communicate,
                                        args=(json.dumps(job).encode(),), daemon=True)
        self._reader.start()

    def _communicate(self, data: bytes) -> None:
        out, err = self.process.communicate(data)
        text = out.decode("utf-8", "replace").strip()
        try:
            result: Any = json.loads(text) if text else None
        except ValueError:
            result = text
        if self.process.returncode == 0:
            self.outcome = (True, result, None)
        else:
            tail = err.decode("utf-8", "replace").strip()[-ERROR_TAIL:]
            self.outcome = (False, f"exit code {self.process.returncode}"
                            + (f": {tail}" if tail else ""), tail or None)

    def done(self) -> bool:
        return not self._reader.is_alive()

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
        self._reader.join(5)


class HandlerWork(Work):
    """A Python function called with the job (a daemon thread: it cannot be stopped)."""

    def __init__(self, handler: Callable[[dict[str, Any]], Any], job: dict[str, Any]) -> None:
        self._thread = threading.Thread(target=self._call, args=(handler, job), daemon=True)
        self._thread.start()

    def _call(self, handler: Callable[[dict[str, Any]], Any], job: dict[str, Any]) -> None:
        try:
            self.outcome = (True, handler(job), None)
        except Exception as exc:
            self.outcome = (False, f"{type(exc).__name__}: {exc}", traceback.format_exc())

    def done(self) -> bool:
        return not self._thread.is_alive()


@dataclass
class Agent:
    """One agent of one pool.

    Attributes:
        client: the API client (its ``stopping`` event stops the agent).
        pool: the pool it claims from.
        agent_id: its name (the store records it on each job).
        command: the command a job runs, or None with a *handler*.
        handler: the function a job runs, or None with a *command*.
        wait: seconds one claim waits for a job (long poll).
        retry: ask for a retry when a job fails (the task's policy decides).
        max_jobs: stop after this many jobs (0: never).
    """

    client: ApiClient
    pool: str
    agent_id: str
    command: Sequence[str] | None = None
    handler: Callable[[dict[str, Any]], Any] | None = None
    wait: float = 20.0
    retry: bool = True
    max_jobs: int = 0
    ran: int = field(default=0, init=False)

    @property
    def stopping(self) -> threading.Event:
        """Set to stop: the running job is given back, then :meth:`run` returns."""
        return self.client.stopping

    def run(self) -> int:
        """Claim and run jobs until stopped (or *max_jobs* ran); the exit code."""
        logger.info("agent %s of pool %s: claiming from %s", self.agent_id, self.pool,
                    self.client.base_url)
        while not self.stopping.is_set():
            try:
                answer = self.client.post("/api/agents/claim", {
                    "agent_id": self.agent_id, "pool": self.pool, "wait": self.wait},
                    timeout=self.wait + 30)
            except ApiUnreachable:
                continue
            if answer.status == 204:
                continue
            if answer.status != 200:
                logger.error("claim refused: HTTP %s %s", answer.status, _detail(answer))
                return 1
            self.run_job(answer.body)
            self.ran += 1
            if self.max_jobs and self.ran >= self.max_jobs:
                break
        logger.info("agent %s stopped after %d job(s)", self.agent_id, self.ran)
        return 0

    def run_job(self, job: dict[str, Any]) -> None:
        """Start, run with heartbeats, then report one claimed job (or give it back)."""
        job_id, lease = str(job["id"]), {"lease": job["lease"]}
        if self.stopping.is_set():
            self._give_back(job_id, lease, "its agent was stopping when it claimed the job")
            return
        if not self._call(job_id, "start", lease, float(job["lease_seconds"])):
            return
        logger.info("job %s (%s): started", job_id, job.get("task"))
        visible = {name: job.get(name) for name in JOB_FIELDS}
        work: Work = (HandlerWork(self.handler, visible) if self.handler is not None
                      else CommandWork(self.command or (), visible))
        interval = max(float(job["lease_seconds"]) / 3, 0.2)
        next_beat = time.monotonic() + interval
        while not work.done():
            if self.stopping.is_set():
                work.stop()
                self._give_back(job_id, lease, f"its agent {self.agent_id} was stopped")
                return
            if time.monotonic() >= next_beat:
                if not self._call(job_id, "heartbeat", lease, float(job["lease_seconds"])):
                    work.stop()
                    return
                next_beat = time.monotonic() + interval
            self.stopping.wait(min(0.1, interval))
        self._report(job_id, lease, work)

    def _report(self, job_id: str, lease: dict[str, Any], work: Work) -> None:
        ok, value, trace = work.outcome or (False, "the job ended without an outcome", None)
        if ok:
            self._call(job_id, "complete", {**lease, "result": value}, REPORT_PATIENCE)
            logger.info("job %s: completed", job_id)
        else:
            self._call(job_id, "fail", {**lease, "error": str(value)[:10_000],
                                        "retry": self.retry, "traceback": trace},
                       REPORT_PATIENCE)
            logger.info("job %s: failed: %s", job_id, str(value)[:200])

    def _give_back(self, job_id: str, lease: dict[str, Any], reason: str) -> None:
        try:
            answer = self.client.post(f"/api/agents/jobs/{job_id}/release",
                                      {**lease, "reason": reason}, give_up_after=20,
                                      while_stopping=True)
        except ApiUnreachable:
            logger.warning("job %s could not be given back: its lease gives it back", job_id)
            return
        logger.info("job %s given back (HTTP %s)", job_id, answer.status)

    def _call(self, job_id: str, what: str, body: dict[str, Any],
              patience: float) -> bool:
        """POST one report; False when the job is no longer this agent's (or unreachable)."""
        try:
            answer = self.client.post(f"/api/agents/jobs/{job_id}/{what}", body,
                                      give_up_after=patience,
                                      while_stopping=what in ("complete", "fail"))
        except ApiUnreachable as exc:
            logger.warning("job %s: %s not sent (%s)", job_id, what, exc)
            return False
        if answer.status == 200:
            return True
        logger.warning("job %s: %s refused: HTTP %s %s", job_id, what, answer.status,
                       _detail(answer))
        return False


def _detail(answer: Answer) -> str:
    body = answer.body
    return str(body.get("detail", "")) if isinstance(body, dict) else ""
