"""What a running job may ask about its own hold: its fencing tokens, a lost lease.

Both read this process's registry of running jobs (:mod:`pipeline.runtime.running`)
for the job Celery is running in this thread.
"""

from __future__ import annotations

from pipeline.runtime.running import RunningJob
from pipeline.runtime.services import Services


def _current() -> tuple[Services | None, RunningJob | None]:
    from celery import current_task

    if current_task is None:
        return None, None
    services: Services | None = getattr(current_task, "services", None)  # a pipeline task's
    if services is None:
        return None, None
    return services, services.running.get(getattr(current_task.request, "id", None))


def lease_lost() -> bool:
    """Whether the running job's lease ran out (another job may hold its resources now).

    The heartbeat notices within one interval; a job doing external writes
    should check this, or better pass :func:`fencing_tokens` to the store.
    """
    services, running = _current()
    if services is None or running is None:
        return False
    return bool(services.heartbeat.is_lost(running.holder))


def fencing_tokens() -> dict[str, int]:
    """Fencing tokens of the running job's resources (resource id -> token).

    A token only grows per resource: pass it to an external store so it can
    refuse a write from a holder whose lease ran out.
    """
    _, running = _current()
    return {} if running is None else dict(running.tokens)
