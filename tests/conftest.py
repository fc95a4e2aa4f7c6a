"""Shared fixtures: a real Redis database per test process, the app on it, workers.

Every test process gets a Redis database of its own on 127.0.0.1:6379 (or
``$PIPELINE_TEST_REDIS``): db 1 without xdist, db N+1 for xdist worker ``gwN``.
Database 0 is never touched. The broker URL is put in the environment before
anything imports ``tasks.app``, so the app, the workers started in-process and
the worker subprocesses all use that database.

Redis being down is an error of every test that needs it, never a skip: the
suite must not pass when its services are missing.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest
import redis

from tests.helpers.redisdb import REDIS_URL as REDIS_BASE
from tests.helpers.redisdb import db_url

TEST_REDIS_URL = db_url(1)

# Before tasks.app (and celeryconfig) can be imported by any test module.
os.environ["PIPELINE_BROKER_URL"] = TEST_REDIS_URL
os.environ.pop("CELERY_BROKER_URL", None)
os.environ.pop("PIPELINE_RESULT_BACKEND", None)
os.environ.setdefault("PIPELINE_DATA_DIR", tempfile.mkdtemp(prefix="pipeline-tests-"))
# The load gate pauses a worker while the host is busy: on a small CI machine the
# suite's own workers would trip it at random. The gate's tests turn it on.
os.environ.setdefault("PIPELINE_LOAD_GATE", "false")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The URL of this test process's Redis database; fails loudly if Redis is down."""
    client = redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        pytest.fail(
            f"Redis at {REDIS_BASE} does not answer ({exc}). The tests need a real Redis: "
            "start it (bash scripts/test.sh starts one) or set PIPELINE_TEST_REDIS",
            pytrace=False,
        )
    finally:
        client.close()
    return TEST_REDIS_URL


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A client on the test database, flushed before the test."""
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def app(redis_client: redis.Redis, redis_url: str) -> Any:
    """The pipeline's Celery app (``tasks.app``) on the flushed test database.

    The probe tasks (:mod:`tests.tasks.probes`) are registered.
    """
    import tests.tasks.probes  # noqa: F401 -- registers the probes on the app
    from tasks.app import app as celery_app

    assert celery_app.conf.broker_url == redis_url, (
        f"tasks.app was configured with {celery_app.conf.broker_url} before the test "
        "environment was set")
    celery_app.conf.result_backend = redis_url
    return celery_app


@pytest.fixture
def start_worker(app: Any) -> Callable[..., AbstractContextManager[Any]]:
    """Start an in-process worker when the test wants: ``with start_worker(): ...``.

    Keyword arguments go to ``celery.contrib.testing.worker.start_worker``;
    the default is one solo process consuming the pipeline queue.
    """
    from celery.contrib.testing.worker import start_worker as celery_start_worker

    def start(**options: Any) -> AbstractContextManager[Any]:
        options.setdefault("pool", "solo")
        options.setdefault("concurrency", 1)
        options.setdefault("perform_ping_check", False)
        options.setdefault("shutdown_timeout", 30.0)
        options.setdefault("loglevel", "INFO")
        return celery_start_worker(app, **options)  # type: ignore[no-any-return]

    return start


@pytest.fixture
def worker(start_worker: Callable[..., AbstractContextManager[Any]]) -> Iterator[Any]:
    """An in-process worker (solo pool, concurrency 1) running for the whole test."""
    with start_worker() as running:
        yield running
