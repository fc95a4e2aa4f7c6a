"""Fixtures of the job store tests: the real Redis, PostgreSQL and SQLite.

Each test gets a flushed Redis database of its own test process (9 + the xdist
worker index), and either an SQLite file in ``tmp_path`` or a PostgreSQL schema
made for it and dropped after. A service that is down fails the test with a
message saying so; nothing is skipped.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
import redis
from sqlalchemy.orm import Session

from pipeline.keys import Keys
from pipeline.messages import events
from pipeline.store import migrate, session
from pipeline.store.recorder import Recorder
from tests.helpers import redisdb

DB_BASE = 9
POSTGRES_URL = os.environ.get(
    "PIPELINE_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
STREAM = Keys().events
DATABASES = ("sqlite", "postgresql")


def _libpq_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@pytest.fixture
def store_redis() -> Iterator[redis.Redis]:
    """A flushed Redis database of this test process, answering in text."""
    yield from redisdb.flushed(DB_BASE, decode_responses=True)


@pytest.fixture
def store_broker_url(store_redis: redis.Redis) -> str:
    """The URL of the test's (flushed) Redis database, for a worker."""
    return redisdb.db_url(DB_BASE)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL whose ``search_path`` is a new, empty schema, dropped after the test."""
    schema = f"store_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(_libpq_url(POSTGRES_URL), autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {POSTGRES_URL} is not reachable ({exc}); start it first")
    with admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
        try:
            yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
        finally:
            session.dispose_all()
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=DATABASES)
def empty_store_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """An empty database of each kind (not migrated)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store' / 'pipeline.db'}"
        session.dispose_all()
    else:
        yield request.getfixturevalue("postgres_url")


@pytest.fixture
def store_url(empty_store_url: str) -> str:
    """A database of each kind migrated to the head revision."""
    migrate.upgrade(empty_store_url)
    return empty_store_url


@pytest.fixture
def db(store_url: str) -> Iterator[Session]:
    """A session on the migrated store, for reading what the recorder wrote."""
    with session.open_store(store_url)() as s:
        yield s


@pytest.fixture
def recorder(store_redis: redis.Redis, store_url: str) -> Recorder:
    """A recorder on the test's Redis and store, reading without blocking long."""
    return Recorder(store_redis, STREAM, store_url, block_ms=50, consumer="test")


@pytest.fixture
def emit(store_redis: redis.Redis) -> Callable[..., None]:
    """Write one event to the real stream: ``emit(type, job_id, detail, t=ms)``."""

    def write(event_type: str, job_id: str, detail: dict[str, Any] | None = None,
              t: int | None = None) -> None:
        if t is None:
            events.emit(store_redis, STREAM, event_type, job_id, detail)
        else:
            store_redis.xadd(STREAM, events.encode(event_type, job_id, detail, time_ms=t))

    return write


def drain(recorder: Recorder, stop: threading.Event | None = None) -> int:
    """Run *recorder* until the stream has nothing left to read; returns entries read."""
    recorder.ensure_group()
    total = 0
    while True:
        read = recorder.run_once(stop)
        total += read
        if not read:
            return total


@pytest.fixture
def record(recorder: Recorder) -> Callable[[], int]:
    """Run the test's recorder until everything written so far is recorded."""
    return lambda: drain(recorder)
