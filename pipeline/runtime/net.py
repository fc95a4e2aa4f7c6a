"""Addresses a server binds: whether one is reachable from this host only."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """Whether *host* is a loopback address or ``localhost`` (an empty host is all)."""
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
