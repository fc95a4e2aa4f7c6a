"""Agents over HTTP: claim, start, heartbeat, complete, fail, with leases, pools and locks.

The API runs in-process (or under uvicorn in a thread, for concurrent
agents); jobs of the default queue run on a real prefork worker; the agents'
jobs are claimed and reported by the test, as an agent would.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from celery import chain, chord
from fastapi.testclient import TestClient

from pipeline import explain
from pipeline.actions import deadletters
from pipeline.api.app import create_app
from pipeline.api.auth import TokenSet, parse_tokens
from pipeline.errors import AgentJobFailed
from pipeline.observe.metrics import Metrics
from pipeline.runtime.services import _SERVICES, services_for
from tests.helpers.browser import free_port
from tests.helpers.workers import SubprocessWorker
from tests.integration.api.conftest import ADMIN, ADMIN_TOKEN, READ, READ_TOKEN, wait_for
from tests.tasks.agentprobes import add, flaky, remote, total, train
from tests.tasks.lockprobes import hold, runs

PROD_TOKEN = "prod-agent-token-0123456789"
OTHER_TOKEN = "other-agent-token-0123456789"
PROD = {"Authorization": f"Bearer {PROD_TOKEN}"}
OTHER = {"Authorization": f"Bearer {OTHER_TOKEN}"}
TOKENS = TokenSet(tuple(parse_tokens(
    f"read:{READ_TOKEN}, admin:{ADMIN_TOKEN}, agent:prod:{PROD_TOKEN}, "
    f"agent:other:{OTHER_TOKEN}", "test")))

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def api(app: Any, store: str) -> Iterator[TestClient]:
    """The API with read, admin and two agents' tokens (pools prod and other)."""
    with TestClient(create_app(app, tokens=TOKENS,
                               metrics=Metrics(app, worker_refresh=0))) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def worker(redis_url: str, tmp_path_factory: pytest.TempPathFactory,
           ) -> Iterator[SubprocessWorker]:
    """A prefork worker of the default queue that knows the agent tests' tasks."""
    with SubprocessWorker(redis_url, Path(tmp_path_factory.mktemp("agents-worker")),
                          name="agents-worker", concurrency=2,
                          include=("tests.tasks.probes", "tests.tasks.lockprobes",
                                   "tests.tasks.agentprobes")) as running:
        yield running


@pytest.fixture
def short_lease(app: Any) -> Iterator[None]:
    """Leases (and locks) of one second for the API's process, for this test."""
    app.conf.pipeline_lock_lease = 1.0
    _SERVICES.clear()
    yield
    app.conf.pop("pipeline_lock_lease", None)
    _SERVICES.clear()


def claim(api: TestClient, pool: str = "prod", agent: str = "a1", wait: float = 0.0,
          headers: dict[str, str] | None = None) -> dict[str, Any] | None:
    response = api.post("/api/agents/claim", json={"agent_id": agent, "pool": pool,
                                                   "wait": wait}, headers=headers or PROD)
    assert response.status_code in (200, 204), response.text
    return response.json() if response.status_code == 200 else None


def call(api: TestClient, job: dict[str, Any], what: str, headers: dict[str, str] | None = None,
         **body: Any) -> httpx.Response:
    return api.post(f"/api/agents/jobs/{job['id']}/{what}", json={"lease": job["lease"], **body},
                    headers=headers or PROD)


def events(app: Any, job_id: str) -> list[tuple[str, dict[str, Any]]]:
    from pipeline.messages.events import decode

    keys = services_for(app).keys
    found = [decode(i, f) for i, f in services_for(app).redis.xrange(keys.events)]
    return [(e.type, e.detail) for e in found if e.job_id == job_id]


