"""Publishing while Redis is down fails fast, names the broker, and publishes nothing."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery, chain

from pipeline import PipelineTask
from pipeline.app.install import install
from pipeline.errors import ServiceError
from pipeline.runtime.embedded import find_server_binary, free_port
from tests.helpers import redisdb


@pytest.fixture
def outage_app() -> Iterator[tuple[Celery, Any, str]]:
    """An app whose broker and result backend point at a port nothing listens on yet."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    app = install(Celery("outage", broker=url, backend=url, set_as_current=False))
    app.conf.pipeline_publish_timeout = 2.0

    @app.task(base=PipelineTask, name="outage.noop")
    def noop() -> None:
        return None

    yield app, noop, url


def _start_redis(url: str, directory: Path) -> subprocess.Popen[bytes]:
    port = url.rsplit(":", 1)[1].split("/")[0]
    server = subprocess.Popen([find_server_binary(), "--port", port, "--bind", "127.0.0.1",
                               "--save", "", "--appendonly", "no", "--dir", str(directory)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            return server
        except redis.ConnectionError:
            assert time.monotonic() < deadline, "the test's Redis did not start"
            time.sleep(0.05)


def test_publishing_to_a_redis_that_is_down_fails_within_the_timeout_naming_it(
        outage_app: tuple[Celery, Any, str], tmp_path: Path) -> None:
    _app, noop, url = outage_app
    started = time.monotonic()
    with pytest.raises(ServiceError, match=rf"not published: the broker {url} did not answer"):
        noop.delay()
    with pytest.raises(ServiceError, match="nothing was published"):
        chain(noop.s(), noop.s()).apply_async()
    assert time.monotonic() - started < 2 * (2.0 + 1.5)

    server = _start_redis(url, tmp_path)
    try:
        noop.delay()  # the app recovers once Redis answers
        client = redis.Redis.from_url(url)
        assert redisdb.queued(client, "*pipeline*") == 1, "a failed publish left something behind"
    finally:
        server.terminate()
        server.wait(10)
