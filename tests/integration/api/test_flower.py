"""``pipeline flower``: basic auth, a refusal to listen beyond loopback without it, and a
parked job shown BLOCKED with its reason, then SUCCESS."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from pipeline import explain
from pipeline.cli.main import cli
from tests.helpers.browser import free_port
from tests.helpers.workers import ROOT
from tests.integration.api.conftest import wait_for

CREDENTIALS = ("operator", "flower-secret-42")


@pytest.fixture
def flower(redis_url: str, tmp_path: Path) -> Iterator[str]:
    """``pipeline flower`` on a free loopback port with basic auth; yields its URL."""
    port = free_port()
    log = (tmp_path / "flower.log").open("wb")
    env = {**os.environ, "PIPELINE_BROKER_URL": redis_url,
           "PIPELINE_FLOWER_BASIC_AUTH": ":".join(CREDENTIALS)}
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "flower", "--port", str(port)], cwd=ROOT, env=env,
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        def answers() -> bool:
            assert process.poll() is None, (tmp_path / "flower.log").read_text()
            try:
                return httpx.get(f"{url}/healthcheck", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(answers, timeout=30, what="Flower to answer")
        time.sleep(1.0)  # its event receiver connects just after the web server
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(15)
        log.close()


def test_flower_lists_a_parked_job_blocked_with_its_reason_then_its_success(
        flower: str, workers: Any, app: Any) -> None:
    from tests.tasks.lockprobes import hold

    assert httpx.get(f"{flower}/api/tasks", timeout=5).status_code == 401
    first = hold.apply_async((3.0,), user="flower-user").id
    wait_for(lambda: explain(first, app).status == "running", what="the first job to run")
    second = hold.apply_async((0.0,), user="flower-user").id

    def task() -> dict[str, Any]:
        tasks = httpx.get(f"{flower}/api/tasks", auth=CREDENTIALS, timeout=5).json()
        return dict(tasks.get(second) or {})

    blocked = wait_for(lambda: task() if task().get("state") == "BLOCKED" else None,
                       what="Flower to show the parked job BLOCKED")
    assert blocked["reason"].startswith("waiting for user:flower-user")
    assert blocked["blocked_by"] == first and blocked["position"] == 1
    view = httpx.get(f"{flower}/task/{second}", auth=CREDENTIALS, timeout=5).text
    assert "BLOCKED" in view and "waiting for user:flower-user" in view  # the task view
    done = wait_for(lambda: task() if task().get("state") == "SUCCESS" else None,
                    timeout=30, what="Flower to show the job's SUCCESS")
    assert done.get("reason") is None
    page = httpx.get(f"{flower}/task/{second}", auth=CREDENTIALS, timeout=5)
    assert page.status_code == 200 and "SUCCESS" in page.text


def test_flower_refuses_a_public_address_without_credentials(app: Any) -> None:
    result = CliRunner().invoke(cli, ["flower", "--address", "0.0.0.0"])
    assert result.exit_code == 1
    assert "without credentials" in result.output and "pipeline_flower_basic_auth" in \
        result.output
