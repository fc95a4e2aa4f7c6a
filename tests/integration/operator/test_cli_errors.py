"""Every operator command fails with exit code 1 and one line saying why."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.commands import CLI, ROOT
from tests.helpers.deadapp import DEAD_URL
from tests.integration.operator.conftest import invoke, point_store

REDIS_COMMANDS = [
    ["status"], ["show", "job-1"], ["submit", "tests.tasks.probes.record", "k", "v"],
    ["cancel", "job-1"], ["reprioritize", "job-1", "high"], ["flush", "--dry-run"],
    ["locks", "list"], ["locks", "release", "model:bert", "--yes"], ["dlq", "list"],
    ["dlq", "requeue", "job-1"], ["dlq", "purge", "--yes"], ["monitor", "--once"],
    ["import", "{file}"],
]


@pytest.mark.parametrize("args", REDIS_COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_redis_down_is_one_line_naming_the_server(args: list[str], tmp_path: Path) -> None:
    requests = tmp_path / "requests.json"
    requests.write_text("[]")
    argv = [a.replace("{file}", str(requests)) for a in args]
    outcome = invoke("-A", "tests.helpers.deadapp", *argv, "--json")
    assert outcome.exit_code == 1
    assert outcome.stderr == (f"Error: Redis at {DEAD_URL} does not answer: start it "
                              "(`pipeline up` runs one), or point PIPELINE_BROKER_URL at the "
                              "one in use\n")
    assert outcome.stdout == ""


@pytest.fixture
def unmigrated(app: Any, empty_store_url: str) -> Iterator[Any]:
    """The app on an empty database of each kind (no schema)."""
    point_store(app, empty_store_url)
    yield app
    point_store(app, None)


@pytest.mark.parametrize("args", [["jobs"], ["stats"], ["show", "job-1"]],
                         ids=lambda a: a[0])
def test_a_store_not_migrated_names_the_command_that_fixes_it(
        unmigrated: Any, args: list[str]) -> None:
    outcome = invoke(*args)
    assert outcome.exit_code == 1
    assert outcome.stderr.startswith("Error: the job store at ")
    assert outcome.stderr.endswith("run `pipeline db upgrade` (or `alembic upgrade head`)\n")
    assert outcome.stderr.count("\n") == 1


def test_a_disabled_store_is_said_plainly(app: Any) -> None:
    app.conf.pipeline_store_enabled = False
    point_store(app, None)
    try:
        outcome = invoke("jobs")
    finally:
        del app.conf["pipeline_store_enabled"]
        point_store(app, None)
    assert outcome.exit_code == 1
    assert "the job store is disabled (pipeline_store_enabled = False)" in outcome.stderr


def run_pipeline(*args: str, broker: str) -> subprocess.CompletedProcess[str]:
    env = {**__import__("os").environ, "PIPELINE_BROKER_URL": broker}
    return subprocess.run([sys.executable, "-c", CLI, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_the_installed_command_prints_json_and_exits_1_on_a_dead_redis(
        app: Any, redis_url: str) -> None:
    found = run_pipeline("status", "--no-workers", "--json", broker=redis_url)
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["queued"] == 0
    down = run_pipeline("status", broker=DEAD_URL)
    assert down.returncode == 1
    assert down.stderr.strip().splitlines() == [
        f"Error: Redis at {DEAD_URL} does not answer: start it (`pipeline up` runs one), "
        "or point PIPELINE_BROKER_URL at the one in use"]
