"""Fixtures of the API tests: the app on the test Redis, a migrated store, tokens, a client.

The API runs in-process (FastAPI's TestClient) on the real Redis and SQLite
store; a worker (the root conftest's in-process worker) runs the jobs; the
recorder is drained on demand so the store is current when a test reads it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from pipeline import conf
from pipeline.api.app import create_app
from pipeline.api.auth import TokenSet, parse_tokens
from pipeline.app.recorder import recorder_for
from pipeline.broker.layout import queue_lists
from pipeline.observe.metrics import Metrics
from pipeline.runtime.services import services_for
from pipeline.store import migrate
from tests.helpers.browser import launched_browser
from tests.helpers.workers import SubprocessWorker
from tests.tasks import lockprobes  # noqa: F401 -- the API enqueues its jobs by name

READ_TOKEN = "read-token-0123456789abcdef"
ADMIN_TOKEN = "admin-token-0123456789abcdef"
READ = {"Authorization": f"Bearer {READ_TOKEN}"}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
TOKENS = TokenSet(tuple(parse_tokens(f"read:{READ_TOKEN}, admin:{ADMIN_TOKEN}", "test")))

_migrated: set[str] = set()


@pytest.fixture
def store(app: Any) -> str:
    """The app's store URL (SQLite in the test data directory), migrated once."""
    url = conf.read(app.conf).store_url
    if url not in _migrated:
        migrate.upgrade(url)
        _migrated.add(url)
    return url


@pytest.fixture
def record(app: Any, store: str) -> Callable[[], None]:
    """Write every event so far to the store (waits for buffered ``queued`` events)."""
    recorder = recorder_for(app, block_ms=50, consumer="api-tests", linger_ms=0)

    def drain() -> None:
        services_for(app).emitter.flush()
        recorder.ensure_group()
        while recorder.run_once():
            pass

    return drain


@pytest.fixture(scope="module")
def workers(redis_url: str, tmp_path_factory: pytest.TempPathFactory,
            ) -> Iterator[SubprocessWorker]:
    """A prefork worker with three processes, for the module's tests (jobs can park)."""
    with SubprocessWorker(redis_url, Path(tmp_path_factory.mktemp("api-worker")),
                          name="api-worker", concurrency=3,
                          include=("tests.tasks.probes", "tests.tasks.lockprobes")) as worker:
        yield worker


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """A headless chromium (Debian's, installed with apt when missing) driven by Playwright."""
    yield from launched_browser()


@pytest.fixture
def client(app: Any, store: str) -> Iterator[TestClient]:
    """The API on the test app with a read and an admin token (workers not polled)."""
    api = create_app(app, tokens=TOKENS, metrics=Metrics(app, worker_refresh=0))
    with TestClient(api) as test_client:
        yield test_client


def broker_messages(app: Any) -> int:
    """Messages waiting in the broker's lists of the default queue."""
    client = services_for(app).redis
    return sum(int(client.llen(name)) for name in queue_lists(app))


def queued_events(app: Any) -> int:
    """``queued`` events in the stream (published jobs), the emitter's buffer included."""
    services_for(app).emitter.flush()
    client = services_for(app).redis
    return sum(1 for _, fields in client.xrange(services_for(app).keys.events)
               if fields.get(b"e") == b"queued")


def wait_for(check: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    """Poll *check* until it returns something true."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        time.sleep(0.05)


def new_user() -> str:
    """A user name no other test uses."""
    return f"u{uuid.uuid4().hex[:8]}"


def hold_job(seconds: float = 0.0, user: str | None = None, **extra: Any) -> dict[str, Any]:
    """An enqueue body of ``lockprobes.hold`` (holds its locks for *seconds*)."""
    return {"task": "lockprobes.hold", "kwargs": {"seconds": seconds},
            **({"user": user} if user else {}), **extra}
