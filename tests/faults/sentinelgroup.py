"""A Redis Sentinel group on loopback for the failover tests: a primary, a replica, three Sentinels.

Every process is a plain ``redis-server`` (Debian's binary runs as a Sentinel
with ``--sentinel``; ``apt-get install -y redis-server`` when it is missing),
on free ports, with its files under the test's directory. Sentinels notice a
dead primary after one second and promote the replica.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from pathlib import Path
from types import TracebackType

import redis

from pipeline.runtime.embedded import find_server_binary, free_port
from pipeline.runtime.redisurl import client_for

MASTER_NAME = "pipeline"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 2000


def _binary() -> str:
    found = shutil.which("redis-server") or find_server_binary()
    if not found:
        raise AssertionError("redis-server is missing: apt-get install -y redis-server")
    return found


class SentinelGroup:
    """A primary, one replica and three Sentinels watching them (quorum 2)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.ports = {"a": free_port(), "b": free_port()}
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.killed: str | None = None

    @property
    def url(self) -> str:
        """The ``sentinel://`` URL of the three Sentinels (kombu's form), database 0."""
        return ";".join(f"sentinel://127.0.0.1:{port}/0" for port in self.sentinel_ports)

    def client(self) -> redis.Redis:
        """A client on the current primary (it follows a failover)."""
        return client_for(self.url, MASTER_NAME, socket_timeout=10, socket_connect_timeout=5)

    def _spawn(self, name: str, argv: list[str]) -> None:
        self.processes[name] = subprocess.Popen(
            [_binary(), *argv], cwd=self.directory, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def _server(self, name: str, replica_of: int | None = None) -> None:
        folder = self.directory / name
        folder.mkdir(parents=True, exist_ok=True)
        argv = ["--port", str(self.ports[name]), "--bind", "127.0.0.1", "--dir", str(folder),
                "--appendonly", "yes", "--save", "", "--logfile", "redis.log",
                "--maxmemory-policy", "noeviction", "--repl-diskless-sync-delay", "0"]
        if replica_of is not None:
            argv += ["--replicaof", "127.0.0.1", str(replica_of)]
        self._spawn(name, argv)

    def _sentinel(self, index: int, port: int) -> None:
        config = self.directory / f"sentinel-{index}.conf"
        config.write_text("\n".join([
            f"port {port}", "bind 127.0.0.1", f"dir {self.directory}",
            f"logfile sentinel-{index}.log",
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.ports['a']} 2",
            f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}",
            f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}",
            f"sentinel parallel-syncs {MASTER_NAME} 1", ""]))
        self._spawn(f"sentinel-{index}", [str(config), "--sentinel"])

    def primary_port(self) -> int:
        """The port the Sentinels name as the primary now."""
        for port in self.sentinel_ports:
            with contextlib.suppress(redis.RedisError, OSError):
                found = redis.Redis(port=port, socket_timeout=2).sentinel_get_master_addr_by_name(
                    MASTER_NAME)
                if found:
                    return int(found[1])
        raise AssertionError("no Sentinel answers")

    def start(self, timeout: float = 30.0) -> SentinelGroup:
        """Start everything; returns once a Sentinel knows the replica."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._server("a")
        self._server("b", replica_of=self.ports["a"])
        for index, port in enumerate(self.sentinel_ports):
            self._sentinel(index, port)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError, OSError):
                sentinel = redis.Redis(port=self.sentinel_ports[0], socket_timeout=1)
                replicas = sentinel.sentinel_slaves(MASTER_NAME)
                others = sentinel.sentinel_sentinels(MASTER_NAME)
                synced = redis.Redis(port=self.ports["b"], socket_timeout=1).info(
                    "replication").get("master_link_status") == "up"
                if synced and replicas and len(others) >= 2 and all(
                        "s_down" not in r.get("flags", "") for r in replicas):
                    return self
            time.sleep(0.2)
        raise AssertionError(f"the Sentinel group did not form in {timeout} s: "
                             f"{self.log_tail()}")

    def kill_primary(self) -> float:
        """SIGKILL the current primary; returns when."""
        port = self.primary_port()
        name = next(n for n, p in self.ports.items() if p == port)
        process = self.processes.pop(name)
        self.killed = name
        process.kill()
        killed_at = time.time()
        process.wait(10)
        return killed_at

    def wait_failover(self, old_port: int, timeout: float = 30.0) -> float:
        """Wait until the Sentinels name another primary and it takes writes; returns when."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError, OSError, AssertionError):
                port = self.primary_port()
                if port != old_port and redis.Redis(port=port, socket_timeout=1).role()[
                        0] == b"master":
                    return time.time()
            time.sleep(0.1)
        raise AssertionError(f"no failover within {timeout} s: {self.log_tail()}")

    def restart_killed(self) -> None:
        """Start the killed server again, as a replica of the current primary."""
        if self.killed is not None:
            self._server(self.killed, replica_of=self.primary_port())
            self.killed = None
            time.sleep(2.0)  # it loads, syncs, and the Sentinels see it

    def log_tail(self, lines: int = 8) -> str:
        """The end of every log of the group."""
        found = []
        for path in sorted(self.directory.rglob("*.log")):
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            found.append(f"--- {path.name}\n" + "\n".join(tail))
        return "\n".join(found)

    def stop(self) -> None:
        """Stop every process of the group."""
        for process in self.processes.values():
            with contextlib.suppress(OSError):
                process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(10)
        self.processes.clear()

    def __enter__(self) -> SentinelGroup:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
