"""Real worker processes to break: start them, kill a pool process or a whole worker, replace.

Each worker is a :class:`tests.helpers.workers.SubprocessWorker` running the
fault probes (:mod:`tests.faults.probes`) against the fault suite's broker,
with the pipeline settings the scenario gives (``lock_lease=2`` sets
``PIPELINE_LOCK_LEASE``). A worker may run on one of several "hosts"
(:mod:`tests.faults.netns`) of a scale-out run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil

from tests.faults.netns import Host
from tests.faults.probes import LOG_VAR
from tests.helpers.workers import SubprocessWorker

PROBES = "tests.faults.probes"


class Fleet:
    """The workers of one fault scenario; all are stopped at the end."""

    def __init__(self, broker_url: str, directory: Path, log_path: Path,
                 settings: Mapping[str, Any] | None = None, concurrency: int = 2,
                 hosts: list[Host] | None = None) -> None:
        self.broker_url = broker_url
        self.directory = Path(directory)
        self.log_path = log_path
        self.settings = dict(settings or {})
        self.concurrency = concurrency
        self.hosts = list(hosts or [])
        self.workers: list[SubprocessWorker] = []
        #: The host each worker runs on (when the fleet has hosts).
        self.placement: dict[int, Host] = {}
        #: Every SIGKILL the scenario sent: the processes killed and when (``time.time()``).
        self.kills: list[tuple[frozenset[int], float]] = []
        self._started = 0

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of a worker: broker, fault log, store off, settings."""
        # The load gate is off: on a busy test machine it would pause the workers
        # being measured (it is tested on its own).
        env = {LOG_VAR: str(self.log_path), "PIPELINE_STORE_ENABLED": "false",
               "PIPELINE_RESULT_BACKEND": self.broker_url, "PIPELINE_LOAD_GATE": "false"}
        env.update({k.upper() if k.startswith("PIPELINE_") else f"PIPELINE_{k.upper()}": str(v)
                    for k, v in self.settings.items()})
        env.update(extra or {})
        return env

    def add(self, concurrency: int | None = None, *, name: str | None = None,
            env: Mapping[str, str] | None = None, host: Host | None = None,
            pool: str = "prefork") -> SubprocessWorker:
        """Start one more worker and wait until it is ready.

        With hosts, a worker goes to *host*, else to the next host in turn.
        """
        self._started += 1
        if host is None and self.hosts:
            host = self.hosts[(self._started - 1) % len(self.hosts)]
        url, extra = self.broker_url, dict(env or {})
        if host is not None:
            url = host.broker_url(int(self.broker_url.rsplit(":", 1)[1].split("/")[0]))
            extra.setdefault("PIPELINE_FAULT_HOST", host.name)
        worker = SubprocessWorker(url, self.directory, name=name or f"fw{self._started}",
                                  concurrency=concurrency or self.concurrency, pool=pool,
                                  include=(PROBES,),
                                  env={**self.env(extra), "PIPELINE_RESULT_BACKEND": url})
        if host is not None and host.netns:
            worker.argv = ["ip", "netns", "exec", host.netns, *worker.argv]
            self.placement[id(worker)] = host
        elif host is not None:
            self.placement[id(worker)] = host
        self.workers.append(worker)
        return worker.start(timeout=60)

    def host_of(self, worker: SubprocessWorker) -> Host | None:
        """The host *worker* runs on."""
        return self.placement.get(id(worker))

    @staticmethod
    def children(worker: SubprocessWorker) -> list[int]:
        """The pool processes of *worker*."""
        return worker.pids()[1:]

    def kill(self, worker: SubprocessWorker) -> float:
        """Kill the whole worker (its main process and its pool) with SIGKILL; returns when."""
        members = worker.pids()
        worker.signal_group(signal.SIGKILL)
        killed_at = time.time()
        self.kills.append((frozenset(members), killed_at))
        for pid in members:
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).wait(10)
        if worker.process is not None:
            worker.process.wait(10)
        self.workers.remove(worker)
        return killed_at

    def kill_process(self, pid: int) -> float:
        """SIGKILL one process (a pool process running a job); returns when."""
        os.kill(pid, signal.SIGKILL)
        killed_at = time.time()
        self.kills.append((frozenset({pid}), killed_at))
        return killed_at

    def stop(self) -> None:
        """Stop every worker still running."""
        for worker in self.workers:
            # The scenario is over: what still runs is a probe, no warm shutdown to wait for.
            with contextlib.suppress(Exception):
                worker.signal_group(signal.SIGKILL)
            with contextlib.suppress(Exception):
                worker.stop(timeout=3.0)
        self.workers.clear()

    def logs(self) -> str:
        """The tail of every worker's log (to explain a failure)."""
        tails = []
        for path in sorted(self.directory.glob("*.log")):
            tails.append(f"--- {path.name}\n" + "\n".join(
                path.read_text(errors="replace").splitlines()[-30:]))
        return "\n".join(tails)

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
