"""``pipeline agents status|allocate`` against real workers."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from pipeline.cli.main import cli
from tests.integration.locks.support import wait_for

pytestmark = pytest.mark.timeout(120)

FAST = {"agent_heartbeat": 0.3, "agent_timeout": 2}


def status_json() -> list[dict[str, Any]]:
    outcome = CliRunner().invoke(cli, ["agents", "status", "--json"])
    assert outcome.exit_code == 0, outcome.output
    found: list[dict[str, Any]] = json.loads(outcome.output)
    return found


def test_status_lists_each_live_worker_with_its_load(
        pipeline_app: Any, start_workers: Callable[..., Any], lock_redis: redis.Redis) -> None:
    start_workers(concurrency=2, **FAST)
    start_workers(concurrency=1, **FAST)
    agents = wait_for(lambda: len(status_json()) == 2 and status_json(), timeout=20,
                      what="two workers listed")
    assert sorted(a["slots"] for a in agents) == [1, 2]
    for agent in agents:
        assert agent["level"] in ("LOW", "MODERATE", "HIGH", "CRITICAL")
        assert 0.0 <= agent["score"] <= 1.0
        assert agent["accepting"] is True
        assert agent["queues"] == ["pipeline"]
    table = CliRunner().invoke(cli, ["agents", "status", "--sort-by", "score"])
    assert table.exit_code == 0, table.output
    for agent in agents:
        assert agent["name"] in table.output
    assert "2 worker(s), 0 paused by the load gate" in table.output


def test_worker_that_stops_heartbeating_leaves_status_after_the_timeout(
        pipeline_app: Any, start_workers: Callable[..., Any], lock_redis: redis.Redis) -> None:
    worker = start_workers(concurrency=1, **FAST)
    wait_for(lambda: len(status_json()) == 1, timeout=20, what="worker listed")
    os.kill(worker.process.pid, signal.SIGSTOP)   # alive but silent
    try:
        stopped = time.monotonic()
        wait_for(lambda: status_json() == [], timeout=10, what="frozen worker gone")
        assert time.monotonic() - stopped >= 1.0, "left before its timeout"
    finally:
        os.kill(worker.process.pid, signal.SIGCONT)
    wait_for(lambda: len(status_json()) == 1, timeout=10, what="worker back")


def test_allocate_recommends_from_the_live_workers(
        pipeline_app: Any, start_workers: Callable[..., Any], lock_redis: redis.Redis) -> None:
    start_workers(concurrency=3, **FAST)
    wait_for(lambda: len(status_json()) == 1, timeout=20, what="worker listed")
    outcome = CliRunner().invoke(cli, ["agents", "allocate", "--json"])
    assert outcome.exit_code == 0, outcome.output
    found = json.loads(outcome.output)
    name = status_json()[0]["name"]
    assert (found["workers"], found["capacity"], found["least_loaded"]) == (1, 3, name)
    assert (found["action"], found["processes"], found["backpressure"]) == ("remove", 2, False)
    text = CliRunner().invoke(cli, ["agents", "allocate"])
    assert f"new work goes to: {name}" in text.output
    assert "recommendation: remove 2 process(es)" in text.output
