"""``pipeline submit``, ``show``, ``jobs``, ``cancel`` and ``reprioritize`` end to end.

A real worker (in this process) runs the jobs; the recorder writes the stream
into a migrated store of the test's own.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import pytest
import redis

from pipeline.observe import inspection
from pipeline.runtime.services import services_for
from tests.integration.operator.conftest import invoke, invoke_json, wait_for
from tests.integration.operator.support import lock, model
from tests.tasks.lockprobes import hold

Worker = Callable[..., AbstractContextManager[Any]]


def test_submit_publishes_through_apply_async_and_prints_the_id(
        ops_app: Any, start_worker: Worker, redis_client: redis.Redis) -> None:
    with start_worker():
        outcome = invoke("submit", "tests.tasks.probes.record", "probe:submit", '"hello"',
                         "--user", "alice", "--model", "bert", "-p", "high")
        assert outcome.exit_code == 0, outcome.output
        job_id = outcome.stdout.strip()
        wait_for(lambda: redis_client.lrange("probe:submit", 0, -1) == [b"hello"],
                 what="the submitted job to run")
        assert ops_app.AsyncResult(job_id).get(timeout=10) == "hello"


def test_submit_json_says_what_was_published(ops_app: Any) -> None:
    sent = invoke_json("submit", "tests.tasks.probes.record", "probe:x", "1", "--kwargs",
                       '{"seconds": 0}', "--project", "nlp", "--shared-model", "gpt")
    assert sent["task"] == "tests.tasks.probes.record" and sent["args"] == ["probe:x", 1]
    assert sent["priority"] == "normal" and sent["shared_models"] == ["gpt"]
    assert inspection.job_detail(services_for(ops_app), sent["job_id"]).where == "queued"


@pytest.mark.parametrize(("options", "named"), [
    (["-p", "urgent"], "priority='urgent'"),
    (["--user", ""], "user=''"),
    (["--model", "a\tb"], "models='a\\tb'"),
    (["--kwargs", "[1]"], "kwargs='[1]'"),
    (["--countdown", "-1", "--user", "x" * 201], "user="),
])
def test_submit_refuses_a_bad_option_naming_it_and_publishes_nothing(
        ops_app: Any, options: list[str], named: str) -> None:
    outcome = invoke("submit", "tests.tasks.probes.record", "k", "v", *options)
    assert outcome.exit_code == 1
    assert named in outcome.stderr and outcome.stderr.count("\n") == 1, outcome.stderr
    assert sum(inspection.queue_depth(services_for(ops_app)).values()) == 0


def test_submit_names_an_unknown_task_and_the_closest_ones(ops_app: Any) -> None:
    outcome = invoke("submit", "tests.tasks.probes.recrd")
    assert outcome.exit_code == 1
    assert "task='tests.tasks.probes.recrd' is not registered" in outcome.stderr
    assert "tests.tasks.probes.record" in outcome.stderr


def test_show_says_why_a_parked_job_waits_and_gives_its_history(
        ops_app: Any, start_worker: Worker, record_events: Callable[[], int]) -> None:
    with start_worker(pool="threads", concurrency=2):
        first = hold.apply_async((3.0, "first"), user="alice")
        wait_for(lambda: services_for(ops_app).lock_reads.explain(first.id).status == "running",
                 what="the first job to start")
        second = hold.apply_async((0.0, "second"), user="alice")
        wait_for(lambda: services_for(ops_app).lock_reads.explain(second.id).status == "parked",
                 what="the second job to park")
        record_events()
        outcome = invoke("show", second.id)
        data = invoke_json("show", second.id)
        running = invoke("show", first.id)
        first.get(timeout=20)
        second.get(timeout=20)
    assert outcome.exit_code == 0, outcome.output
    lines = outcome.stdout.splitlines()
    assert lines[0] == f"{second.id} is parked, priority normal, position 1 in line"
    assert lines[1].startswith(f"why it is not running: waiting for user:alice, held by "
                               f"{first.id} (running on ")
    assert "job store: BLOCKED  task lockprobes.hold" in outcome.stdout
    assert "  queued " in outcome.stdout and " blocked " in outcome.stdout
    assert data["where"] == "parked" and data["blocked_by"] == first.id
    assert [row["event"] for row in data["history"]] == ["queued", "blocked"]
    assert running.stdout.startswith(f"{first.id} is running on ")
    assert "user:alice" in running.stdout


def test_show_of_an_unknown_job_exits_1_saying_so(ops_app: Any) -> None:
    outcome = invoke("show", "no-such-job")
    assert outcome.exit_code == 1
    assert outcome.stderr == ("Error: unknown job 'no-such-job': no lock, broker list, dead "
                              "letter, result or job store record has it\n")
    assert outcome.stdout == ""


def test_jobs_lists_the_store_with_filters(
        ops_app: Any, start_worker: Worker, record_events: Callable[[], int]) -> None:
    with start_worker():
        done = [hold.apply_async((0.0, f"j{n}"), user=user, priority=level, models=models)
                for n, (user, level, models) in enumerate([
                    ("alice", "high", ["bert"]), ("bob", "low", []), ("alice", "low", ["gpt"])])]
        for result in done:
            result.get(timeout=20)
    record_events()

    page = invoke_json("jobs")
    every = page["jobs"]
    assert page["total"] == 3 and page["live"] is True
    assert {row["id"] for row in every} == {r.id for r in done}
    assert {row["state"] for row in every} == {"COMPLETED"}
    assert [r["id"] for r in invoke_json("jobs", "--user", "alice", "-p", "low")["jobs"]] == \
        [done[2].id]
    assert [r["id"] for r in invoke_json("jobs", "--model", "bert")["jobs"]] == [done[0].id]
    assert invoke_json("jobs", "-s", "failed")["jobs"] == []
    assert len(invoke_json("jobs", "--since", "5m", "-n", "2")["jobs"]) == 2
    table = invoke("jobs", "--user", "bob")
    assert table.exit_code == 0 and done[1].id in table.stdout
    assert "lockprobes.hold" in table.stdout and "1 job(s)" in table.stdout
    bad = invoke("jobs", "-s", "sleeping")
    assert bad.exit_code == 1 and "state='SLEEPING' is not accepted" in bad.stderr


def test_cancel_takes_a_parked_job_out_and_exits_1_for_an_unknown_one(
        ops_app: Any, redis_client: redis.Redis) -> None:
    lock(ops_app, "holder", model("bert"))
    lock(ops_app, "waiting", model("bert"))

    outcome = invoke("cancel", "waiting", "ghost", "--by", "tester", "--reason", "not needed")

    assert outcome.exit_code == 1
    assert outcome.stdout.splitlines()[0] == "waiting: cancelled (it was parked)"
    assert "ghost: unknown job 'ghost'" in outcome.stdout
    assert outcome.stderr.startswith("Error: 1 of 2 not cancelled: unknown job 'ghost'")
    assert services_for(ops_app).lock_reads.explain("waiting").status == "unknown"
    reasons = [json.loads(f[b"d"]) for _, f in redis_client.xrange("{pipeline}:events")
               if f[b"e"] == b"cancelled"]
    assert reasons == [{"reason": "cancelled by tester: not needed"}]


def test_cancel_json_reports_each_job(ops_app: Any) -> None:
    queued = hold.apply_async((0.0, "q"))
    assert invoke_json("cancel", queued.id) == [{
        "id": queued.id, "found": True, "where": "queued", "done": True,
        "message": "cancelled (it was queued in the broker)"}]
    assert sum(inspection.queue_depth(services_for(ops_app)).values()) == 0


def test_reprioritize_moves_a_parked_job_ahead(ops_app: Any) -> None:
    lock(ops_app, "holder", model("bert"))
    lock(ops_app, "early", model("bert"), submitted_ms=1)
    lock(ops_app, "late", model("bert"), submitted_ms=2)

    outcome = invoke("reprioritize", "late", "critical")

    assert outcome.exit_code == 0, outcome.output
    assert outcome.stdout == "late: now critical (parked), position 1 in line of model:bert\n"
    moved = invoke_json("reprioritize", "early", "high")
    assert moved == {"id": "early", "found": True, "where": "parked", "done": True,
                     "message": "now high (parked)", "priority": "high",
                     "position": 2, "waiting_for": "model:bert"}


def test_reprioritize_exits_1_for_a_running_or_unknown_job(ops_app: Any) -> None:
    lock(ops_app, "busy", model("bert"))
    running = invoke("reprioritize", "busy", "high")
    assert running.exit_code == 1 and "busy not reprioritized" in running.stderr
    assert "it is running" in running.stderr
    unknown = invoke("reprioritize", "ghost", "low")
    assert unknown.exit_code == 1 and "unknown job 'ghost'" in unknown.stderr
    bad = invoke("reprioritize", "busy", "asap")
    assert bad.exit_code == 1 and "priority='asap'" in bad.stderr


def test_submit_names_arguments_that_do_not_fit_the_task(ops_app: Any) -> None:
    outcome = invoke("submit", "tests.tasks.probes.record", "k", "--kwargs", '{"colour": 1}')
    assert outcome.exit_code == 1
    assert outcome.stderr.startswith("Error: the arguments do not fit tests.tasks.probes.record: ")
    assert "colour" in outcome.stderr
    assert sum(inspection.queue_depth(services_for(ops_app)).values()) == 0
