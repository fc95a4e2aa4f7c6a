"""``pipeline up`` on the embedded Redis: ready, runs jobs, stops everything, keeps the queue.

These tests start the real command in a subprocess with no broker configured
and a data directory of their own, then stop it with SIGTERM as an operator or
systemd would.
"""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import redis

from pipeline.runtime.embedded import URL_FILE, EmbeddedRedis
from tests.helpers.commands import CLI, ROOT, no_broker_env

pytestmark = pytest.mark.system

PROBE_KEY = "probe:embedded"
READY = re.compile(r"pipeline ready: broker (\S+)")


class Up:
    """A running ``pipeline up`` and what it printed."""

    def __init__(self, data_dir: Path, log: Path) -> None:
        self.log = log
        with open(log, "ab") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-c", CLI, "up", "-c", "1", "-I", "tests.tasks.probes"],
                cwd=ROOT, env=no_broker_env(data_dir), stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=err, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def wait_ready(self, timeout: float = 60.0) -> str:
        """The broker URL from the ready line."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                assert self.process.poll() is None, f"pipeline up exited:\n{self.output()}"
                continue
            found = READY.search(line)
            if found:
                return found.group(1)
        raise AssertionError(f"pipeline up not ready after {timeout} s:\n{self.output()}")

    def output(self) -> str:
        """What the command and its children wrote to stderr."""
        return self.log.read_text(errors="replace")

    def descendants(self) -> list[psutil.Process]:
        """Every process started under the command (Redis, worker, pool, beat)."""
        return psutil.Process(self.process.pid).children(recursive=True)

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM the command and wait for it to exit."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    """A data directory of the test's own; kills anything left behind afterwards."""
    directory = tmp_path / "data"
    yield directory
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(directory) in cmdline:
            proc.kill()


def alive(procs: list[psutil.Process]) -> list[str]:
    """The processes of *procs* still running (zombies count as gone)."""
    left = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                left.append(f"{proc.pid} {' '.join(proc.cmdline())[:120]}")
        except psutil.NoSuchProcess:
            continue
    return left


def publish_probe(broker_url: str, label: str, data_dir: Path) -> None:
    """Queue one probe job on *broker_url* from a separate client process."""
    code = ("from tests.tasks.probes import record; "
            f"record.apply_async(({PROBE_KEY!r}, {label!r}), priority='normal')")
    env = {**no_broker_env(data_dir), "PIPELINE_BROKER_URL": broker_url}
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=60)


def wait_for_probe(broker_url: str, label: str, timeout: float = 30.0) -> None:
    client = redis.Redis.from_url(broker_url)
    deadline = time.monotonic() + timeout
    try:
        while label.encode() not in client.lrange(PROBE_KEY, 0, -1):
            assert time.monotonic() < deadline, f"job {label} did not run within {timeout} s"
            time.sleep(0.1)
    finally:
        client.close()


def stop_and_check_nothing_left(up: Up) -> None:
    procs = up.descendants()
    names = " ".join(" ".join(p.cmdline()) for p in procs)
    assert "redis-server" in names or "valkey-server" in names, names
    assert " worker " in names and " beat " in names, names
    assert up.terminate() == 0, up.output()
    deadline = time.monotonic() + 15
    while alive(procs) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(procs), f"left behind after SIGTERM: {alive(procs)}"


def test_up_runs_a_job_and_sigterm_leaves_no_process_behind(
        data_dir: Path, tmp_path: Path) -> None:
    up = Up(data_dir, tmp_path / "up.log")
    try:
        url = up.wait_ready()
        assert url.startswith("redis://127.0.0.1:")
        assert (data_dir / URL_FILE).read_text().strip() == url
        publish_probe(url, "first", data_dir)
        wait_for_probe(url, "first")

        second = subprocess.run([sys.executable, "-c", CLI, "up"], cwd=ROOT,
                                env=no_broker_env(data_dir), capture_output=True, text=True,
                                timeout=60)
        assert second.returncode != 0
        assert "already running" in second.stderr, second.stderr

        stop_and_check_nothing_left(up)
        assert not (data_dir / URL_FILE).exists()
    finally:
        if up.process.poll() is None:
            up.process.kill()


def test_job_queued_while_everything_was_stopped_runs_after_restart(
        data_dir: Path, tmp_path: Path) -> None:
    with EmbeddedRedis(str(data_dir)) as server:
        publish_probe(server.url, "queued-while-down", data_dir)
    assert not (data_dir / URL_FILE).exists()

    up = Up(data_dir, tmp_path / "up.log")
    try:
        url = up.wait_ready()
        wait_for_probe(url, "queued-while-down")
        stop_and_check_nothing_left(up)
    finally:
        if up.process.poll() is None:
            up.process.kill()


def test_children_stop_on_their_own_when_up_is_killed(data_dir: Path, tmp_path: Path) -> None:
    up = Up(data_dir, tmp_path / "up.log")
    try:
        up.wait_ready()
        procs = up.descendants()
        assert len(procs) >= 4, procs  # Redis, worker, its pool process, beat
        up.process.kill()
        up.process.wait(10)
        deadline = time.monotonic() + 30
        while alive(procs) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not alive(procs), f"left behind after SIGKILL of pipeline up: {alive(procs)}"
    finally:
        if up.process.poll() is None:
            up.process.kill()
