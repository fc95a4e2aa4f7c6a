"""The reference agent end to end: ``pipeline agent`` processes against a ``pipeline api``
process, on the test Redis.

The agent is started before the API (it retries with backoff until the API
answers), runs jobs as a command, reports a failure, and on SIGTERM stops its
command and gives its job back at once, for another agent to finish. Neither
process ever writes the token.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import AgentJobFailed
from pipeline.runtime.services import services_for
from tests.helpers.browser import free_port
from tests.helpers.commands import CLI, ROOT
from tests.tasks.agentprobes import flaky, remote

pytestmark = [pytest.mark.system, pytest.mark.timeout(180)]

SECRET = "agent-secret-never-logged-4f1d2c"
ADMIN_SECRET = "admin-secret-never-logged-8e3a1b"
JOB = """\
import json, os, pathlib, sys, time
job = json.load(sys.stdin)
first = job["args"][0]
if first == "bad":
    print("bad input", file=sys.stderr)
    sys.exit(3)
if first == "slow":
    gate = pathlib.Path(job["kwargs"]["gate"])
    pathlib.Path(job["kwargs"]["pids"]).open("a").write(f"{os.getpid()}\\n")
    while not gate.exists():
        time.sleep(0.05)
print(json.dumps({"doubled": first * 2 if isinstance(first, int) else first,
                  "attempt": job["attempt"]}))
"""


class Process:
    """A ``pipeline`` command in its own process group, its output in a file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], logs: Path) -> None:
        self.log = logs / f"{name}.log"
        with open(self.log, "wb") as out:
            self.popen = subprocess.Popen([sys.executable, "-c", CLI, *args], cwd=ROOT, env=env,
                                          stdin=subprocess.DEVNULL, stdout=out,
                                          stderr=subprocess.STDOUT, start_new_session=True)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, marker: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while marker not in self.text():
            assert self.popen.poll() is None, f"exited {self.popen.returncode}:\n{self.text()}"
            assert time.monotonic() < deadline, f"no {marker!r} in:\n{self.text()}"
            time.sleep(0.1)

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in started:
        process.stop()


def wait_until(check: Any, what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


def test_the_reference_agent_runs_jobs_over_http_and_gives_one_back_on_sigterm(
        app: Any, redis_url: str, tmp_path: Path, processes: list[Process]) -> None:
    port = free_port()
    (tmp_path / "api.tokens").write_text(f"agent:prod:{SECRET}\nadmin:{ADMIN_SECRET}\n")
    (tmp_path / "agent.token").write_text(f"agent:prod:{SECRET}\n")
    (tmp_path / "job.py").write_text(JOB)
    env = {**os.environ, "PIPELINE_BROKER_URL": redis_url, "PYTHONUNBUFFERED": "1",
           "PIPELINE_DATA_DIR": str(tmp_path / "data"), "PIPELINE_API_PORT": str(port),
           "PIPELINE_API_TOKEN_FILE": str(tmp_path / "api.tokens")}
    agent_args = ["agent", "--api", f"http://127.0.0.1:{port}", "--token-file",
                  str(tmp_path / "agent.token"), "--pool", "prod", "--wait", "2", "--agent-id"]
    command = ["--", sys.executable, str(tmp_path / "job.py")]
    # The agent comes up first: it retries the API with backoff until it answers.
    first = Process("agent-a", [*agent_args, "agent-a", *command], env, tmp_path)
    processes.append(first)
    time.sleep(1.5)
    api = Process("api", ["-A", "tests.tasks.agentapp", "api"], env, tmp_path)
    processes.append(api)
    api.wait_for("Uvicorn running on")

    assert remote.delay(21).get(timeout=30) == {"doubled": 42, "attempt": 1}
    failing = flaky.delay("bad")
    with pytest.raises(AgentJobFailed, match="exit code 3: bad input"):
        failing.get(timeout=30)

    gate, pids = tmp_path / "gate", tmp_path / "pids"
    slow = remote.apply_async(("slow",), {"gate": str(gate), "pids": str(pids)})
    leases = services_for(app).leases
    wait_until(lambda: leases.lease_of(slow.id).get("started"), "agent-a to start the job")
    assert leases.lease_of(slow.id)["agent"] == "agent-a"
    command_pid = int(wait_until(pids.read_text, "the command's pid").split()[0])
    os.killpg(first.popen.pid, signal.SIGTERM)
    assert first.popen.wait(15) == 0, first.text()
    with pytest.raises(ProcessLookupError):
        os.kill(command_pid, 0)  # the agent stopped the job's command
    assert leases.lease_of(slow.id) == {}  # given back at once, not after its lease
    assert "given back" in first.text()

    second = Process("agent-b", [*agent_args, "agent-b", *command], env, tmp_path)
    processes.append(second)
    wait_until(lambda: leases.lease_of(slow.id).get("agent") == "agent-b",
               "agent-b to claim the job given back")
    gate.write_text("go")
    assert slow.get(timeout=30) == {"doubled": "slow", "attempt": 1}
    given = [e for e in _events(app, slow.id) if e[0] == "queued" and e[1].get("given_back")]
    assert len(given) == 1 and "its agent agent-a was stopped" in given[0][1]["reason"]

    second.stop()
    api.stop()
    for process in (first, second, api):
        assert SECRET not in process.text() and ADMIN_SECRET not in process.text()


def _events(app: Any, job_id: str) -> list[tuple[str, dict[str, Any]]]:
    from pipeline.messages.events import decode

    services = services_for(app)
    found = [decode(i, f) for i, f in services.redis.xrange(services.keys.events)]
    return [(e.type, e.detail) for e in found if e.job_id == job_id]