def test_an_agent_runs_a_job_and_its_result_is_where_celery_users_look(
        app: Any, api: TestClient, record: Callable[[], None]) -> None:
    published = remote.apply_async((2, 3), user="carol", priority="high")
    job = claim(api)
    assert job is not None
    assert {k: job[k] for k in ("id", "task", "args", "kwargs", "priority", "attempt")} == {
        "id": published.id, "task": "agentprobes.remote", "args": [2, 3], "kwargs": {},
        "priority": 3, "attempt": 1}
    assert job["resources"] == ["global", "user:carol"]
    assert job["lease"].startswith(f"{job['fencing_token']}.")
    assert call(api, job, "start").status_code == 200
    assert app.AsyncResult(published.id).state == "STARTED"
    first = job["lease_expires_at"]
    time.sleep(0.05)
    beat = call(api, job, "heartbeat")
    assert beat.status_code == 200 and beat.json()["lease_expires_at"] > first
    done = call(api, job, "complete", result={"sum": 5})
    assert done.json() == {"id": published.id, "state": "COMPLETED"}
    assert published.get(timeout=5) == {"sum": 5}
    assert explain(published.id, app).status == "unknown"  # its locks are gone
    record()
    row = api.get(f"/api/jobs/{published.id}", headers=READ).json()
    assert (row["state"], row["pool"], row["agent"], row["result"]) == \
        ("COMPLETED", "prod", "a1", {"sum": 5})
    started = [e for e in row["history"] if e["event"] == "started"]
    assert started[0]["detail"]["agent"] == "a1" and started[0]["detail"]["pool"] == "prod"
    # A second report of the same outcome changes nothing.
    again = call(api, job, "complete", result="late")
    assert again.status_code == 409 and again.json()["why"] == "none"


def test_a_failed_job_raises_the_agents_error_and_retries_until_dead_lettered(
        app: Any, api: TestClient, record: Callable[[], None]) -> None:
    published = flaky.apply_async((1,))
    job = claim(api)
    assert job is not None
    assert call(api, job, "fail", error="disk full").json()["state"] == "RETRY"
    assert app.AsyncResult(published.id).state == "RETRY"
    retried = wait_for(lambda: claim(api, agent="a2"), what="the retry to be claimable")
    assert (retried["id"], retried["attempt"]) == (published.id, 2)
    last = call(api, retried, "fail", error="disk still full", traceback="Traceback: ...")
    assert last.json()["state"] == "DEAD_LETTERED"
    with pytest.raises(AgentJobFailed, match="disk still full"):
        published.get(timeout=5)
    services = services_for(app)
    [dead] = [d for d in deadletters.list_dead(services) if d.job_id == published.id]
    assert dead.queue == "pool.prod" and dead.attempts == 2
    assert deadletters.requeue(services, [published.id]) == [published.id]
    requeued = claim(api, agent="a3")
    assert requeued is not None and requeued["id"] == published.id
    assert call(api, requeued, "fail", error="no", retry=False).json()["state"] == "FAILED"
    record()
    types = [e["event"] for e in api.get(f"/api/jobs/{published.id}", headers=READ).json()
             ["history"]]
    assert types.count("started") == 3 and "retried" in types and "dead_lettered" in types


def test_an_agent_token_acts_in_its_own_pool_only(app: Any, api: TestClient) -> None:
    other = remote.apply_async((1,), agent_pool="other")
    assert api.post("/api/agents/claim", json={"agent_id": "a", "pool": "other"},
                    headers=PROD).status_code == 403
    job = claim(api, pool="other", headers=OTHER)
    assert job is not None and job["id"] == other.id
    for what in ("start", "heartbeat", "complete", "fail", "release"):
        body = {"error": "x"} if what == "fail" else {}
        assert call(api, job, what, headers=PROD, **body).status_code == 403, what
    # An agent's token reads nothing and acts on nothing but its pool's jobs.
    assert api.get("/api/jobs", headers=PROD).status_code == 403
    assert api.get(f"/api/jobs/{other.id}", headers=PROD).status_code == 403
    assert api.post("/api/jobs", json={"task": "agentprobes.add", "args": [1]},
                    headers=PROD).status_code == 403
    assert api.get("/metrics", headers=PROD).status_code == 403
    # A read token cannot claim; an admin's may act for any pool.
    assert api.post("/api/agents/claim", json={"agent_id": "a", "pool": "prod"},
                    headers=READ).status_code == 403
    assert call(api, job, "complete", headers=ADMIN, result=1).status_code == 200
    assert call(api, job, "complete", headers=OTHER, result=1).status_code == 409


