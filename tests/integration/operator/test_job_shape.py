"""One JSON shape of a job: ``show --json``, ``jobs --json`` and the API agree.

A real worker (in this process) runs the job; the recorder writes the stream
into a migrated store of the test's own; the API runs in-process on the same app.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from pipeline.api.app import create_app
from pipeline.observe.jobshape import job_out
from pipeline.observe.metrics import Metrics
from pipeline.runtime.services import services_for
from tests.integration.api.conftest import ADMIN, READ, TOKENS
from tests.integration.operator.conftest import invoke, invoke_json, wait_for
from tests.integration.operator.support import lock, model
from tests.tasks.lockprobes import hold

Worker = Callable[..., AbstractContextManager[Any]]


@pytest.fixture
def api(ops_app: Any) -> Iterator[TestClient]:
    """The REST API on the operator tests' app and store."""
    with TestClient(create_app(ops_app, tokens=TOKENS,
                               metrics=Metrics(ops_app, worker_refresh=0))) as client:
        yield client


def _keys_named_priority(value: Any, path: str = "") -> list[str]:
    """Every path to a key named like ``priority`` in *value* (history rows and the job's
    own values left out)."""
    found = []
    if isinstance(value, dict):
        for key, inner in value.items():
            if "priority" in key:
                found.append(f"{path}.{key}")
            if key not in ("history", "args", "kwargs", "result"):
                found += _keys_named_priority(inner, f"{path}.{key}")
    elif isinstance(value, list):
        for inner in value:
            found += _keys_named_priority(inner, path)
    return found


def test_show_jobs_and_the_api_give_one_shape_with_json_values(
        ops_app: Any, start_worker: Worker, record_events: Callable[[], int],
        api: TestClient) -> None:
    with start_worker():
        done = hold.apply_async((0.2,), {"tag": "shape"}, priority="high", user="ann")
        done.get(timeout=20)
    record_events()

    shown = invoke_json("show", done.id)
    listed = invoke_json("jobs")["jobs"]
    got = api.get(f"/api/jobs/{done.id}", headers=READ).json()
    page = api.get("/api/jobs", headers=READ).json()

    assert shown == got | {"history": shown["history"]}
    assert listed == page["jobs"] and [row["id"] for row in listed] == [done.id]
    row = listed[0]
    assert {k: shown[k] for k in row} == row  # the list's fields, the same in the detail
    assert row["args"] == [0.2] and row["kwargs"] == {"tag": "shape"}
    assert isinstance(row["result"], dict) and row["result"]["tag"] == "shape"
    assert row["priority"] == "high" and row["state"] == "COMPLETED"
    assert _keys_named_priority(shown) == [".priority"]
    assert _keys_named_priority(page) == [".jobs.priority"]
    assert row["runtime"] is not None and row["runtime"] >= 0.2
    queued = next(r for r in shown["history"] if r["event"] == "queued")
    assert queued["detail"]["args"] == [0.2] and queued["detail"]["priority"] == "high"


def test_a_running_job_shows_its_priority_by_name(
        ops_app: Any, start_worker: Worker, record_events: Callable[[], int],
        api: TestClient) -> None:
    lock(ops_app, "busy-one", model("bert"), priority=3)
    assert invoke_json("show", "busy-one")["priority"] is None  # unknown: null, never ""
    with start_worker(pool="threads", concurrency=2):
        running = hold.apply_async((2.0,), priority="high")
        wait_for(lambda: services_for(ops_app).lock_reads.explain(running.id).status
                 == "running", what="the job to start")
        record_events()
        shown = invoke_json("show", running.id)
        got = api.get(f"/api/jobs/{running.id}", headers=READ).json()
        running.get(timeout=20)
    assert shown["state"] == "RUNNING" and shown["where"] == "running"
    assert shown["priority"] == got["priority"] == "high"


def test_runtime_is_finish_minus_start_when_the_worker_did_not_report_it() -> None:
    start = datetime(2026, 12, 1, 8, 0, tzinfo=timezone.utc)
    row = {"id": "j", "state": "COMPLETED", "priority": 3, "started_at": start.isoformat(),
           "finished_at": (start + timedelta(seconds=90)).isoformat(), "runtime": None,
           "args": "['bert', 5]", "result": '{"ok": true}', "kwargs": None}
    shaped = job_out(row)
    assert shaped.runtime == 90.0 and shaped.priority == "high"
    assert shaped.result == {"ok": True}
    assert shaped.args == "['bert', 5]"  # text that is not JSON stays a string


def test_cancel_of_a_finished_job_says_found_and_finished_in_both_faces(
        ops_app: Any, start_worker: Worker, record_events: Callable[[], int],
        api: TestClient) -> None:
    with start_worker():
        done = hold.apply_async((0.0,))
        done.get(timeout=20)
    record_events()

    outcome = invoke("cancel", done.id, "--json")
    assert outcome.exit_code == 1
    said = json.loads(outcome.stdout)
    assert said == [{"id": done.id, "found": True, "where": "finished", "done": False,
                     "message": "finished: COMPLETED"}]
    assert outcome.stderr == "Error: 1 of 1 not cancelled: finished: COMPLETED\n"
    refused = api.post(f"/api/jobs/{done.id}/cancel", headers=ADMIN)
    assert refused.status_code == 409
    assert refused.json()["detail"] == f"job {done.id} cannot be cancelled: finished: COMPLETED"


