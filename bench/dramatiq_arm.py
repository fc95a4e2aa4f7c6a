"""Dramatiq's worker as one arm of the one-model comparison (``bench/dramatiq_jobs.py``).

Optional: without Dramatiq installed (``pip install -e '.[bench]'``) the arm is
skipped and the report says so (:func:`missing`).
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis

from bench.errors import BenchError
from bench.lockbench import Span

REPO = Path(__file__).resolve().parent.parent
SKIPPED = ("Dramatiq is not installed: the arm is skipped "
           "(pip install -e '.[bench]' installs it)")


def missing() -> str | None:
    """Why the Dramatiq arm cannot run, or None when it can."""
    if importlib.util.find_spec("dramatiq") is None:
        return SKIPPED
    return None


class DramatiqWorker:
    """``dramatiq bench.dramatiq_jobs --processes 2 --threads 1`` in its own process group."""

    def __init__(self, workdir: Path, client: redis.Redis, processes: int = 2) -> None:
        self.workdir = workdir
        self.client = client
        self.processes = processes
        self.log_path = workdir / "dramatiq.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._spans = 0

    def start(self, warm_jobs: int = 20) -> DramatiqWorker:
        """Start the worker and run *warm_jobs* zero-length jobs through it."""
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        from bench import dramatiq_jobs

        command = [sys.executable, "-m", "dramatiq", "bench.dramatiq_jobs", "--processes",
                   str(self.processes), "--threads", "1", "--queues", dramatiq_jobs.QUEUE]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(command, cwd=self.workdir, env=env,
                                            stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        self.run(warm_jobs, 0.0, timeout=90.0)
        return self

    def run(self, jobs: int, seconds: float, *, timeout: float = 120.0
            ) -> tuple[list[Span], int]:
        """Publish *jobs* jobs of *seconds* and wait for them; their spans and the retries."""
        from bench import dramatiq_jobs

        self._spans += 1
        key = f"bench:dramatiq:spans:{self._spans}"
        self.client.delete(key, dramatiq_jobs.RETRIES_KEY)
        for _ in range(jobs):
            dramatiq_jobs.timed.send(seconds, key)
        deadline = time.monotonic() + timeout
        last, last_change = 0, time.monotonic()
        while (done := int(self.client.llen(key))) < jobs:
            self.check_alive()
            if done != last:
                last, last_change = done, time.monotonic()
            if time.monotonic() > deadline or time.monotonic() - last_change > 60:
                raise BenchError(f"dramatiq: {done} of {jobs} jobs ran{self.log_tail()}")
            time.sleep(0.05)
        raw: Any = self.client.lrange(key, 0, -1)
        spans = [Span(s, e, e) for s, e in (json.loads(item) for item in raw)]
        retries = int(self.client.get(dramatiq_jobs.RETRIES_KEY) or 0)
        self.client.delete(key)
        return spans, retries

    def check_alive(self) -> None:
        """Raise if the worker exited."""
        if self.process is not None and self.process.poll() is not None:
            raise BenchError(f"dramatiq worker exited with {self.process.returncode}"
                             f"{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        """The end of the worker's log, for an error message."""
        try:
            text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return "\n" + "\n".join(text)

    def stop(self) -> None:
        """Stop the process group (SIGTERM, then SIGKILL after 10 s)."""
        if self.process is None:
            return
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        self.process = None
