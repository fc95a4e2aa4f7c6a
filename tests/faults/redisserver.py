"""A private Redis server for tests that restart it: its own port, its own append-only file.

Never the shared test Redis: a test that shuts Redis down does it to a server
only it uses, started on a free port under the test's directory.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path
from types import TracebackType

import redis

from pipeline.runtime.embedded import find_server_binary, free_port


class PrivateRedis:
    """``redis-server`` on 127.0.0.1:<free port> with ``appendonly yes`` in *directory*.

    *bind* adds addresses (the host side of network namespaces' links).
    """

    def __init__(self, directory: Path, port: int | None = None,
                 bind: tuple[str, ...] = ("127.0.0.1",)) -> None:
        self.directory = Path(directory)
        self.port = port or free_port()
        self.bind = bind
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        #: How often the append-only file is synced: ``everysec`` (Redis's default) or
        #: ``always``; read at each start.
        self.appendfsync = "everysec"

    @property
    def url(self) -> str:
        """The server's URL, database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        """A new client on the server."""
        return redis.Redis.from_url(self.url, socket_timeout=10)

    def start(self, timeout: float = 15.0) -> PrivateRedis:
        """Start the server (loading its append-only file) and wait until it serves."""
        self.directory.mkdir(parents=True, exist_ok=True)
        argv = [find_server_binary(), "--bind", *self.bind, "--protected-mode", "no",
                "--port", str(self.port),
                "--dir", str(self.directory), "--appendonly", "yes", "--save", "",
                "--appendfsync", self.appendfsync,
                "--maxmemory-policy", "noeviction", "--logfile", "redis.log"]
        self.process = subprocess.Popen(argv, cwd=self.directory, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server on port {self.port} exited: {self.log_tail()}")
            if self.serving():
                return self
            time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} not serving after {timeout} s")

    def serving(self) -> bool:
        """Whether the server answers commands (not refusing, not loading its file)."""
        client = redis.Redis.from_url(self.url, socket_timeout=0.5, socket_connect_timeout=0.5)
        try:
            return bool(client.ping()) and client.info("persistence").get("loading") == 0
        except (redis.RedisError, OSError):
            return False
        finally:
            client.close()

    def stop(self) -> None:
        """Shut the server down cleanly (the append-only file is flushed)."""
        process, self.process = self.process, None
        if process is None:
            return
        with contextlib.suppress(redis.RedisError, OSError):
            self.client().shutdown()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)

    def kill(self) -> float:
        """SIGKILL the server, as the OOM killer or a lost host would; returns when."""
        process, self.process = self.process, None
        if process is None:
            return time.time()
        process.kill()
        killed_at = time.time()
        process.wait(15)
        return killed_at

    def restart(self, down: float = 0.0) -> float:
        """Shut down, stay down *down* seconds, start again; returns when it serves again."""
        self.stop()
        time.sleep(down)
        self.start()
        self.restarts += 1
        return time.time()

    def log_tail(self, lines: int = 10) -> str:
        """The end of the server's log."""
        try:
            return "\n".join((self.directory / "redis.log").read_text().splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> PrivateRedis:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
