"""Operator actions (flush, forced release, dead letters) and the job view, on the real Redis."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from pipeline.actions import control, deadletters
from pipeline.admission.agents import AgentStatus, publish
from pipeline.admission.load import LoadReading
from pipeline.errors import InvalidJobError, UnknownJobError
from pipeline.keys import WAKE_SUFFIX
from pipeline.locks.ticket import Blocked
from pipeline.messages.events import decode
from pipeline.observe import inspection
from pipeline.runtime.services import services_for
from tests.integration.operator.support import lock, model, reads, user
from tests.tasks.probes import record


def stream(client: redis.Redis) -> list[Any]:
    return [decode(i, f) for i, f in client.xrange("{pipeline}:events")]


def test_dry_run_lists_what_a_flush_takes_and_changes_nothing(
        app: Any, redis_client: redis.Redis) -> None:
    queued = record.apply_async(("probe:flush", "q"), priority="low", user="carol")
    lock(app, "holder", model("bert"))
    lock(app, "parked-low", model("bert"), priority=9, who="dan")

    report = control.flush(services_for(app), priority="low", dry_run=True, by="tester")

    assert report.dry_run and report.count == 2
    assert [(j.job_id, j.state, j.priority) for j in report.jobs] == [
        ("parked-low", "parked", "low"), (queued.id, "queued", "low")]
    assert report.jobs[1].task == "tests.tasks.probes.record" and report.jobs[1].user == "carol"
    assert report.jobs[0].user == "dan"
    assert inspection.queue_depth(services_for(app))["low"] == 1
    assert services_for(app).lock_reads.explain("parked-low").status == "parked"
    assert not [e for e in stream(redis_client) if e.type in ("cancelled", "operator")]


def test_flush_takes_the_jobs_and_records_each_and_the_flush(
        app: Any, redis_client: redis.Redis) -> None:
    kept = record.apply_async(("probe:flush", "kept"), priority="high")
    gone = record.apply_async(("probe:flush", "gone"), priority="normal")
    lock(app, "holder", model("bert"))
    lock(app, "parked", model("bert"))

    report = control.flush(services_for(app), priority="normal", dry_run=False, by="tester")

    assert {j.job_id for j in report.jobs} == {gone.id, "parked"}
    assert inspection.queue_depth(services_for(app)) == {
        "critical": 0, "high": 1, "normal": 0, "low": 0}
    assert services_for(app).lock_reads.explain("parked").status == "unknown"
    assert services_for(app).lock_reads.explain("holder").status == "running"
    events = stream(redis_client)
    cancelled = {e.job_id: e.detail["reason"] for e in events if e.type == "cancelled"}
    assert cancelled == {gone.id: "flushed by tester", "parked": "flushed by tester"}
    operator = [e for e in events if e.type == "operator"]
    assert [(e.job_id, e.detail["action"], e.detail["count"], e.detail["by"])
            for e in operator] == [("", "flush", 2, "tester")]
    assert kept.id not in cancelled


def test_flushing_parked_jobs_hands_none_of_them_their_locks(
        app: Any, redis_client: redis.Redis) -> None:
    # A reader of bert waits only because a writer is parked ahead of it (no
    # barging): taking the writer out first would let the reader share bert.
    lock(app, "reading", reads("bert"))
    assert isinstance(lock(app, "ahead", model("bert"), submitted_ms=1), Blocked)
    assert isinstance(lock(app, "behind", reads("bert"), submitted_ms=2), Blocked)

    report = control.flush(services_for(app), state="parked", dry_run=False, by="tester")

    assert {j.job_id for j in report.jobs} == {"ahead", "behind"}
    assert inspection.queue_depth(services_for(app))["critical"] == 0
    assert not [e for e in stream(redis_client) if e.type == "granted"]


def test_flushing_a_job_handed_its_locks_frees_them(
        app: Any, redis_client: redis.Redis) -> None:
    lock(app, "holder", model("bert"))
    lock(app, "next", model("bert"))
    services_for(app).locks.release("holder", "holder")
    assert services_for(app).lock_reads.explain("next").status == "granted"

    report = control.flush(services_for(app), state="queued", dry_run=False, by="tester")

    assert [(j.job_id, j.priority) for j in report.jobs] == [("next", "critical")]
    assert services_for(app).lock_reads.explain("next").status == "unknown"
    assert inspection.locks(services_for(app)) == []


def test_flush_refuses_a_bad_state_or_priority(app: Any) -> None:
    with pytest.raises(InvalidJobError, match="state='running'"):
        control.flush(services_for(app), state="running")
    with pytest.raises(InvalidJobError, match="priority='urgent'"):
        control.flush(services_for(app), priority="urgent")


def test_release_resource_ends_the_holds_and_reports_who_got_it(
        app: Any, redis_client: redis.Redis) -> None:
    lock(app, "stuck", user("alice"), model("bert"))
    lock(app, "waiter", model("bert"))

    report = control.release_resource(services_for(app), "model:bert", reason="hung", by="tester")

    assert [(h.holder, h.resources) for h in report.ended] == [
        ("stuck", ("model:bert", "user:alice"))]
    assert report.handed_to == ("waiter",)
    assert report.as_dict()["ended"][0]["resources"] == ["model:bert", "user:alice"]
    operator = [e for e in stream(redis_client) if e.type == "operator"]
    assert [(e.job_id, e.detail["action"], e.detail["reason"]) for e in operator] == [
        ("stuck", "lock_release", "hung")]


@pytest.mark.parametrize("resource", ["bert", "models:bert", "user:", "global:x", ""])
def test_release_resource_refuses_what_is_not_a_resource_id(app: Any, resource: str) -> None:
    with pytest.raises(InvalidJobError, match="resource="):
        control.release_resource(services_for(app), resource, reason="x")


def dead_letter(app: Any, job_id: str, *, task: str = "tests.tasks.probes.record", who: str = "",
                project: str = "", priority: int = 6, at: float | None = None) -> None:
    services = services_for(app)
    services.redis.hset(services.keys.dead_letter(job_id), mapping={
        "task": task, "error": "boom", "at": str(at or time.time()), "priority": priority,
        "queue": "pipeline", "user": who, "project": project, "attempts": 4,
        "msg": json.dumps({"headers": {"id": job_id}})})
    services.redis.zadd(services.keys.dead_letters, {job_id: at or time.time()})


def test_dead_letters_filter_by_project_priority_and_time(app: Any) -> None:
    now = time.time()
    dead_letter(app, "old", project="nlp", at=now - 7200)
    dead_letter(app, "nlp-low", project="nlp", priority=9, at=now - 10)
    dead_letter(app, "web", project="web", priority=9, at=now - 5)

    def ids(**filters: Any) -> list[str]:
        return [d.job_id for d in deadletters.list_dead(services_for(app), **filters)]

    assert ids() == ["old", "nlp-low", "web"]
    assert ids(project="nlp") == ["old", "nlp-low"]
    assert ids(priority="low") == ["nlp-low", "web"]
    assert ids(since=now - 60) == ["nlp-low", "web"]
    assert ids(since=now - 60, project="nlp", priority="low") == ["nlp-low"]
    with pytest.raises(InvalidJobError, match="priority='soon'"):
        ids(priority="soon")


def test_requeue_and_purge_are_recorded_as_operator_actions(
        app: Any, redis_client: redis.Redis) -> None:
    dead_letter(app, "a", project="nlp")
    dead_letter(app, "b", project="web")
    dead_letter(app, "c", project="web")

    assert deadletters.requeue(services_for(app), project="nlp", by="tester") == ["a"]
    # Back in its queue, with the token that wakes an idle worker.
    assert redis_client.llen("{pipeline}:pipeline" + WAKE_SUFFIX) == 1
    assert deadletters.purge(services_for(app), ["b"], by="tester") == 1

    assert [d.job_id for d in deadletters.list_dead(services_for(app))] == ["c"]
    actions = [(e.job_id, e.detail["action"], e.detail["by"])
               for e in stream(redis_client) if e.type == "operator"]
    assert actions == [("a", "dlq_requeue", "tester"), ("b", "dlq_purge", "tester")]


def test_job_detail_says_why_a_parked_job_waits(ops_app: Any) -> None:
    lock(ops_app, "holder", model("bert"))
    lock(ops_app, "waiting", model("bert"))

    found = inspection.job_detail(services_for(ops_app), "waiting")

    assert found.where == "parked" and found.place == 1
    assert found.why.startswith("waiting for model:bert, held by holder (running on "
                                "testhost pid 4242); position 1 in line")


def test_job_detail_of_a_queued_job_gives_its_place(ops_app: Any) -> None:
    first = record.apply_async(("probe:detail", "1"))
    second = record.apply_async(("probe:detail", "2"))

    found = inspection.job_detail(services_for(ops_app), second.id)

    assert (found.where, found.place, found.priority) == ("queued", 2, "normal")
    assert "1 job(s) ahead of it" in found.why
    assert inspection.job_detail(services_for(ops_app), first.id).place == 1


def test_job_detail_of_an_unknown_id_raises(ops_app: Any) -> None:
    with pytest.raises(UnknownJobError, match="unknown job 'nope'"):
        inspection.job_detail(services_for(ops_app), "nope")


def test_job_detail_reads_the_store_record_and_history(
        ops_app: Any, record_events: Callable[[], int],
        start_worker: Callable[..., Any]) -> None:
    with start_worker():
        result = record.apply_async(("probe:detail", "done"), user="alice")
        result.get(timeout=20)
    record_events()

    found = inspection.job_detail(services_for(ops_app), result.id)

    assert found.where == "finished" and found.why == "finished: COMPLETED"
    assert found.record is not None and found.record["user"] == "alice"
    assert found.history[0]["event"] == "queued"
    assert found.history[-1]["event"] == "completed"


def test_job_detail_of_a_queued_job_says_when_every_worker_paused(ops_app: Any) -> None:
    services = services_for(ops_app)
    reading = LoadReading(cpu=0.99, memory=0.2, queue_depth=0.0)
    publish(services.redis, services.keys, AgentStatus.measured(
        "w1@host", "host", 1, 2, 0, 0, reading, accepting=False, pause_reason="cpu"),
        timeout=30)
    queued = record.apply_async(("probe:detail", "1"))

    found = inspection.job_detail(services_for(ops_app), queued.id)

    assert found.where == "queued"
    assert found.why.endswith("; waiting: every worker is over its load limit")
