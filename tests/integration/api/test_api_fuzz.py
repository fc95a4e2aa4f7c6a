"""Property-based fuzzing of the OpenAPI schema (schemathesis): no 500, nothing queued lost.

Every operation gets generated requests with an admin token, while jobs wait
queued in the broker and parked behind a hold. Operations that exist to
remove waiting jobs (clear, dead-letter purge and requeue of ``all``, a forced
lock release) are left out: whatever they take, they take on purpose; so is an
agent's claim, which waits on purpose.
``PIPELINE_FUZZ_EXAMPLES`` sets the examples per operation (default 10; a
long run: ``PIPELINE_FUZZ_EXAMPLES=500 pytest tests/integration/api/test_api_fuzz.py``).
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from pipeline import explain
from pipeline.actions import control
from pipeline.api.app import create_app
from pipeline.locks.resources import Demand, claims
from pipeline.locks.ticket import Acquired, Blocked, Ticket
from pipeline.observe.metrics import Metrics
from pipeline.runtime.services import services_for
from tests.integration.api.conftest import ADMIN, TOKENS

EXAMPLES = int(os.environ.get("PIPELINE_FUZZ_EXAMPLES", "10"))
DESTRUCTIVE = ("/api/admin/clear", "/api/dead-letters/purge", "/api/dead-letters/requeue",
               "/api/locks/release")
#: A claim may wait up to a minute on purpose (a long poll): its bad input is covered by
#: tests/integration/api/test_agents_api.py.
LONG_POLLS = ("/api/agents/claim",)


@pytest.fixture
def waiting(app: Any, store: str) -> dict[str, list[str]]:
    """Two jobs queued in the broker and one parked behind a live hold."""
    from tests.tasks.lockprobes import hold

    queued = [hold.apply_async((0.0,), priority=p).id for p in ("low", "high")]
    services = services_for(app)
    needed = claims(Demand(user="fuzz"), services.settings)
    assert isinstance(services.locks.acquire(Ticket("fuzz-holder", "fuzz-holder", needed, 6),
                                           host="fuzz", pid=1), Acquired)
    parked = str(uuid.uuid4())
    assert isinstance(services.locks.acquire(Ticket(parked, parked, needed, 6), host="fuzz",
                                           pid=1, park_message='{"body":"[]"}',
                                           queue_key="q"), Blocked)
    return {"queued": queued, "parked": [parked]}


def _schema() -> Any:
    """The API's schema, loaded from the app itself (the Celery app is the tests')."""
    from tasks.app import app

    api = create_app(app, tokens=TOKENS, metrics=Metrics(app, worker_refresh=0))
    return schemathesis.openapi.from_asgi("/openapi.json", api).exclude(
        path=[*DESTRUCTIVE, *LONG_POLLS])


schema = _schema()


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_request_is_a_server_error_or_loses_a_waiting_job(
        case: Any, app: Any, waiting: dict[str, list[str]]) -> None:
    response = case.call(headers=ADMIN)
    assert response.status_code < 500, (case.method, case.path, response.text)
    for job in waiting["queued"]:
        if not _named(case, job):
            assert control.position(services_for(app), job).where == "queued", job
    for job in waiting["parked"]:
        if not _named(case, job):
            assert explain(job, app).status == "parked", job


def _named(case: Any, job: str) -> bool:
    """Whether the request names *job*: by its id or a prefix of it (a generated "0" is
    the unique prefix of a job whose random id starts with 0); it may act on that job."""
    named = str((case.path_parameters or {}).get("job_id", "")).strip().rstrip("…")
    return bool(named) and job.startswith(named)
