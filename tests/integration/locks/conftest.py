"""Fixtures for the lock engine: a real Redis database per test process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from pipeline import conf
from pipeline.keys import Keys
from pipeline.locks.engine import RedisLockEngine
from tests.helpers import redisdb
from tests.helpers.apps import point_app_at

DB_BASE = 5


@pytest.fixture
def lock_redis() -> Iterator[redis.Redis]:
    """A flushed Redis database of this test process (fails loudly if Redis is down)."""
    yield from redisdb.flushed(DB_BASE)


@pytest.fixture
def make_locks(lock_redis: redis.Redis) -> Callable[..., RedisLockEngine]:
    """Build a lock engine with settings overridden by keyword (``pipeline_`` omitted)."""

    def build(**overrides: Any) -> RedisLockEngine:
        settings = conf.read({f"pipeline_{k}": v for k, v in overrides.items()})
        return RedisLockEngine(lock_redis, Keys(settings.redis_prefix), settings)

    return build


@pytest.fixture
def broker_url(lock_redis: redis.Redis) -> str:
    """The URL of this test's Redis database, for workers and the app."""
    return redisdb.db_url(DB_BASE)


@pytest.fixture
def pipeline_app(broker_url: str) -> Iterator[Any]:
    """The pipeline app pointed at this test's database."""
    from tasks.app import app

    old = (app.conf.broker_url, app.conf.result_backend)
    point_app_at(app, broker_url, broker_url)
    yield app
    point_app_at(app, *old)


@pytest.fixture
def workers(broker_url: str, tmp_path: Any) -> Iterator[Callable[..., Any]]:
    """Start real worker processes; all are stopped at the end of the test."""
    from tests.helpers.workers import SubprocessWorker

    started: list[SubprocessWorker] = []

    def start(concurrency: int = 2, pool: str = "prefork", **settings: Any) -> SubprocessWorker:
        """A worker whose ``pipeline_<name>`` settings are given as keywords."""
        env = {"PIPELINE_STORE_ENABLED": "false",
               **{f"PIPELINE_{k.upper()}": str(v) for k, v in settings.items()}}
        worker = SubprocessWorker(broker_url, tmp_path, name=f"w{len(started) + 1}",
                                  concurrency=concurrency, pool=pool,
                                  include=("tests.tasks.lockprobes",), env=env)
        started.append(worker)
        return worker.start()

    yield start
    for worker in started:
        worker.stop()
