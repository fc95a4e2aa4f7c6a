"""The job store under load: a ``pipeline recorder`` process, its lag, a throwaway database.

:class:`RecorderProcess` runs ``python -m pipeline -A tasks.app recorder --upgrade
--report 0`` (it nices itself) on the benchmark Redis and a store URL.
:class:`LagSampler` reads, every 100 ms, the age of the oldest event of the
stream not yet recorded: the oldest entry pending in the ``pipeline-recorder``
group (delivered, not yet written and acknowledged), else the first entry after
the group's last-delivered id (present while the stream's last-generated id is
ahead of it). Stream ids are millisecond timestamps of the Redis clock.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

import redis

from bench.errors import BenchError
from bench.harness import REPO
from bench.lockbench import cpu_seconds

GROUP = "pipeline-recorder"
STREAM = "{pipeline}:events"
#: Where a PostgreSQL store is created (a fresh database per phase, dropped after).
POSTGRES_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL",
                                    "postgresql://postgres@127.0.0.1:5432/test")
_NUMBERS = itertools.count(1)


def _ms(stream_id: Any) -> int:
    text = stream_id.decode() if isinstance(stream_id, bytes) else str(stream_id)
    return int(text.split("-", 1)[0])


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def recorder_lag(client: redis.Redis, stream: str = STREAM, group: str = GROUP) -> float:
    """Seconds since the oldest event not yet recorded was written (0 when none is left)."""
    now = time.time()
    try:
        groups: Any = client.xinfo_groups(stream)
    except redis.ResponseError:
        return 0.0  # no stream yet: nothing emitted
    found = [g for g in groups if _text(g["name"]) == group]
    oldest: list[int] = []
    if found:
        pending: Any = client.xpending(stream, group)
        if pending["pending"]:
            oldest.append(_ms(pending["min"]))
        start = "(" + _text(found[0]["last-delivered-id"])
    else:
        start = "-"
    after: Any = client.xrange(stream, min=start, max="+", count=1)
    if after:
        oldest.append(_ms(after[0][0]))
    return max(0.0, now - min(oldest) / 1000.0) if oldest else 0.0


class LagSampler(threading.Thread):
    """Samples :func:`recorder_lag` every *interval* seconds until :meth:`stop`."""

    def __init__(self, redis_url: str, interval: float = 0.1) -> None:
        super().__init__(name="lag-sampler", daemon=True)
        self.client = redis.Redis.from_url(redis_url)
        self.interval = interval
        self.samples: list[tuple[float, float]] = []
        self._stopping = threading.Event()

    def run(self) -> None:
        """Sample until stopped."""
        while not self._stopping.is_set():
            self.samples.append((time.time(), recorder_lag(self.client)))
            self._stopping.wait(self.interval)

    def stop(self) -> None:
        """Stop sampling."""
        self._stopping.set()
        if self.is_alive():
            self.join(5)

    def between(self, start: float, end: float) -> list[float]:
        """Lags (s) sampled from *start* to *end* (seconds since the epoch)."""
        return [lag for at, lag in list(self.samples) if start <= at <= end]

    def caught_up(self, since: float, timeout: float = 600.0) -> float:
        """Seconds from *since* to the first sample after it with nothing left to record."""
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            samples = list(self.samples)
            for at, lag in samples[seen:]:
                if at >= since and lag == 0.0:
                    return max(0.0, at - since)
            seen = len(samples)
            time.sleep(self.interval)
        raise BenchError(f"the recorder did not catch up within {timeout:.0f} s")


class RecorderProcess:
    """``pipeline recorder`` as a subprocess in its own process group."""

    def __init__(self, workdir: Path, store_url: str) -> None:
        self.store_url = store_url
        self.log_path = workdir / f"recorder-{next(_NUMBERS)}.log"
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, client: redis.Redis, timeout: float = 60.0) -> RecorderProcess:
        """Start it and wait until its consumer group exists."""
        env = {**os.environ, "PIPELINE_DATABASE_URL": self.store_url, "PYTHONPATH": str(REPO)}
        cmd = [sys.executable, "-m", "pipeline", "-A", "tasks.app", "recorder", "--upgrade",
               "--report", "0"]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(cmd, cwd=self.workdir, env=env,
                                            stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not self._group_exists(client):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"the recorder did not start{self.log_tail()}")
            time.sleep(0.1)
        return self

    def cpu_seconds(self) -> float:
        """CPU seconds the recorder used so far (0 once stopped)."""
        return cpu_seconds(self.process.pid) if self.process is not None else 0.0

    @staticmethod
    def _group_exists(client: redis.Redis) -> bool:
        try:
            groups: Any = client.xinfo_groups(STREAM)
        except redis.ResponseError:
            return False
        return any(_text(g["name"]) == GROUP for g in groups)

    def log_tail(self, lines: int = 20) -> str:
        """The end of its log."""
        try:
            text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return "\n--- recorder log ---\n" + "\n".join(text)

    def stop(self) -> None:
        """SIGTERM its process group (it finishes its batch), SIGKILL after 10 s."""
        process, self.process = self.process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


@contextlib.contextmanager
def postgres_database(admin_url: str = POSTGRES_ADMIN_URL) -> Iterator[str]:
    """A new, empty PostgreSQL database for one phase; yields its SQLAlchemy URL, drops it after."""
    import psycopg
    from psycopg import sql

    name = f"bench_locks_{os.getpid()}_{next(_NUMBERS)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    parts = urlparse(admin_url)
    url = urlunparse(parts._replace(scheme="postgresql+psycopg", path=f"/{name}"))
    try:
        yield url
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                         .format(sql.Identifier(name)))
