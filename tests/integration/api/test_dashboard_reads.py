"""The reads the dashboard makes besides ``/api/dashboard``: history, audit, queued, ids.

No worker runs in this module: what is published stays in the broker's lists.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.integration.api.conftest import ADMIN, READ, hold_job


def test_history_serves_one_value_per_minute_and_is_in_the_schema(
        client: TestClient, record: Callable[[], None]) -> None:
    client.post("/api/jobs", json=hold_job(0.0, priority="high"), headers=ADMIN)
    record()
    found = client.get("/api/history?minutes=5", headers=READ)
    assert found.status_code == 200, found.text
    body = found.json()
    assert len(body["minutes"]) == 5 and len(body["finished"]) == 5
    assert len(body["wait_p95"]) == 5 and len(body["lock_wait_p95"]) == 5
    assert body["depth"]["high"][-1] >= 1  # the job just published, not started
    schema = client.get("/openapi.json").json()
    minutes = next(p for p in schema["paths"]["/api/history"]["get"]["parameters"]
                   if p["name"] == "minutes")
    assert minutes["schema"]["minimum"] == 1 and minutes["schema"]["maximum"] == 1440
    assert "/api/audit" in schema["paths"] and "/api/queued" in schema["paths"]
    assert client.get("/api/history", headers={}).status_code == 401


@pytest.mark.parametrize("minutes", ["0", "1441", "-5"])
def test_history_refuses_bad_minutes_with_a_422_naming_the_field(
        client: TestClient, minutes: str) -> None:
    found = client.get(f"/api/history?minutes={minutes}", headers=READ)
    assert found.status_code == 422
    [error] = found.json()["detail"]
    assert error["loc"] == ["query", "minutes"]
    assert error["msg"] == (f"minutes={int(minutes)} is not accepted: expected a whole number "
                            "from 1 to 1440")
    assert client.get("/api/history?minutes=ten", headers=READ).status_code == 422


def test_audit_lists_operator_actions_newest_first(
        client: TestClient, record: Callable[[], None]) -> None:
    client.post("/api/jobs", json=hold_job(0.0, priority="low"), headers=ADMIN)
    flushed = client.post("/api/admin/clear", json={"priority": "low", "confirm": True},
                          headers=ADMIN)
    assert flushed.status_code == 200, flushed.text
    record()
    page = client.get("/api/audit?event=operator", headers=READ).json()
    assert page["total"] >= 1
    assert page["events"][0]["detail"]["action"] == "flush"
    assert page["events"][0]["detail"]["by"].startswith("api:admin:")
    everything = client.get("/api/audit?limit=2", headers=READ).json()
    assert len(everything["events"]) == 2 and everything["total"] >= 3
    bad = client.get("/api/audit?event=nope", headers=READ)
    assert bad.status_code == 422 and "event='nope' is not accepted" in bad.text


def test_queued_pages_one_level_in_the_order_the_jobs_will_run(client: TestClient) -> None:
    ids = [client.post("/api/jobs", json=hold_job(0.0, user=f"q{n}", project="nlp",
                                                  priority="low"), headers=ADMIN).json()["id"]
           for n in range(7)]
    first = client.get("/api/queued?priority=low&limit=3", headers=READ).json()
    assert first["total"] == 7 and first["priority"] == "low"
    assert [j["id"] for j in first["jobs"]] == ids[:3]
    assert [j["place"] for j in first["jobs"]] == [1, 2, 3]
    row = first["jobs"][0]
    assert (row["task"], row["user"], row["project"]) == ("lockprobes.hold", "q0", "nlp")
    last = client.get("/api/queued?priority=low&limit=3&offset=6", headers=READ).json()
    assert [j["id"] for j in last["jobs"]] == ids[6:]
    beyond = client.get("/api/queued?priority=low&limit=3&offset=9", headers=READ).json()
    assert beyond["jobs"] == [] and beyond["total"] == 7
    bad = client.get("/api/queued?priority=urgent", headers=READ)
    assert bad.status_code == 422 and "priority='urgent' is not accepted" in bad.text


def test_job_ids_by_prefix_list_every_match_and_only_matches(
        client: TestClient, record: Callable[[], None], app: Any) -> None:
    for task_id in ("pfx-aa1", "pfx-aa2", "pfx-b_1"):
        assert client.post("/api/jobs", json={**hold_job(0.0), "task_id": task_id},
                           headers=ADMIN).status_code == 201
    record()

    def ids(prefix: str, **extra: Any) -> Any:
        return client.get("/api/job-ids", params={"prefix": prefix, **extra},
                          headers=READ).json()

    assert ids("pfx-")["ids"] == ["pfx-aa1", "pfx-aa2", "pfx-b_1"]
    assert ids("pfx-aa")["ids"] == ["pfx-aa1", "pfx-aa2"]
    assert ids("pfx-b") == {"prefix": "pfx-b", "ids": ["pfx-b_1"], "more": False}
    assert ids("pfx-a_")["ids"] == []  # LIKE wildcards are taken literally
    assert ids("pfx-", limit=2) == {"prefix": "pfx-", "ids": ["pfx-aa1", "pfx-aa2"],
                                    "more": True}
    assert client.get("/api/job-ids?prefix=", headers=READ).status_code == 422
