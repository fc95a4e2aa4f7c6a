"""The embedded Redis: one owner per data directory, durable queue, clean stop."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import psutil
import pytest
import redis

from pipeline.errors import ServiceError
from pipeline.runtime import embedded
from pipeline.runtime.broker import choose_broker
from pipeline.runtime.embedded import EmbeddedRedis, find_server_binary


def test_server_binary_is_found_and_runs() -> None:
    binary = find_server_binary()
    assert os.access(binary, os.X_OK)
    assert "server" in os.path.basename(binary)


def test_server_answers_writes_its_url_and_removes_it_on_stop(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PIPELINE_BROKER_URL", raising=False)
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    monkeypatch.setenv("PIPELINE_DATA_DIR", str(tmp_path))
    with EmbeddedRedis() as server:
        assert choose_broker().url == server.url
        assert choose_broker().source == f"the embedded Redis named in {tmp_path}/redis.url"
        client = redis.Redis.from_url(server.url)
        config = client.config_get("*")
        assert config["maxmemory-policy"] == "noeviction"
        assert config["appendonly"] == "yes"
        assert config["save"] == ""
        assert config["dir"] == str(tmp_path)
        pid = server.process.pid if server.process else 0
        client.close()
    assert not (tmp_path / embedded.URL_FILE).exists()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert choose_broker().url == embedded.DEFAULT_BROKER_URL
    assert choose_broker().is_default


def test_second_owner_of_a_data_directory_is_refused_with_a_clear_message(
        tmp_path: Path) -> None:
    with EmbeddedRedis(str(tmp_path)) as first:
        with pytest.raises(ServiceError) as caught:
            EmbeddedRedis(str(tmp_path)).start()
        message = str(caught.value)
        assert "already in use" in message and first.url in message
        assert redis.Redis.from_url(first.url).ping()


def test_data_survives_a_restart_on_another_port(tmp_path: Path) -> None:
    with EmbeddedRedis(str(tmp_path)) as server:
        redis.Redis.from_url(server.url).rpush("kept", "a", "b")
    with EmbeddedRedis(str(tmp_path)) as server:
        assert redis.Redis.from_url(server.url).lrange("kept", 0, -1) == [b"a", b"b"]


def test_server_left_by_a_killed_owner_is_stopped_before_a_new_one_starts(
        tmp_path: Path) -> None:
    orphan = EmbeddedRedis(str(tmp_path))
    orphan.start()
    assert orphan.process is not None
    orphan_pid = orphan.process.pid
    redis.Redis.from_url(orphan.url).set("survives", "yes")
    # The owner "dies": it lets go of its lock without stopping its server.
    assert orphan._lock is not None
    orphan._lock.close()
    orphan._lock = None

    with EmbeddedRedis(str(tmp_path)) as server:
        orphan.process.wait(10)
        assert not psutil.pid_exists(orphan_pid) or \
            psutil.Process(orphan_pid).status() == psutil.STATUS_ZOMBIE
        assert redis.Redis.from_url(server.url).get("survives") == b"yes"
    orphan.process = None


def test_a_url_file_whose_server_is_gone_is_an_error_naming_the_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.delenv("PIPELINE_BROKER_URL", raising=False)
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    monkeypatch.setenv("PIPELINE_DATA_DIR", str(tmp_path))
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    (tmp_path / embedded.URL_FILE).write_text(f"redis://127.0.0.1:{port}/0\n")
    started = time.monotonic()
    with pytest.raises(ServiceError, match=rf"{tmp_path}/redis.url names .* does not answer"):
        choose_broker()
    assert time.monotonic() - started < 3


def test_the_broker_says_where_it_came_from(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    from pipeline.runtime.broker import describe

    monkeypatch.setenv("PIPELINE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PIPELINE_BROKER_URL", "redis://10.0.0.1:6379/2")
    assert choose_broker().source == "$PIPELINE_BROKER_URL"
    assert describe("redis://10.0.0.1:6379/2") == "$PIPELINE_BROKER_URL"
    assert describe("redis://other:6379/0") == "the app's own broker_url setting"
    monkeypatch.delenv("PIPELINE_BROKER_URL")
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://10.0.0.2:6379/0")
    assert choose_broker().source == "$CELERY_BROKER_URL"
