"""Fixtures of the admission tests: the lock family's database and app, real workers."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from tests.helpers.workers import SubprocessWorker
from tests.integration.locks.conftest import (  # noqa: F401 -- fixtures used here
    broker_url,
    lock_redis,
    make_locks,
    pipeline_app,
)


@pytest.fixture
def start_workers(broker_url: str, tmp_path: Any) -> Iterator[Callable[..., SubprocessWorker]]:  # noqa: F811
    """Start real workers (``pipeline_<name>`` settings as keywords); stopped at the end."""
    started: list[SubprocessWorker] = []

    def start(concurrency: int = 2, pool: str = "prefork", include: Sequence[str] = (),
              **settings: Any) -> SubprocessWorker:
        env = {"PIPELINE_STORE_ENABLED": "false",
               **{f"PIPELINE_{k.upper()}": str(v) for k, v in settings.items()}}
        # One -I with every module: celery worker keeps only the last -I it is given.
        modules = ",".join(("tests.tasks.lockprobes", *include))
        worker = SubprocessWorker(broker_url, tmp_path, name=f"w{len(started) + 1}",
                                  concurrency=concurrency, pool=pool, include=(modules,), env=env)
        started.append(worker)
        return worker.start()

    yield start
    for worker in started:
        worker.stop()


@contextlib.contextmanager
def cpu_burner(processes: int | None = None) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Keep every core busy (niced, so the worker and Redis still get their turn)."""
    count = processes or os.cpu_count() or 1
    code = "import os\nos.nice(19)\nwhile True:\n    pass\n"
    burners = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(count)]
    try:
        yield burners
    finally:
        for burner in burners:
            burner.kill()
        for burner in burners:
            burner.wait()
