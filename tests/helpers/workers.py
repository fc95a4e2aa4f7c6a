"""A Celery worker as a real subprocess, for tests that need real processes.

``SubprocessWorker`` starts ``python -m celery -A tasks.app worker`` in its own
process group with a given environment, concurrency and pool, waits until it
says it is ready, and stops it (SIGTERM, then SIGKILL of the whole group) so no
pool process outlives the test::

    with SubprocessWorker(redis_url, tmp_path, concurrency=2) as worker:
        ...
        worker.pids()   # the worker and its pool processes
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import psutil

ROOT = Path(__file__).resolve().parents[2]


class SubprocessWorker:
    """``celery -A tasks.app worker`` as a child process in its own process group.

    Args:
        broker_url: the broker (``PIPELINE_BROKER_URL`` of the worker).
        log_dir: where ``<name>.log`` gets the worker's output.
        name: node name prefix and log file name.
        concurrency: pool processes.
        pool: ``prefork``, ``solo`` or ``threads``.
        queues: queues to consume.
        include: task modules to import besides the app's own.
        env: extra environment variables (``PIPELINE_LOCK_LEASE`` ...).
        extra: extra command-line arguments for ``celery worker``.
    """

    def __init__(self, broker_url: str, log_dir: Path, *, name: str = "worker",
                 concurrency: int = 1, pool: str = "prefork",
                 queues: Sequence[str] = ("pipeline",),
                 include: Sequence[str] = ("tests.tasks.probes",),
                 env: Mapping[str, str] | None = None, extra: Sequence[str] = ()) -> None:
        self.name = name
        self.log_path = Path(log_dir) / f"{name}.log"
        self.env = {**os.environ, "PIPELINE_BROKER_URL": broker_url,
                    "PYTHONUNBUFFERED": "1", **(env or {})}
        self.argv = [sys.executable, "-m", "celery", "-A", "tasks.app", "worker",
                     "--pool", pool, "-c", str(concurrency), "-Q", ",".join(queues),
                     "-n", f"{name}-{os.getpid()}@%h", "--loglevel", "INFO",
                     "--without-gossip", "--without-mingle", "--without-heartbeat"]
        if include:
            # One -I with every module: Celery keeps only the last of several.
            self.argv += ["-I", ",".join(include)]
        self.argv += list(extra)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> SubprocessWorker:
        """Start the worker and wait until it says it is ready.

        Raises:
            RuntimeError: it exited or was not ready in time (with its output).
        """
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(self.argv, cwd=ROOT, env=self.env,
                                            stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if b" ready." in self.log_path.read_bytes():
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"worker {self.name} did not become ready:\n{self.log()}")

    def log(self) -> str:
        """Everything the worker printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def pids(self) -> list[int]:
        """The worker's pid and its pool processes' pids."""
        if self.process is None or self.process.poll() is not None:
            return []
        try:
            leader = psutil.Process(self.process.pid)
            return [leader.pid] + [child.pid for child in leader.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def signal_group(self, sig: int) -> None:
        """Send *sig* to the worker's whole process group (``SIGKILL`` to crash it)."""
        if self.process is not None:
            os.killpg(self.process.pid, sig)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the worker (warm shutdown), then SIGKILL its whole group."""
        if self.process is None:
            return
        members = self.pids()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout)
        for pid in members:
            with contextlib.suppress(psutil.Error, ChildProcessError):
                psutil.Process(pid).wait(timeout)

    def __enter__(self) -> SubprocessWorker:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
