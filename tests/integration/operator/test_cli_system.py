"""``pipeline status``, ``locks``, ``flush`` and ``monitor --once`` end to end."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import redis

from pipeline.observe import inspection
from pipeline.runtime.services import services_for
from tests.integration.operator.conftest import invoke, invoke_json, wait_for
from tests.integration.operator.support import lock, model, user
from tests.tasks.lockprobes import hold, runs

Worker = Callable[..., AbstractContextManager[Any]]


def parked(app: Any, job_id: str) -> bool:
    return services_for(app).lock_reads.explain(job_id).status == "parked"


def started(app: Any, job_id: str) -> None:
    wait_for(lambda: services_for(app).lock_reads.explain(job_id).status == "running",
             what=f"{job_id} to start")


def test_status_shows_running_parked_locks_and_workers(
        ops_app: Any, start_worker: Worker) -> None:
    with start_worker(pool="threads", concurrency=2):
        busy = hold.apply_async((3.0, "busy"), user="alice", models=["bert"])
        started(ops_app, busy.id)
        waiting = hold.apply_async((0.0, "waiting"), user="bob", models=["bert"],
                                   priority="high")
        wait_for(lambda: parked(ops_app, waiting.id), what="the second job to park")
        hold.apply_async((0.0, "queued"), priority="low", user="carol", countdown=0)
        text = invoke("status")
        data = invoke_json("status")
        busy.get(timeout=20)
        waiting.get(timeout=20)
    assert text.exit_code == 0, text.output
    assert "pipeline status" in text.stdout
    assert "parked by     model 1" in text.stdout
    assert "users         alice 1" in text.stdout
    assert "models        bert 1" in text.stdout
    assert "workers       1: " in text.stdout
    assert data["running"] == 1 and data["parked"] == 1
    assert data["parked_by_priority"]["high"] == 1
    assert data["locks_by_model"] == {"bert": 1} and len(data["workers"]) == 1
    assert data["capacities"]["global"] == 5 and data["serialized"] is False
    assert max(len(line) for line in text.stdout.splitlines()) <= 80


def test_status_can_skip_the_workers_and_save_an_svg(ops_app: Any, tmp_path: Path) -> None:
    picture = tmp_path / "status.svg"
    outcome = invoke("status", "--no-workers", "--svg", str(picture))
    assert outcome.exit_code == 0, outcome.output
    assert "workers" not in outcome.stdout
    svg = picture.read_text()
    assert svg.startswith("<svg") and "queued" in svg and "dead&#160;letters" in svg


def test_locks_list_shows_each_resource_held(ops_app: Any) -> None:
    lock(ops_app, "j1", user("alice"), model("bert"))
    text = invoke("locks", "list")
    assert text.exit_code == 0, text.output
    assert "model:bert  exclusive  j1" in text.stdout
    assert "2 lock(s) held by 1 job(s)" in text.stdout
    held = invoke_json("locks", "list", "--kind", "user")
    assert [(h["resource"], h["job_id"], h["state"]) for h in held] == [
        ("user:alice", "j1", "running")]


def test_locks_release_hands_a_stuck_model_to_the_parked_job(
        ops_app: Any, start_worker: Worker, redis_client: redis.Redis) -> None:
    with start_worker(pool="threads", concurrency=2):
        stuck = hold.apply_async((4.0, "stuck"), models=["bert"])
        started(ops_app, stuck.id)
        waiting = hold.apply_async((0.0, "waiting"), models=["bert"])
        wait_for(lambda: parked(ops_app, waiting.id), what="the second job to park")

        outcome = invoke("locks", "release", "model:bert", "--yes", "--by", "tester",
                         "--reason", "stuck")

        assert outcome.exit_code == 0, outcome.output
        assert f"ended the hold of {stuck.id} on global, model:bert" in outcome.stdout
        assert f"model:bert handed to {waiting.id}" in outcome.stdout
        waiting.get(timeout=10)
        assert not stuck.ready()  # it ran alongside: the lock was taken from it
        # The worker's next renewal (the pool shares this process) finds the lease lost.
        assert stuck.id in services_for(ops_app).heartbeat.beat()
        stuck.get(timeout=20)
    tags = {r["tag"]: r for r in runs(redis_client)}
    assert tags["waiting"]["start"] < tags["stuck"]["end"]
    # The stuck job's own release, after, freed nothing of anyone else.
    assert inspection.locks(services_for(ops_app)) == []
    operator = [json.loads(f[b"d"]) for _, f in redis_client.xrange("{pipeline}:events")
                if f[b"e"] == b"operator"]
    assert operator == [{"action": "lock_release", "by": "tester", "target": "model:bert",
                         "reason": "stuck", "count": 1}]


def test_locks_release_asks_first_and_refuses_what_nobody_holds(ops_app: Any) -> None:
    lock(ops_app, "j1", model("bert"))
    declined = invoke("locks", "release", "model:bert", input="n\n")
    assert declined.exit_code == 1 and "Aborted" in declined.stderr
    assert services_for(ops_app).lock_reads.explain("j1").status == "running"
    nobody = invoke("locks", "release", "model:gpt", "--yes")
    assert nobody.exit_code == 1
    assert nobody.stderr == ("Error: nobody holds model:gpt: nothing to release "
                             "(`pipeline locks list` shows what is held)\n")
    bad = invoke("locks", "release", "bert")
    assert bad.exit_code == 1 and "resource='bert' is not accepted" in bad.stderr
    report = invoke_json("locks", "release", "model:bert", "--yes")
    assert report["ended"][0]["job_id"] == "j1" and report["handed_to"] == []


def test_flush_dry_run_lists_then_flush_removes_after_confirmation(
        ops_app: Any, redis_client: redis.Redis) -> None:
    queued = [hold.apply_async((0.0, f"q{n}"), priority="low") for n in range(3)]
    kept = hold.apply_async((0.0, "kept"), priority="high")
    lock(ops_app, "holder", model("bert"))
    lock(ops_app, "parked-low", model("bert"), priority=9)

    dry = invoke("flush", "-p", "low", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "4 queued and parked jobs at low level would be flushed" in dry.stdout
    assert queued[0].id in dry.stdout and "parked-low" in dry.stdout
    assert inspection.queue_depth(services_for(ops_app))["low"] == 3

    declined = invoke("flush", "-p", "low", input="n\n")
    assert declined.exit_code == 1 and inspection.queue_depth(services_for(ops_app))["low"] == 3

    done = invoke("flush", "-p", "low", "--by", "tester", input="y\n")
    assert done.exit_code == 0, done.output
    assert "flushed 4 queued and parked jobs at low level" in done.stdout
    assert inspection.queue_depth(services_for(ops_app)) == {
        "critical": 0, "high": 1, "normal": 0, "low": 0}
    assert not parked(ops_app, "parked-low")
    assert kept.id not in done.stdout
    cancelled = [f[b"j"].decode() for _, f in redis_client.xrange("{pipeline}:events")
                 if f[b"e"] == b"cancelled"]
    assert sorted(cancelled) == sorted([r.id for r in queued] + ["parked-low"])


def test_flush_json_with_yes_reports_what_went(ops_app: Any) -> None:
    gone = hold.apply_async((0.0, "gone"))
    report = invoke_json("flush", "--state", "queued", "--yes")
    assert report["dry_run"] is False and report["count"] == 1
    assert report["jobs"] == [{"job_id": gone.id, "task": "lockprobes.hold",
                               "state": "queued", "priority": "normal", "user": ""}]
    empty = invoke("flush", "--yes")
    assert empty.exit_code == 0
    assert "nothing to flush: no queued and parked jobs at every level" in empty.stdout


def test_monitor_once_draws_one_80_column_screen(
        ops_app: Any, start_worker: Worker, tmp_path: Path) -> None:
    lock(ops_app, "holder", user("alice"), model("bert"))
    lock(ops_app, "parked-job", model("bert"), priority=3)
    picture = tmp_path / "monitor.svg"
    with start_worker():
        time.sleep(0.2)
        outcome = invoke("monitor", "--once", "--rows", "5", "--svg", str(picture))
    assert outcome.exit_code == 0, outcome.output
    screen = outcome.stdout
    assert "pipeline monitor" in screen and "running: 1" in screen
    assert "parked: 1, longest first" in screen
    assert "parked-job" in screen and "model:bert" in screen and "holder" in screen
    assert "workers       1: " in screen
    assert max(len(line) for line in screen.splitlines()) <= 80
    assert "parked-job" in picture.read_text()