def test_releasing_a_lock_nobody_holds_is_an_error_in_both_faces(
        ops_app: Any, api: TestClient) -> None:
    outcome = invoke("locks", "release", "model:nobody", "--yes")
    assert outcome.exit_code == 1
    assert outcome.stderr == ("Error: nobody holds model:nobody: nothing to release "
                              "(`pipeline locks list` shows what is held)\n")
    refused = api.post("/api/locks/release", headers=ADMIN,
                       json={"resource": "model:nobody", "reason": "test"})
    assert refused.status_code == 409
    assert refused.json()["detail"] == ("nobody holds model:nobody: nothing to release "
                                        "(`pipeline locks list` shows what is held)")


def test_a_unique_prefix_works_wherever_an_id_does(
        ops_app: Any, api: TestClient, redis_client: redis.Redis) -> None:
    lock(ops_app, "508bc1b1-aaaa", model("bert"))
    lock(ops_app, "508bc1b1-bbbb", model("bert"))
    lock(ops_app, "71c0ffee-cccc", model("gpt"))

    assert invoke_json("show", "71c0")["id"] == "71c0ffee-cccc"
    assert invoke_json("show", "508bc1b1-b…")["id"] == "508bc1b1-bbbb"  # cut by a screen
    assert api.get("/api/jobs/508bc1b1-a", headers=READ).json()["id"] == "508bc1b1-aaaa"
    assert api.get("/api/jobs/71c0/position", headers=READ).json()["where"] == "running"

    ambiguous = invoke("show", "508bc1b1")
    assert ambiguous.exit_code == 1
    assert ambiguous.stderr == ("Error: job id prefix '508bc1b1' is ambiguous: it starts "
                                "508bc1b1-aaaa, 508bc1b1-bbbb; give more characters\n")
    refused = api.get("/api/jobs/508bc1b1", headers=READ)
    assert refused.status_code == 409 and "508bc1b1-aaaa, 508bc1b1-bbbb" in refused.text
    unknown = invoke("show", "ffff")
    assert unknown.exit_code == 1 and "unknown job 'ffff'" in unknown.stderr
    assert api.get("/api/jobs/ffff", headers=READ).status_code == 404

    moved = invoke_json("reprioritize", "508bc1b1-b", "critical")
    assert moved["id"] == "508bc1b1-bbbb" and moved["done"] is True
    cancelled = invoke_json("cancel", "508bc1b1-b")
    assert cancelled[0]["id"] == "508bc1b1-bbbb" and cancelled[0]["done"] is True


def test_since_takes_the_same_forms_in_the_cli_and_the_api(
        ops_app: Any, start_worker: Worker, record_events: Callable[[], int],
        api: TestClient) -> None:
    with start_worker():
        hold.apply_async((0.0,)).get(timeout=20)
    record_events()
    for since in ("2h", "30m", "1d", "2026-01-01T00:00:00"):
        cli = invoke_json("jobs", "--since", since)
        page = api.get("/api/jobs", params={"since": since}, headers=READ)
        assert page.status_code == 200, page.text
        assert cli["total"] == page.json()["total"] == 1
        stats = api.get("/api/stats", params={"since": since}, headers=READ)
        assert stats.status_code == 200, stats.text
    bad = api.get("/api/jobs", params={"since": "yesterday"}, headers=READ)
    assert bad.status_code == 422 and "since='yesterday' is not accepted" in bad.text
    cli_bad = invoke("jobs", "--since", "yesterday")
    assert cli_bad.exit_code == 1 and "since='yesterday' is not accepted" in cli_bad.stderr


@pytest.mark.parametrize("command", ["jobs", "stats"])
def test_without_redis_jobs_and_stats_answer_from_the_store_and_say_so(
        command: str, sqlite_store: str) -> None:
    from tests.helpers import deadapp
    from tests.helpers.deadapp import DEAD_URL

    deadapp.app.conf.pipeline_store_url = sqlite_store
    try:
        outcome = invoke("-A", "tests.helpers.deadapp", command, "--json")
        text = invoke("-A", "tests.helpers.deadapp", command)
    finally:
        deadapp.app.conf.pipeline_store_url = None
    assert outcome.exit_code == 0, outcome.output
    assert json.loads(outcome.stdout)["live"] is False
    assert outcome.stderr == (f"Warning: Redis at {DEAD_URL} does not answer: this comes from "
                              "the job store alone, without the live state (it may lag "
                              "behind)\n")
    assert text.exit_code == 0 and text.stderr == outcome.stderr
