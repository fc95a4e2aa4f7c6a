"""Live views, dead letters, statistics and maintenance through the API, on a real worker."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from pipeline import explain
from pipeline.locks.resources import Demand, claims
from pipeline.locks.ticket import Acquired, Ticket
from pipeline.runtime.services import services_for
from tests.integration.api.conftest import ADMIN, READ, hold_job, new_user, wait_for


def _operator_events(app: Any, action: str) -> list[dict[bytes, bytes]]:
    services = services_for(app)
    return [fields for _, fields in services.redis.xrange(services.keys.events)
            if fields[b"e"] == b"operator" and f'"action":"{action}"'.encode() in fields[b"d"]]


def test_live_views_show_the_running_job_its_locks_and_the_parked_one(
        client: TestClient, workers: Any, app: Any) -> None:
    user = new_user()
    first = client.post("/api/jobs", json=hold_job(3.0, user), headers=ADMIN).json()["id"]
    wait_for(lambda: explain(first, app).status == "running", what="the first job to run")
    second = client.post("/api/jobs", json=hold_job(0.0, user), headers=ADMIN).json()["id"]
    wait_for(lambda: explain(second, app).status == "parked", what="the second job to park")

    active = client.get("/api/active", headers=READ).json()
    assert [r["job_id"] for r in active if f"user:{user}" in r["resources"]] == [first]
    locks = client.get("/api/locks", headers=READ).json()
    assert [(lock["holder"], lock["mode"]) for lock in locks
            if lock["resource"] == f"user:{user}"] == [(first, "exclusive")]
    parked = client.get("/api/parked", headers=READ).json()
    assert [(p["job_id"], p["waiting_for"], p["position"]) for p in parked] == \
        [(second, f"user:{user}", 1)]
    status = client.get("/api/status", headers=READ).json()
    assert status["parked"] == 1 and status["running"] >= 1
    assert status["parked_by_kind"] == {"user": 1}
    assert set(client.get("/api/queue", headers=READ).json()) == \
        {"critical", "high", "normal", "low"}
    names = wait_for(lambda: [w["name"] for w in client.get("/api/workers",
                                                              headers=READ).json()],
                     what="the worker's load record")
    assert any(name.startswith("api-worker") for name in names)
    dashboard = client.get("/api/dashboard", headers=READ).json()
    assert dashboard["scope"] == "read"
    assert [p["job_id"] for p in dashboard["parked"]] == [second]
    assert dashboard["parked_counts"]["normal"] == 1
    wait_for(lambda: explain(second, app).status == "unknown", what="the second job to end")


def test_dead_letters_are_listed_requeued_and_purged_by_the_token_that_asked(
        client: TestClient, workers: Any, app: Any) -> None:
    job = client.post("/api/jobs", json={"task": "lockprobes.flaky", "args": [100]},
                      headers=ADMIN).json()["id"]

    def listed() -> list[dict[str, Any]]:
        return [d for d in client.get("/api/dead-letters", params={"task": "lockprobes.flaky"},
                                      headers=READ).json() if d["job_id"] == job]

    dead = wait_for(listed, what="the flaky job to be dead-lettered")
    assert dead[0]["attempts"] == 3 and "RuntimeError" in dead[0]["error"]
    refused = client.post("/api/dead-letters/requeue", json={}, headers=ADMIN)
    assert refused.status_code == 422 and listed()
    requeued = client.post("/api/dead-letters/requeue", json={"ids": [job]}, headers=ADMIN)
    assert requeued.json() == {"count": 1, "ids": [job]}
    wait_for(listed, what="the requeued job to be dead-lettered again")
    assert client.post("/api/dead-letters/purge", json={"ids": [job]},
                       headers=ADMIN).json()["count"] == 1
    assert not listed()
    by = {fields[b"d"].decode() for fields in _operator_events(app, "dlq_requeue")
          + _operator_events(app, "dlq_purge")}
    assert len(by) == 2 and all('"by":"api:admin:' in detail for detail in by)


def test_stats_cover_the_jobs_that_finished_in_the_window(
        client: TestClient, workers: Any, record: Callable[[], None]) -> None:
    since = time.time()
    user = new_user()
    for _ in range(3):
        client.post("/api/jobs", json=hold_job(0.1, user), headers=ADMIN)

    def finished() -> dict[str, Any] | None:
        record()
        params = {"since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(since - 1))}
        stats = client.get("/api/stats", params=params, headers=READ).json()
        return stats if stats["by_state"]["COMPLETED"] >= 3 else None

    stats = wait_for(finished, what="three completed jobs in the statistics")
    assert stats["execution"]["count"] >= 3 and stats["execution"]["average"] >= 0.1
    assert stats["completion_rate"] is not None
    bad = client.get("/api/stats", params={"since": "2030-01-01T00:00:00Z",
                                           "until": "2029-01-01T00:00:00Z"}, headers=READ)
    assert bad.status_code == 422


def test_maintenance_drops_a_hold_whose_lease_ran_out(client: TestClient, app: Any) -> None:
    services = services_for(app)
    needed = claims(Demand(user=new_user()), services.settings)
    assert isinstance(services.locks.acquire(Ticket("dead-holder", "dead-holder", needed, 6),
                                           host="gone", pid=1), Acquired)
    past = int((time.time() - 60) * 1000)
    for claim in needed:  # its worker died a minute ago and stopped renewing
        services.redis.zadd(services.keys.writers(claim.resource), {"dead-holder": past})
    services.redis.zadd(services.keys.holders, {"dead-holder": past})
    report = client.post("/api/maintenance/requeue-expired", headers=ADMIN).json()
    assert report["holds_dropped"] == 1
    assert explain("dead-holder", app).status == "unknown"
