"""Whether a process that a record names (a hold's, a worker's) still runs."""

from __future__ import annotations

import socket

import psutil

HOST = socket.gethostname()


def process_alive(host: str, pid: int | str) -> bool | None:
    """Whether process *pid* of *host* runs; None when it cannot be told (another host).

    A zombie (dead, not yet reaped by its parent) counts as gone.
    """
    if not host or host != HOST:
        return None
    try:
        process = psutil.Process(int(pid))
        return process.status() != psutil.STATUS_ZOMBIE
    except (psutil.Error, ValueError):
        return False
