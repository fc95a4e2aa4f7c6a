"""The pipeline on a Redis that speaks TLS only (client certificates) as a least-privilege user.

The Redis user has exactly the rules of :func:`pipeline.runtime.acl.acl_rules`
(the line docs/howto/sentinel.md shows) plus the key pattern of the test probes' own data:
jobs run, park and are handed their locks, the result backend works, a command
outside the rules is refused, and the password shows nowhere: not in `check`,
`status`, the worker's log, the API, the metrics or Flower.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from click.testing import CliRunner
from fastapi.testclient import TestClient

from pipeline.api.app import create_app
from pipeline.api.auth import TokenSet, parse_tokens
from pipeline.cli.main import cli
from pipeline.observe.metrics import Metrics
from pipeline.runtime.acl import acl_line
from pipeline.runtime.embedded import free_port
from tests.helpers.apps import app_on_redis_without_store
from tests.helpers.tlsredis import PASSWORD, TlsRedis
from tests.helpers.workers import ROOT, SubprocessWorker
from tests.integration.locks.support import wait_for

pytestmark = [pytest.mark.system, pytest.mark.timeout(180)]
PROBE_KEYS = "tls-probe:*"
TOKEN = "tls-read-token-123"


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRedis]:
    """A TLS-only Redis with the pipeline's ACL user."""
    with TlsRedis(tmp_path_factory.mktemp("tls-redis"), extra_keys=(PROBE_KEYS,)) as server:
        yield server


@pytest.fixture(scope="module")
def tls_app(tls_redis: TlsRedis) -> Iterator[Any]:
    """The test app pointed at the TLS Redis, as the ACL user, store off."""
    from tasks.app import app

    with app_on_redis_without_store(app, tls_redis.url()):
        yield app


@pytest.fixture(scope="module")
def tls_worker(tls_redis: TlsRedis, tls_app: Any,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[SubprocessWorker]:
    """A prefork worker on the TLS Redis as the ACL user."""
    env = {"PIPELINE_STORE_ENABLED": "false", "PIPELINE_RESULT_BACKEND": tls_redis.url(),
           "PIPELINE_LOAD_GATE": "false"}
    with SubprocessWorker(tls_redis.url(), tmp_path_factory.mktemp("tls-worker"), name="tls",
                          concurrency=2, env=env) as worker:
        yield worker


def test_jobs_run_park_and_are_handed_their_locks_over_tls_as_the_acl_user(
        tls_app: Any, tls_worker: SubprocessWorker, tls_redis: TlsRedis) -> None:
    from tests.tasks.probes import record

    results = [record.apply_async(("tls-probe:order", f"j{i}", 0.3), models=["tls-model"])
               for i in range(3)]
    assert [r.get(timeout=60) for r in results] == ["j0", "j1", "j2"]
    admin = tls_redis.admin()
    assert sorted(admin.lrange("tls-probe:order", 0, -1)) == [b"j0", b"j1", b"j2"]
    kinds = [fields[b"e"] for _, fields in admin.xrange("{pipeline}:events")]
    assert b"blocked" in kinds and kinds.count(b"completed") == 3, kinds
    log = tls_worker.log()
    assert "NOPERM" not in log and "NoPermission" not in log, log[-3000:]
    assert PASSWORD not in log


def test_a_command_outside_the_acl_is_refused(tls_redis: TlsRedis) -> None:
    client = redis.Redis.from_url(tls_redis.url(), socket_timeout=10)
    assert client.ping()
    for refused in (lambda: client.flushall(), lambda: client.config_set("maxmemory", "1mb"),
                    lambda: client.keys("*"), lambda: client.set("not-the-pipeline", 1),
                    lambda: client.execute_command("ACL", "LIST")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            refused()
    assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}


def test_without_the_client_certificate_the_server_refuses_the_connection(
        tls_redis: TlsRedis) -> None:
    url = tls_redis.url().split("&ssl_certfile=")[0]
    with pytest.raises((redis.ConnectionError, OSError)):
        redis.Redis.from_url(url, socket_timeout=5).ping()


def test_the_documented_acl_line_is_the_one_the_pipeline_runs_with() -> None:
    page = (ROOT / "docs" / "howto" / "sentinel.md").read_text()
    assert acl_line() in page


def test_the_password_shows_in_no_check_status_log_api_metrics_or_flower(
        tls_app: Any, tls_worker: SubprocessWorker, tls_redis: TlsRedis,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = tls_redis.url()
    monkeypatch.setenv("PIPELINE_BROKER_URL", url)
    monkeypatch.setenv("PIPELINE_STORE_ENABLED", "false")
    runner = CliRunner()
    shown: dict[str, str] = {}
    check = runner.invoke(cli, ["check", "--no-database"])
    shown["check"] = check.output
    assert check.exit_code == 0, check.output
    assert "answers" in check.output
    status = runner.invoke(cli, ["status"])
    shown["status"] = status.output
    assert status.exit_code == 0, status.output
    shown["status --json"] = runner.invoke(cli, ["status", "--json"]).output
    shown["worker log"] = tls_worker.log()
    tokens = TokenSet(tuple(parse_tokens(f"read:{TOKEN}", "test")))
    api = create_app(tls_app, tokens=tokens, metrics=Metrics(tls_app, worker_refresh=0))
    with TestClient(api) as client:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        for path in ("/api/status", "/api/stats", "/api/queue", "/api/active", "/api/locks",
                     "/api/workers", "/api/dashboard", "/metrics", "/openapi.json"):
            answer = client.get(path, headers=headers)
            # The store is off here: its views answer 503, naming why.
            assert answer.status_code in (200, 503), (path, answer.text)
            shown[path] = answer.text
    shown["flower"] = _flower_pages(url, tmp_path)
    leaked = [where for where, text in shown.items() if PASSWORD in text]
    assert leaked == [], f"the password shows in {leaked}"


def _flower_pages(url: str, tmp_path: Path) -> str:
    """Flower's broker and workers pages (and its log) while it runs on *url*."""
    port = free_port()
    log_path = tmp_path / "flower.log"
    env = {**os.environ, "PIPELINE_BROKER_URL": url, "PIPELINE_STORE_ENABLED": "false",
           "PIPELINE_FLOWER_BASIC_AUTH": "op:flower-pass-1"}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "flower", "--port", str(port)], cwd=ROOT,
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        def answers() -> bool:
            assert process.poll() is None, log_path.read_text()
            try:
                return httpx.get(f"{base}/healthcheck", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(answers, 60.0, "Flower to answer")
        pages = [httpx.get(f"{base}{path}", auth=("op", "flower-pass-1"), timeout=20).text
                 for path in ("/broker", "/workers", "/api/workers", "/tasks")]
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(15)
    return "\n".join([*pages, log_path.read_text(errors="replace")])
