"""Real worker processes for the lock tests: started, stopped, killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[3]


class WorkerProcess:
    """``celery -A tasks.app worker`` in its own process group."""

    def __init__(self, broker_url: str, log_dir: Path, *, name: str = "w1",
                 concurrency: int = 2, pool: str = "prefork", **settings: Any) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self.env = {**os.environ, "PIPELINE_BROKER_URL": broker_url,
                    "PIPELINE_STORE_ENABLED": "false",
                    **{f"PIPELINE_{k.upper()}": str(v) for k, v in settings.items()}}
        self.args = [sys.executable, "-m", "celery", "-A", "tasks.app", "worker",
                     "-P", pool, "-c", str(concurrency), "-n", f"{name}@%h", "-l", "INFO",
                     "--without-gossip", "--without-mingle", "--without-heartbeat"]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> WorkerProcess:
        """Start and wait until the worker says it is ready."""
        log = open(self.log_path, "wb")  # noqa: SIM115 - the child writes to it
        self.proc = subprocess.Popen(self.args, cwd=ROOT, env=self.env, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if b" ready." in self.log_path.read_bytes():
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"worker {self.name} did not start:\n{self.log()}")

    def log(self) -> str:
        """Everything the worker printed."""
        return self.log_path.read_text(errors="replace")

    def children(self) -> list[psutil.Process]:
        """The pool processes (prefork children)."""
        assert self.proc is not None
        return psutil.Process(self.proc.pid).children()

    def signal_all(self, sig: int) -> None:
        """Send *sig* to the worker's whole process group."""
        assert self.proc is not None
        os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 15.0) -> None:
        """TERM the process group, then KILL what is left."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        except ProcessLookupError:
            pass
