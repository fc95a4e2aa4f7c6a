"""Jobs through the REST API, against a real prefork worker, Redis and the store."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from pipeline import explain
from tasks.app import app as celery_app
from tests.integration.api.conftest import ADMIN, READ, hold_job, new_user, wait_for

_user = new_user
_hold = hold_job


def park_behind(client: TestClient, user: str, seconds: float) -> tuple[str, str]:
    """Two jobs of *user*: the first runs *seconds*, the second parks behind it."""
    first = client.post("/api/jobs", json=_hold(seconds, user), headers=ADMIN).json()["id"]
    wait_for(lambda: explain(first, celery_app).status == "running", what="the first job to run")
    second = client.post("/api/jobs", json=_hold(0.0, user), headers=ADMIN).json()["id"]
    wait_for(lambda: explain(second, celery_app).status == "parked", what="the second job to park")
    return first, second


def _state(client: TestClient, job_id: str) -> str:
    response = client.get(f"/api/jobs/{job_id}", headers=READ)
    return str(response.json()["state"]) if response.status_code == 200 else ""


def test_enqueued_job_runs_and_its_record_shows_completed_with_history(
        client: TestClient, workers: Any, record: Callable[[], None]) -> None:
    response = client.post("/api/jobs", json=_hold(user=_user(), priority="high"),
                           headers=ADMIN)
    assert response.status_code == 201, response.text
    job_id = response.json()["id"]

    def done() -> bool:
        record()
        return _state(client, job_id) == "COMPLETED"

    wait_for(done, what="the job to complete")
    body = client.get(f"/api/jobs/{job_id}", headers=READ).json()
    assert body["priority"] == "high" and body["recorded"] is True
    assert [e["event"] for e in body["history"]][:1] == ["queued"]
    assert "completed" in [e["event"] for e in body["history"]]
    assert body["where"] == "finished"
    assert body["why_not_running"] == "finished: COMPLETED"


def test_parked_job_shows_why_it_waits_and_its_position(
        client: TestClient, workers: Any, record: Callable[[], None]) -> None:
    user = _user()
    first, second = park_behind(client, user, 3.0)
    body = client.get(f"/api/jobs/{second}", headers=READ).json()
    assert body["state"] == "BLOCKED"
    assert (body["where"], body["place"], body["waiting_for"], body["priority"]) == \
        ("parked", 1, f"user:{user}", "normal")
    assert f"waiting for user:{user}" in body["why_not_running"]
    assert body["blocked_by"] == first
    position = client.get(f"/api/jobs/{second}/position", headers=READ).json()
    assert position["where"] == "parked" and position["place"] == 1


def test_cancel_takes_a_parked_job_out_and_the_store_records_it_cancelled(
        client: TestClient, workers: Any, record: Callable[[], None]) -> None:
    user = _user()
    _, second = park_behind(client, user, 2.0)
    response = client.post(f"/api/jobs/{second}/cancel", headers=ADMIN)
    assert response.json() == {"id": second, "found": True, "where": "parked", "done": True,
                               "message": "cancelled (it was parked)"}
    assert explain(second, celery_app).status == "unknown"
    record()
    assert _state(client, second) == "CANCELLED"
    again = client.post(f"/api/jobs/{second}/cancel", headers=ADMIN)
    assert again.status_code == 409 and "finished: CANCELLED" in again.json()["detail"]


def test_list_filters_by_user_state_and_priority_and_pages(
        client: TestClient, workers: Any, record: Callable[[], None]) -> None:
    user = _user()
    ids = [client.post("/api/jobs", json=_hold(user=user, priority=p), headers=ADMIN)
           .json()["id"] for p in ("low", "high", "low")]

    def all_done() -> bool:
        record()
        page = client.get("/api/jobs", params={"user": user, "state": "completed"},
                          headers=READ).json()
        return page["total"] == 3

    wait_for(all_done, what="three completed jobs")
    low = client.get("/api/jobs", params={"user": user, "priority": "low"}, headers=READ).json()
    assert low["total"] == 2 and {j["id"] for j in low["jobs"]} == {ids[0], ids[2]}
    first = client.get("/api/jobs", params={"user": user, "limit": 2}, headers=READ).json()
    second = client.get("/api/jobs", params={"user": user, "limit": 2, "offset": 2},
                        headers=READ).json()
    assert len(first["jobs"]) == 2 and len(second["jobs"]) == 1
    assert {j["id"] for j in first["jobs"] + second["jobs"]} == set(ids)
    bad = client.get("/api/jobs", params={"state": "sleeping"}, headers=READ)
    assert bad.status_code == 422 and "state" in bad.json()["detail"][0]["msg"]