def test_bad_input_is_refused_naming_the_field_and_unknown_jobs_are_404(
        app: Any, api: TestClient) -> None:
    def refused(path: str, body: Any) -> list[Any]:
        response = api.post(path, json=body, headers=PROD)
        assert response.status_code == 422, response.text
        return [tuple(error["loc"]) for error in response.json()["detail"]]

    assert ("body", "agent_id") in refused("/api/agents/claim", {"pool": "prod"})
    assert ("body", "pool") in refused("/api/agents/claim", {"agent_id": "a", "pool": "a:b"})
    assert ("body", "wait") in refused("/api/agents/claim",
                                       {"agent_id": "a", "pool": "prod", "wait": 3600})
    assert ("body", "agent_id") in refused("/api/agents/claim",
                                           {"agent_id": "a b\n", "pool": "prod"})
    assert ("body", "lease") in refused("/api/agents/jobs/x/complete", {"result": 1})
    assert ("body", "error") in refused("/api/agents/jobs/x/fail", {"lease": "l"})
    assert ("body", "retries") in refused("/api/agents/jobs/x/fail",
                                          {"lease": "l", "error": "e", "retries": 1})
    unknown = api.post("/api/agents/jobs/nobody-knows/heartbeat", json={"lease": "1.x"},
                       headers=PROD)
    assert unknown.status_code == 404
    published = remote.apply_async((1,))
    job = claim(api)
    assert job is not None and job["id"] == published.id
    wrong = api.post(f"/api/agents/jobs/{job['id']}/complete", json={"lease": "1.forged"},
                     headers=PROD)
    assert wrong.status_code == 409 and wrong.json()["why"] == "stale"
    assert call(api, job, "complete", result=None).status_code == 200


def test_a_lease_that_runs_out_gives_the_job_back_and_the_late_agent_is_refused(
        app: Any, api: TestClient, short_lease: None, record: Callable[[], None]) -> None:
    published = train.apply_async((1,))
    late = claim(api, agent="late")
    assert late is not None and "model:bert" in late["resources"]
    assert call(api, late, "start").status_code == 200
    time.sleep(1.3)  # no heartbeat: the lease and the locks run out
    again = claim(api, agent="next")  # the claim path gives it back and claims it
    assert again is not None and again["id"] == published.id
    assert again["fencing_token"] > late["fencing_token"]
    refused = call(api, late, "complete", result="late")
    assert refused.status_code == 409 and refused.json()["why"] == "stale"
    assert "ran out" in refused.json()["detail"] or "late" in refused.json()["detail"]
    assert call(api, again, "complete", result="on time").status_code == 200
    assert published.get(timeout=5) == "on time"
    record()
    history = api.get(f"/api/jobs/{published.id}", headers=READ).json()["history"]
    given = [e for e in history if e["event"] == "queued" and e["detail"].get("given_back")]
    assert given and "lease of agent late ran out" in given[0]["detail"]["reason"]


def test_a_long_poll_is_woken_by_a_publish(app: Any, api: TestClient) -> None:
    found: dict[str, Any] = {}

    def poll() -> None:
        started = time.monotonic()
        found["job"] = claim(api, wait=20)
        found["took"] = time.monotonic() - started

    thread = threading.Thread(target=poll)
    thread.start()
    time.sleep(0.5)
    published = remote.apply_async((7,))
    thread.join(15)
    assert found["job"]["id"] == published.id
    assert found["took"] < 3.0
    started = time.monotonic()
    assert claim(api, wait=0.6) is None
    assert 0.5 <= time.monotonic() - started < 3.0


