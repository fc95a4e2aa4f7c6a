"""``pipeline check`` and the checks behind it, on real servers."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from pipeline.cli.main import cli
from pipeline.errors import ServiceError
from pipeline.runtime.checks import FAIL, OK, check_database, check_redis, require_safe_redis
from pipeline.runtime.embedded import EmbeddedRedis, free_port


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[str]:
    """A Redis of the test's own, whose configuration the test may change."""
    with EmbeddedRedis(str(tmp_path / "redis")) as server:
        yield server.url


def test_safe_redis_passes_every_check(private_redis: str) -> None:
    results = check_redis(private_redis)
    assert [r.level for r in results] == [OK, OK, OK], results
    require_safe_redis(private_redis)


@pytest.mark.parametrize("policy", ["allkeys-lru", "volatile-lru", "allkeys-random",
                                    "volatile-ttl"])
def test_evicting_maxmemory_policy_fails_naming_setting_value_and_fix(
        private_redis: str, policy: str) -> None:
    client = redis.Redis.from_url(private_redis)
    client.config_set("maxmemory-policy", policy)
    client.close()

    failed = [r for r in check_redis(private_redis) if r.level == FAIL]
    assert len(failed) == 1
    message = failed[0].message
    assert f"maxmemory-policy={policy}" in message
    assert "maxmemory-policy noeviction" in message
    with pytest.raises(ServiceError, match="maxmemory-policy"):
        require_safe_redis(private_redis)

    outcome = CliRunner().invoke(cli, ["check", "--broker", private_redis, "--no-database"])
    assert outcome.exit_code == 1
    assert f"maxmemory-policy={policy}" in outcome.output


def test_redis_that_does_not_answer_fails_with_its_url() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    results = check_redis(url, timeout=1.0)
    assert [r.level for r in results] == [FAIL]
    assert url in results[0].message and "does not answer" in results[0].message

    outcome = CliRunner().invoke(cli, ["check", "--broker", url, "--no-database"])
    assert outcome.exit_code == 1
    assert "does not answer" in outcome.output


def test_missing_sqlite_store_fails_and_names_the_command_that_creates_it(
        tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'missing.db'}"
    results = check_database(url)
    assert [r.level for r in results] == [FAIL]
    assert "pipeline db upgrade" in results[0].message
    assert not (tmp_path / "missing.db").exists(), "checking must not create the database"


def test_unmigrated_store_fails_and_migrated_store_passes(tmp_path: Path) -> None:
    from pipeline.store import migrate

    url = f"sqlite:///{tmp_path / 'store.db'}"
    (tmp_path / "store.db").touch()
    unmigrated = check_database(url)
    assert [r.level for r in unmigrated] == [OK, FAIL], unmigrated
    assert "pipeline db upgrade" in unmigrated[1].message

    migrate.upgrade(url)
    assert [r.level for r in check_database(url)] == [OK, OK]


def test_check_command_passes_on_safe_redis_and_migrated_store(
        private_redis: str, tmp_path: Path) -> None:
    from pipeline.store import migrate

    url = f"sqlite:///{tmp_path / 'store.db'}"
    migrate.upgrade(url)
    outcome = CliRunner().invoke(cli, ["check", "--broker", private_redis, "--database", url])
    assert outcome.exit_code == 0, outcome.output
    assert "pipeline check: all good" in outcome.output


def test_check_command_says_which_broker_it_uses_and_where_that_came_from(
        app: Any, tmp_path: Path) -> None:
    outcome = CliRunner().invoke(cli, ["check", "--no-database"])
    assert "broker" in outcome.output and "$PIPELINE_BROKER_URL" in outcome.output, outcome.output


def test_the_first_connection_logs_the_broker_and_its_source(
        app: Any, caplog: pytest.LogCaptureFixture) -> None:
    from pipeline.runtime import services

    services._LOGGED.clear()
    services._SERVICES.clear()
    with caplog.at_level(logging.INFO, logger="pipeline.runtime.services"):
        services.services_for(app).redis.ping()
        services.services_for(app).redis.ping()
    logged = [r.getMessage() for r in caplog.records if "pipeline: broker" in r.getMessage()]
    assert len(logged) == 1 and "from $PIPELINE_BROKER_URL" in logged[0], logged
