"""Flower for the pipeline: BLOCKED jobs with their reason, basic auth, a safe address.

Workers send a ``task-blocked`` event (with ``reason``, ``resource``,
``blocked_by`` and ``position``) when a job parks. Celery's event state keeps
such fields on the task but Flower's task view and API show only the fields
Celery declares; :class:`ParkedAwareTask` declares these too (so Flower's task
page has a "Reason" row and ``/api/task/info`` a ``reason`` key) and drops
them once the job leaves BLOCKED. It is set on Flower's own state class in the
``pipeline flower`` process only.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from celery.events.state import Task

from pipeline.errors import ConfigurationError
from pipeline.runtime.net import is_loopback

#: Fields of the ``task-blocked`` event shown by Flower.
BLOCKED_FIELDS = ("reason", "resource", "blocked_by", "position")
#: The state Celery's event state gives a task on ``task-blocked`` (the event's action).
BLOCKED = "BLOCKED"


class ParkedAwareTask(Task):  # type: ignore[misc]
    """Celery's task state plus the fields that say why a parked job waits."""

    reason = resource = blocked_by = position = None
    _fields = (*Task._fields, *BLOCKED_FIELDS)

    def event(self, type_: str, timestamp: float | None = None,
              local_received: float | None = None, fields: dict[str, Any] | None = None,
              **kwargs: Any) -> None:
        """Apply the event; leaving BLOCKED clears the reason it waited for."""
        super().event(type_, timestamp, local_received, fields, **kwargs)
        if self.state != BLOCKED:
            for name in BLOCKED_FIELDS:
                self.__dict__.pop(name, None)


def show_blocked_reason() -> None:
    """Make Flower's event state use :class:`ParkedAwareTask` (this process only)."""
    from flower.events import EventsState

    EventsState.Task = ParkedAwareTask


def check_credentials(address: str, basic_auth: str | None) -> list[str]:
    """The ``USER:PASSWORD`` entries of *basic_auth*; refuses an exposed Flower without them.

    Raises:
        ConfigurationError: a malformed entry (named by its number), or a
            non-loopback *address* without credentials.
    """
    entries = [e.strip() for e in (basic_auth or "").split(",") if e.strip()]
    for number, entry in enumerate(entries, start=1):
        user, sep, password = entry.partition(":")
        if not sep or not user or not password:
            raise ConfigurationError(
                f"pipeline_flower_basic_auth entry {number} is not accepted: expected "
                "USER:PASSWORD")
    if not entries and not is_loopback(address):
        raise ConfigurationError(
            f"Flower would listen on {address}, reachable from other machines, without "
            "credentials: set pipeline_flower_basic_auth (USER:PASSWORD), or bind 127.0.0.1")
    return entries


def run(app_name: str, address: str, port: int, basic_auth: list[str],
        extra: tuple[str, ...] = ()) -> None:
    """Run Flower in this process until it is stopped.

    Credentials reach Flower through its environment (``FLOWER_BASIC_AUTH``),
    never the command line, where ``ps`` would show them.
    """
    from celery.bin.celery import celery as celery_command

    show_blocked_reason()
    if basic_auth:
        os.environ["FLOWER_BASIC_AUTH"] = ",".join(basic_auth)
    else:
        os.environ.pop("FLOWER_BASIC_AUTH", None)
    argv = ["-A", app_name, "flower", f"--address={address}", f"--port={port}", *extra]
    sys.argv = ["celery", *argv]
    celery_command.main(args=argv, prog_name="celery", standalone_mode=True)