def test_every_agent_waiting_is_woken_when_as_many_jobs_arrive(
        app: Any, api: TestClient) -> None:
    took: dict[int, float] = {}

    def poll(number: int) -> None:
        started = time.monotonic()
        assert claim(api, agent=f"w{number}", wait=15) is not None
        took[number] = time.monotonic() - started

    threads = [threading.Thread(target=poll, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    for n in range(3):
        remote.apply_async((n,))
    for thread in threads:
        thread.join(20)
    assert sorted(took) == [0, 1, 2] and max(took.values()) < 5.0, took


def test_agents_and_workers_contend_for_one_model_by_one_rule(
        app: Any, api: TestClient, worker: SubprocessWorker, redis_client: Any) -> None:
    running = hold.apply_async((1.5, "worker-first"), models=["bert"])
    wait_for(lambda: explain(running.id, app).status == "running", what="the worker's job")
    agents_job = train.apply_async(("x",))
    assert claim(api) is None  # parked behind the worker's hold on bert
    assert explain(agents_job.id, app).status == "parked"
    job = claim(api, wait=20)  # handed the model when the worker's job ends
    claimed_at = time.time()
    assert job is not None and job["id"] == agents_job.id
    [first] = [r for r in runs(redis_client) if r["id"] == running.id]
    assert first["end"] <= claimed_at
    # While the agent holds bert, a worker's job on it parks until the agent completes.
    behind = hold.apply_async((0.0, "worker-after"), models=["bert"])
    wait_for(lambda: explain(behind.id, app).status == "parked", what="the worker's job parks")
    time.sleep(0.5)
    assert not [r for r in runs(redis_client) if r["id"] == behind.id]
    completed_at = time.time()
    assert call(api, job, "complete", result="trained").status_code == 200
    behind.get(timeout=20)
    [after] = [r for r in runs(redis_client) if r["id"] == behind.id]
    assert after["start"] >= completed_at - 0.05


def test_a_workflow_with_an_agent_step_in_the_middle(
        app: Any, api: TestClient, worker: SubprocessWorker) -> None:
    flow = chain(add.s(1, 1), remote.s(), add.s(10)).apply_async(user="dora")
    job = claim(api, wait=20)
    assert job is not None and job["args"] == [2] and job["workflow"]
    assert job["resources"] == ["global", "user:dora"]
    # The agent's step runs under the workflow's hold, taken over from the first step.
    hold_ = services_for(app).lock_reads.explain(job["id"], job["workflow"])
    assert (hold_.status, hold_.current_job, hold_.host) == ("running", job["id"], "agent:a1")
    assert call(api, job, "complete", result=5).status_code == 200
    assert flow.get(timeout=20) == 15
    assert flow.parent.get(timeout=5) == 5


def test_a_chain_led_by_an_agent_and_a_chord_of_agents_continue_on_workers(
        app: Any, api: TestClient, worker: SubprocessWorker) -> None:
    led = chain(remote.s(4), add.s(1)).apply_async(user="erin")
    first = claim(api, wait=20)
    assert first is not None and first["args"] == [4]
    assert call(api, first, "complete", result=40).status_code == 200
    assert led.get(timeout=20) == 41
    gathered = chord([remote.s(n) for n in (1, 2, 3)], total.s()).apply_async()
    for _ in range(3):
        job = claim(api, wait=20)
        assert job is not None
        assert call(api, job, "complete", result=job["args"][0] * 10).status_code == 200
    assert gathered.get(timeout=20) == 60


def test_an_agents_failure_fails_the_rest_of_its_chain_and_calls_its_errback(
        app: Any, api: TestClient, worker: SubprocessWorker, redis_client: Any) -> None:
    from tests.tasks.probes import record

    flow = chain(remote.s(1), add.s(1)).apply_async(
        link_error=record.si("probe:errback", "called"))
    job = claim(api, wait=20)
    assert job is not None
    assert call(api, job, "fail", error="broken", retry=False).status_code == 200
    with pytest.raises(AgentJobFailed, match="broken"):
        flow.get(timeout=20)
    wait_for(lambda: redis_client.lrange("probe:errback", 0, -1) == [b"called"],
             what="the errback")


def test_cancelling_a_claimed_job_ends_its_lease_and_tells_its_agent(
        app: Any, api: TestClient) -> None:
    published = train.apply_async((1,))
    job = claim(api)
    assert job is not None
    cancelled = api.post(f"/api/jobs/{published.id}/cancel", headers=ADMIN)
    assert cancelled.json()["where"] == "running"
    refused = call(api, job, "heartbeat")
    assert refused.status_code == 409 and refused.json()["why"] == "cancelled"
    assert app.AsyncResult(published.id).state == "REVOKED"
    assert not services_for(app).redis.keys("{pipeline}:hold:*")


def test_operators_see_a_pool_job_waiting_and_act_on_it(app: Any, api: TestClient) -> None:
    published = remote.apply_async((1,))
    view = api.get(f"/api/jobs/{published.id}", headers=READ).json()
    assert (view["state"], view["where"]) == ("QUEUED", "queued")
    assert "agent pool prod" in view["why_not_running"]
    position = api.get(f"/api/jobs/{published.id}/position", headers=READ).json()
    assert (position["where"], position["queue"], position["place"]) == ("queued",
                                                                        "pool.prod", 1)
    moved = api.post(f"/api/jobs/{published.id}/priority", json={"priority": "critical"},
                     headers=ADMIN)
    assert moved.json()["where"] == "queued"
    metrics = api.get("/metrics", headers=READ).text
    assert 'pipeline_queue_depth{priority="critical",queue_name="pool.prod"} 1.0' in metrics
    later = remote.apply_async((2,), countdown=60)
    delayed = api.get(f"/api/jobs/{later.id}", headers=READ).json()
    assert (delayed["state"], delayed["where"]) == ("QUEUED", "delayed")
    assert "pool.prod until" in delayed["why_not_running"]
    assert claim(api)["id"] == published.id  # type: ignore[index]  # not the delayed one
    assert claim(api) is None
    assert api.post(f"/api/jobs/{later.id}/cancel", headers=ADMIN).json()["where"] == "delayed"
    assert app.AsyncResult(later.id).state == "REVOKED"
    flushed = remote.apply_async((3,))
    report = api.post("/api/admin/clear", json={"confirm": True, "state": "queued"},
                      headers=ADMIN).json()
    assert flushed.id in [j["job_id"] for j in report["jobs"]]


def test_a_claim_storm_of_twenty_agents_never_hands_one_job_to_two(
        app: Any, store: str) -> None:
    import uvicorn

    jobs = {remote.apply_async((n,)).id for n in range(40)}
    jobs |= {remote.apply_async((n,), user="one-at-a-time").id for n in range(5)}
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(
        create_app(app, tokens=TOKENS, metrics=Metrics(app, worker_refresh=0)),
        host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, what="uvicorn to start")
    got: list[str] = []
    running: set[str] = set()
    overlaps: list[str] = []
    guard = threading.Lock()
    start = threading.Barrier(20)

    def agent(number: int) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=PROD,
                          timeout=30) as http:
            start.wait()
            while True:
                response = http.post("/api/agents/claim", json={
                    "agent_id": f"storm{number}", "pool": "prod", "wait": 3})
                if response.status_code == 204:
                    return
                job = response.json()
                with guard:
                    got.append(job["id"])
                    if "user:one-at-a-time" in job["resources"]:
                        overlaps.extend(running)
                        running.add(job["id"])
                time.sleep(0.01)
                with guard:
                    running.discard(job["id"])
                assert http.post(f"/api/agents/jobs/{job['id']}/complete",
                                 json={"lease": job["lease"]}).status_code == 200

    try:
        agents = [threading.Thread(target=agent, args=(n,)) for n in range(20)]
        for each in agents:
            each.start()
        for each in agents:
            each.join(60)
    finally:
        server.should_exit = True
        thread.join(10)
    assert len(got) == len(set(got))  # never one job to two agents
    assert set(got) == jobs  # and every job to one (the global cap of 5 let them in turn)
    assert overlaps == []  # one user's jobs one at a time
