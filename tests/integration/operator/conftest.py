"""Fixtures of the operator tests: the app on a flushed Redis database and a migrated store.

The app is ``tasks.app`` on this test process's database (the root conftest's
``app``), pointed at a job store of the test's own: a migrated SQLite file
(copied from one migrated once per session), or, for the tests that take
``store_url``, SQLite and PostgreSQL in turn. ``record()`` writes everything
the event stream holds into that store, as the recorder process would.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from pipeline.app.recorder import recorder_for
from pipeline.cli.main import cli
from pipeline.runtime.services import _SERVICES, services_for
from pipeline.store import migrate, session
from tests.integration.locks.support import wait_for  # noqa: F401 -- used by the tests
from tests.integration.store.conftest import (  # noqa: F401 -- fixtures used by the tests
    drain,
    empty_store_url,
    postgres_url,
    store_url,
)


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite store migrated to the head revision once per session."""
    path = tmp_path_factory.mktemp("template") / "pipeline.db"
    migrate.upgrade(f"sqlite:///{path}")
    session.dispose_all()
    return path


@pytest.fixture
def sqlite_store(migrated_template: Path, tmp_path: Path) -> Iterator[str]:
    """A migrated SQLite store of the test's own."""
    path = tmp_path / "store" / "pipeline.db"
    path.parent.mkdir()
    shutil.copy(migrated_template, path)
    yield f"sqlite:///{path}"
    session.dispose_all()


def point_store(app: Any, url: str | None) -> None:
    """Make *app*'s services use the store at *url* (settings are read once per process handle)."""
    app.conf.pipeline_store_url = url
    _SERVICES.clear()


@pytest.fixture
def ops_app(app: Any, sqlite_store: str) -> Iterator[Any]:
    """``tasks.app`` on the flushed test database and a migrated SQLite store."""
    point_store(app, sqlite_store)
    yield app
    point_store(app, None)


@pytest.fixture
def record_events(ops_app: Any) -> Callable[[], int]:
    """Write every event in the stream to the app's store; returns how many were read."""

    def run() -> int:
        services_for(ops_app).emitter.flush()
        recorder = recorder_for(ops_app, block_ms=20, consumer="test")
        try:
            return drain(recorder)
        finally:
            recorder.client.close()

    return run


def invoke(*args: str, input: str | None = None) -> Result:
    """Run ``pipeline ARGS...`` in this process (stdout and stderr kept apart)."""
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def invoke_json(*args: str) -> Any:
    """Run ``pipeline ARGS... --json``, check it succeeded and return what it printed."""
    outcome = invoke(*args, "--json")
    assert outcome.exit_code == 0, outcome.output
    return json.loads(outcome.stdout)

