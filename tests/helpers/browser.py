"""A real headless browser for the dashboard test: Debian's chromium, driven by Playwright.

Playwright's own browser download cannot be fetched here, so it drives the
system's ``/usr/bin/chromium`` through ``executable_path``. When that binary
is missing and apt can install packages (root, ``apt-get`` present), the
session installs Debian's ``chromium`` package first; the tests are skipped,
saying why, only where no browser can be installed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


def _install_chromium() -> str | None:
    """Install Debian's chromium; returns why it could not be, or None."""
    if shutil.which("apt-get") is None:
        return "no apt-get on this machine"
    if os.geteuid() != 0:
        return "apt-get needs root and the tests do not run as root"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "install", "-y", "-q", "chromium"],
                 ["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium"]):
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
        if argv[1] == "install" and done.returncode == 0 and os.path.exists(CHROMIUM):
            return None
    return f"apt-get install chromium failed: {done.stderr.strip()[-300:]}"


def chromium_path() -> str:
    """The path of a chromium binary (installed with apt when missing); skips if none can be."""
    if not os.path.exists(CHROMIUM):
        why = _install_chromium()
        if why is not None:
            pytest.skip(f"no browser for the dashboard test: {CHROMIUM} is missing and {why}")
    return CHROMIUM


def launched_browser() -> Iterator[Any]:
    """A headless chromium driven by Playwright (never ``playwright install``)."""
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, headless=True, args=FLAGS)
        yield browser
        browser.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServedApi:
    """An ASGI app served by uvicorn in a thread on a free loopback port."""

    def __init__(self, api: Any) -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.server = uvicorn.Server(uvicorn.Config(api, host="127.0.0.1", port=self.port,
                                                    log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServedApi:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
