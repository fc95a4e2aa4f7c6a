"""This host's name, and addresses a server binds: whether one is reachable from here only."""

from __future__ import annotations

import ipaddress
import socket

#: This host's name, as holds, events and metrics label a worker or a publisher.
HOST = socket.gethostname()


def is_loopback(host: str) -> bool:
    """Whether *host* is a loopback address or ``localhost`` (an empty host is all)."""
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
