"""Input the API refuses, and actions on jobs still in the broker (no worker runs here)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.testclient import TestClient

from tests.integration.api.conftest import (
    ADMIN,
    READ,
    broker_messages,
    hold_job,
    new_user,
    queued_events,
)

_user = new_user
_hold = hold_job


def test_reprioritize_moves_a_queued_job_and_refuses_a_bad_priority(
        client: TestClient, app: Any) -> None:
    job_id = client.post("/api/jobs", json=_hold(), headers=ADMIN).json()["id"]
    moved = client.post(f"/api/jobs/{job_id}/priority", json={"priority": "critical"},
                        headers=ADMIN)
    assert moved.json() == {"id": job_id, "found": True, "where": "queued", "done": True,
                            "message": "now critical (queued)"}
    position = client.get(f"/api/jobs/{job_id}/position", headers=READ).json()
    assert position["where"] == "queued" and position["priority"] == "critical"
    bad = client.post(f"/api/jobs/{job_id}/priority", json={"priority": "urgent"},
                      headers=ADMIN)
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"][-1] == "priority"


def test_unknown_job_is_404_for_get_cancel_and_reprioritize(client: TestClient) -> None:
    missing = str(uuid.uuid4())
    assert client.get(f"/api/jobs/{missing}", headers=READ).status_code == 404
    assert client.post(f"/api/jobs/{missing}/cancel", headers=ADMIN).status_code == 404
    assert client.post(f"/api/jobs/{missing}/priority", json={"priority": "low"},
                       headers=ADMIN).status_code == 404
    # Blank ids (what an id prefix is cut down to when only spaces or the mark "…" are
    # left) are refused, never a server error.
    for blank in ("%20", "%E2%80%A6"):
        assert client.get(f"/api/jobs/{blank}", headers=READ).status_code in (404, 422)
        assert client.post(f"/api/jobs/{blank}/cancel", headers=ADMIN).status_code in (404, 422)


def test_bad_input_is_422_naming_the_field_and_publishes_nothing(
        client: TestClient, app: Any) -> None:
    cases = [
        (_hold(priority="urgent"), "priority"),
        (_hold(priority=12), "priority"),
        ({"task": "no.such.task"}, "task"),
        ({"task": "pipeline.sweep"}, "task"),  # registered, not a pipeline job
        (_hold(model=["bert"]), "model"),  # misspelt option: unknown field
        (_hold(models=[""]), "models"),
        (_hold(user="bad\nname"), "user"),
        ({"task": "lockprobes.hold", "args": [1, 2, 3, 4, 5]}, None),  # wrong arity
    ]
    for body, field in cases:
        response = client.post("/api/jobs", json=body, headers=ADMIN)
        assert response.status_code == 422, (body, response.text)
        detail = response.json()["detail"]
        if field is not None:
            assert any(field in [str(p) for p in item["loc"]] or field in item["msg"]
                       for item in detail), (field, detail)
    assert broker_messages(app) == 0
    assert queued_events(app) == 0


def test_batch_publishes_all_or_nothing(client: TestClient, app: Any) -> None:
    good = [_hold(priority="low"), _hold(priority="critical", user=_user())]
    response = client.post("/api/jobs/batch", json={"jobs": good}, headers=ADMIN)
    assert response.status_code == 201, response.text
    assert len(response.json()["jobs"]) == 2
    assert broker_messages(app) == 2
    bad = [_hold(), _hold(priority="soon"), _hold()]
    rejected = client.post("/api/jobs/batch", json={"jobs": bad}, headers=ADMIN)
    assert rejected.status_code == 422
    assert rejected.json()["detail"][0]["loc"] == ["body", "jobs", 1, "priority"]
    unknown = client.post("/api/jobs/batch", json={"jobs": [_hold(), {"task": "nope"}]},
                          headers=ADMIN)
    assert unknown.status_code == 422
    assert unknown.json()["detail"][0]["loc"] == ["body", "jobs", 1, "task"]
    # Refused by enqueue_many itself (the lock layer's check), after the first item passed.
    control = client.post("/api/jobs/batch", json={"jobs": [_hold(), _hold(user="a\nb")]},
                          headers=ADMIN)
    assert control.status_code == 422, control.text
    assert control.json()["detail"][0]["loc"][:3] == ["body", "jobs", 1]
    assert broker_messages(app) == 2
    assert queued_events(app) == 2


def test_clear_needs_confirmation_shows_a_dry_run_and_records_who_flushed(
        client: TestClient, app: Any) -> None:
    for level in ("low", "low", "high"):
        client.post("/api/jobs", json=_hold(priority=level), headers=ADMIN)
    refused = client.post("/api/admin/clear", json={"priority": "low"}, headers=ADMIN)
    assert refused.status_code == 422 and "confirm" in refused.json()["detail"][0]["msg"]
    dry = client.post("/api/admin/clear", json={"priority": "low", "dry_run": True},
                      headers=ADMIN).json()
    assert dry["count"] == 2 and dry["dry_run"] is True
    assert broker_messages(app) == 3
    done = client.post("/api/admin/clear", json={"priority": "low", "confirm": True},
                       headers=ADMIN).json()
    assert done["count"] == 2 and done["by"].startswith("api:admin:")
    assert broker_messages(app) == 1
    bad = client.post("/api/admin/clear", json={"priority": "asap", "confirm": True},
                      headers=ADMIN)
    assert bad.status_code == 422 and broker_messages(app) == 1
