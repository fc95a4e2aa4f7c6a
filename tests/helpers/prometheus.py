"""A real Prometheus for the metrics tests: Debian's ``prometheus`` package.

When ``prometheus`` or ``promtool`` is missing and apt can install packages
(root, ``apt-get`` present), the session installs the package first; the
tests are skipped, saying why and how to get it, only where that cannot be
done.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.browser import free_port

HOW = "install Debian's package: apt-get install -y prometheus"


def _install() -> str | None:
    """Install Debian's prometheus; returns why it could not be, or None."""
    if shutil.which("apt-get") is None:
        return "no apt-get on this machine"
    if os.geteuid() != 0:
        return "apt-get needs root and the tests do not run as root"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "install", "-y", "-q", "prometheus"],
                 ["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "prometheus"]):
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
        if argv[1] == "install" and done.returncode == 0 and shutil.which("promtool"):
            return None
    return f"apt-get install prometheus failed: {done.stderr.strip()[-300:]}"


def binaries() -> tuple[str, str]:
    """The paths of ``prometheus`` and ``promtool`` (installed with apt when missing)."""
    if shutil.which("prometheus") is None or shutil.which("promtool") is None:
        why = _install()
        if why is not None:
            pytest.skip(f"no Prometheus for the metrics test ({why}): {HOW}")
    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    assert prometheus is not None and promtool is not None
    return prometheus, promtool


def promtool(*args: str) -> str:
    """Run ``promtool ARGS``; its output (the test fails with it on a non-zero exit)."""
    _, tool = binaries()
    done = subprocess.run([tool, *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}{done.stderr}"
    return done.stdout + done.stderr


class Prometheus:
    """The HTTP API of a running Prometheus."""

    def __init__(self, url: str) -> None:
        self.url = url

    def get(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=10) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector of *expr* now."""
        data = self.get("/api/v1/query", query=expr)
        assert data["resultType"] == "vector", (expr, data)
        return list(data["result"])

    def targets(self) -> dict[str, tuple[str, str]]:
        """Scrape job -> (health of its target, "up" once scraped; its last error)."""
        active = self.get("/api/v1/targets")["activeTargets"]
        return {t["labels"]["job"]: (t["health"], t["lastError"]) for t in active}

    def wait_until_up(self, jobs: set[str], timeout: float = 30.0) -> None:
        """Wait until every target of *jobs* was scraped; fails with their errors."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.targets()
            if set(found) == jobs and all(h == "up" for h, _ in found.values()):
                return
            assert time.monotonic() < deadline, f"Prometheus's targets are not up: {found}"
            time.sleep(0.2)


@contextmanager
def running(config: Path, data_dir: Path) -> Iterator[Prometheus]:
    """Prometheus on a free loopback port with *config*; stopped at the end."""
    binary, _ = binaries()
    port = free_port()
    log = (data_dir / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={data_dir / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT)
    server = Prometheus(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{server.url}/-/ready", timeout=2).close()
                break
            except OSError:
                assert process.poll() is None, (data_dir / "prometheus.log").read_text()
                assert time.monotonic() < deadline, "Prometheus did not become ready"
                time.sleep(0.2)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()
