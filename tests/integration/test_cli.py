"""The ``pipeline`` command's inspection commands against a real worker."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import redis
from click.testing import CliRunner

from pipeline.cli.main import cli


def test_show_says_an_unknown_job_is_neither_running_nor_parked(app: Any) -> None:
    outcome = CliRunner().invoke(cli, ["show", "no-such-job"])
    assert outcome.exit_code == 0, outcome.output
    assert "no-such-job holds no lock and is not parked" in outcome.output


def test_show_says_a_running_job_runs_and_what_it_holds(
        app: Any, redis_client: redis.Redis,
        start_worker: Callable[..., AbstractContextManager[Any]]) -> None:
    from tests.tasks.probes import record

    with start_worker():
        result = record.apply_async(("probe:cli", "slow", 3.0), user="alice")
        deadline = time.monotonic() + 20
        while not redis_client.llen("probe:cli"):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        outcome = CliRunner().invoke(cli, ["show", result.id])
        result.get(timeout=20)
    assert outcome.exit_code == 0, outcome.output
    assert f"{result.id} is running" in outcome.output
    assert "user:alice" in outcome.output
