"""``pipeline up`` restarts its worker when it dies, as systemd's ``Restart=on-failure`` would."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import psutil
import pytest

from tests.system.test_embedded import Up, data_dir, publish_probe, wait_for_probe

pytestmark = pytest.mark.system
__all__ = ["data_dir"]  # the fixture, shared with test_embedded


def worker_leader(up: Up) -> psutil.Process:
    """The worker's main process (a direct child of ``pipeline up``)."""
    for proc in psutil.Process(up.process.pid).children():
        if " worker " in " ".join(proc.cmdline()):
            return proc
    raise AssertionError(f"no worker under pipeline up:\n{up.output()}")


def test_up_starts_its_worker_again_when_it_is_killed_and_jobs_run_on(
        data_dir: Path, tmp_path: Path) -> None:
    up = Up(data_dir, tmp_path / "up.log")
    try:
        url = up.wait_ready()
        killed = worker_leader(up)
        killed.send_signal(signal.SIGKILL)
        deadline = time.monotonic() + 60
        while "worker started again" not in up.output():
            assert up.process.poll() is None, f"pipeline up stopped:\n{up.output()}"
            assert time.monotonic() < deadline, up.output()
            time.sleep(0.2)
        assert f"worker (pid {killed.pid}) was killed by SIGKILL; starting it again" \
            in up.output()
        assert worker_leader(up).pid != killed.pid
        publish_probe(url, "after-restart", data_dir)
        wait_for_probe(url, "after-restart", timeout=60)
        assert up.terminate() == 0, up.output()
    finally:
        if up.process.poll() is None:
            up.process.kill()
