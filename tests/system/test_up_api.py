"""``pipeline up --api``: one flag adds the REST API, dashboard and metrics to the system."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers.browser import free_port
from tests.helpers.commands import CLI, ROOT, no_broker_env
from tests.system.test_embedded import READY, alive
from tests.system.test_embedded import data_dir as data_dir

pytestmark = pytest.mark.system


def test_up_with_api_serves_the_api_and_stops_it_on_sigterm(
        data_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    env = {**no_broker_env(data_dir), "PIPELINE_API_PORT": str(port)}
    log = tmp_path / "up.log"
    with open(log, "wb") as err:
        process = subprocess.Popen([sys.executable, "-c", CLI, "up", "-c", "1", "--api"],
                                   cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert READY.search(line), f"{line}\n{log.read_text()}"
        assert "API" in line
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/healthz", timeout=5).json() == {"status": "ok"}
        status = httpx.get(f"{base}/api/status", timeout=5)  # no token configured: local
        assert status.status_code == 200 and status.json()["parked"] == 0
        assert "celery_queue_length" in httpx.get(f"{base}/metrics", timeout=5).text
        import psutil

        children = psutil.Process(process.pid).children(recursive=True)
        assert any(" api" in " ".join(p.cmdline()) for p in children)
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(60)
    assert code == 0, log.read_text()
    deadline = time.monotonic() + 15
    while alive(children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(children)
