"""``pipeline dlq`` and ``pipeline stats`` end to end, on jobs a real worker ran."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import pytest
import redis

from pipeline.actions import deadletters
from pipeline.runtime.services import services_for
from tests.integration.operator.conftest import invoke, invoke_json, wait_for
from tests.tasks.lockprobes import flaky, hold

Worker = Callable[..., AbstractContextManager[Any]]


@pytest.fixture
def dead(ops_app: Any, start_worker: Worker) -> list[str]:
    """Two jobs that failed every attempt: alice's (normal) and bob's (low)."""
    with start_worker():
        jobs = [flaky.apply_async((100, "a"), user="alice", project="nlp"),
                flaky.apply_async((100, "b"), user="bob", priority="low")]
        wait_for(lambda: len(deadletters.list_dead(services_for(ops_app))) == 2,
                 what="two dead letters")
    return [job.id for job in jobs]


def test_dlq_list_filters_and_prints_json(ops_app: Any, dead: list[str]) -> None:
    text = invoke("dlq", "list")
    assert text.exit_code == 0, text.output
    assert dead[0] in text.stdout and "lockprobes.flaky" in text.stdout
    assert "RuntimeError" in text.stdout and "2 dead letter(s)" in text.stdout
    assert [d["job_id"] for d in invoke_json("dlq", "list", "-p", "low")] == [dead[1]]
    only = invoke_json("dlq", "list", "--project", "nlp", "--since", "10m")
    assert [(d["job_id"], d["user"], d["attempts"]) for d in only] == [(dead[0], "alice", 3)]
    assert invoke_json("dlq", "list", "--task", "other") == []


def test_dlq_requeue_runs_the_job_again_and_records_who_did(
        ops_app: Any, dead: list[str], start_worker: Worker,
        redis_client: redis.Redis) -> None:
    redis_client.set(f"lockprobe:attempts:{dead[0]}", 1000)  # it succeeds from now on
    with start_worker():
        outcome = invoke("dlq", "requeue", dead[0], "--by", "tester")
        assert outcome.exit_code == 0, outcome.output
        assert outcome.stdout == f"requeued 1 job(s)\n  {dead[0]}\n"
        wait_for(lambda: ops_app.AsyncResult(dead[0]).state == "SUCCESS",
                 what="the requeued job to succeed")
    assert [d.job_id for d in deadletters.list_dead(services_for(ops_app))] == [dead[1]]
    actions = [(f[b"j"].decode(), json.loads(f[b"d"])["action"])
               for _, f in redis_client.xrange("{pipeline}:events") if f[b"e"] == b"operator"]
    assert actions == [(dead[0], "dlq_requeue")]


def test_dlq_purge_by_filter_asks_first(ops_app: Any, dead: list[str]) -> None:
    declined = invoke("dlq", "purge", "--user", "bob", input="n\n")
    assert declined.exit_code == 1 and len(deadletters.list_dead(services_for(ops_app))) == 2
    assert invoke_json("dlq", "purge", "--user", "bob", "--yes") == {"purged": 1,
                                                                     "not_found": []}
    assert [d.job_id for d in deadletters.list_dead(services_for(ops_app))] == [dead[0]]
    missing = invoke("dlq", "purge", "ghost")
    assert missing.exit_code == 1 and "not dead letters: ghost" in missing.stderr


def test_stats_sums_up_the_window_from_the_store(
        ops_app: Any, start_worker: Worker, record_events: Callable[[], int]) -> None:
    with start_worker():
        for n in range(3):
            hold.apply_async((0.05, f"s{n}"), models=["bert"]).get(timeout=20)
        failed = flaky.apply_async((100, "f"), max_retries=0)
        wait_for(lambda: failed.ready(), what="the failing job")
    record_events()

    data = invoke_json("stats", "--since", "10m")
    assert data["rates"]["by_state"]["COMPLETED"] == 3
    assert data["rates"]["finished"] == 4
    assert data["execution"]["count"] == 4 and data["wait"]["count"] == 4
    assert data["execution"]["average"] > 0 and data["execution"]["p95"] >= 0.05
    text = invoke("stats", "--since", "10m")
    assert text.exit_code == 0, text.output
    assert "wait (queued to start)" in text.stdout and "execution" in text.stdout
    assert "completion 75.0%, failure 25.0%" in text.stdout
    bad = invoke("stats", "--since", "yesterday")
    assert bad.exit_code == 1 and "since='yesterday' is not accepted" in bad.stderr
