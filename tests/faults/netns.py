"""Worker "hosts" on one machine: a network namespace each, linked to the root one by veth.

Host *i* lives in namespace ``plh<i>`` and reaches the root namespace at
``10.77.<i>.1`` over its own veth pair; cutting its link (``ip link set ...
down``) cuts that host off from Redis while its processes run on, as a
network partition would. Where namespaces cannot be created (no root, no
``ip``), :class:`Hosts` falls back to plain processes with distinct host names,
and a cut freezes the host's workers (SIGSTOP) instead: to Redis both look the
same, a host that went silent.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from types import TracebackType

PREFIX = "plh"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def namespaces_work() -> bool:
    """Whether this machine lets us create a network namespace (root and ``ip``)."""
    if shutil.which("ip") is None or os.geteuid() != 0:
        return False
    probe = f"{PREFIX}-probe-{os.getpid()}"
    try:
        _ip("netns", "add", probe)
    except (subprocess.CalledProcessError, OSError):
        return False
    with contextlib.suppress(subprocess.CalledProcessError, OSError):
        _ip("netns", "del", probe)
    return True


@dataclass(frozen=True)
class Host:
    """One worker host: its name, its namespace (None when emulated) and its gateway address."""

    name: str
    netns: str | None
    address: str

    def broker_url(self, port: int) -> str:
        """The Redis URL as seen from this host."""
        return f"redis://{self.address}:{port}/0"


class Hosts:
    """*count* worker hosts, namespaced if possible; removed again on exit."""

    def __init__(self, count: int) -> None:
        self.namespaced = namespaces_work()
        tag = os.getpid() % 1000
        self.hosts = [Host(f"host{i}", f"{PREFIX}{tag}-{i}" if self.namespaced else None,
                           f"10.77.{i}.1" if self.namespaced else "127.0.0.1")
                      for i in range(1, count + 1)]
        self._frozen: dict[str, list[int]] = {}

    @property
    def addresses(self) -> tuple[str, ...]:
        """Addresses Redis must listen on for every host to reach it."""
        return tuple(sorted({"127.0.0.1", *(h.address for h in self.hosts)}))

    def _veth(self, host: Host) -> str:
        return f"{host.netns}-v"[-15:] if host.netns else ""

    def create(self) -> Hosts:
        """Create the namespaces and their links (nothing to do when emulated)."""
        for i, host in enumerate(self.hosts, start=1):
            if host.netns is None:
                continue
            outside, inside = self._veth(host), f"{host.netns}-n"[-15:]
            _ip("netns", "add", host.netns)
            _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            _ip("link", "set", inside, "netns", host.netns)
            _ip("addr", "add", f"10.77.{i}.1/24", "dev", outside)
            _ip("link", "set", outside, "up")
            for args in (("addr", "add", f"10.77.{i}.2/24", "dev", inside),
                         ("link", "set", inside, "up"), ("link", "set", "lo", "up")):
                _ip("netns", "exec", host.netns, "ip", *args)
        return self

    def cut(self, host: Host, pids: list[int]) -> None:
        """Cut *host* off from Redis (its link down; emulated: its processes frozen)."""
        if host.netns is not None:
            _ip("link", "set", self._veth(host), "down")
            return
        self._frozen[host.name] = pids
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)

    def mend(self, host: Host) -> None:
        """Give *host* its link back (emulated: thaw its processes)."""
        if host.netns is not None:
            _ip("link", "set", self._veth(host), "up")
            return
        for pid in self._frozen.pop(host.name, []):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    def remove(self) -> None:
        """Delete the namespaces and links (emulated: thaw anything still frozen)."""
        for host in self.hosts:
            if host.netns is None:
                self.mend(host)
                continue
            with contextlib.suppress(subprocess.CalledProcessError, OSError):
                _ip("link", "del", self._veth(host))
            with contextlib.suppress(subprocess.CalledProcessError, OSError):
                _ip("netns", "del", host.netns)

    def __enter__(self) -> Hosts:
        try:
            return self.create()
        except BaseException:
            self.remove()
            raise

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.remove()
