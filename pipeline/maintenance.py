"""Beat tasks that keep the system healthy without a person: sweeps and retention.

``install`` (called by :func:`pipeline.appsetup.install`) registers them on an
app and adds them to its beat schedule (the app's own entries win):

* ``pipeline.sweep`` every few seconds: drops holds whose lease ran out and
  hands their resources on, expires jobs parked longer than
  ``pipeline_wait_timeout``, serves lines left for later. Workers sweep too
  (their heartbeat), but an idle cluster relies on this one.
* ``pipeline.purge_queue_log`` hourly: deletes audit rows older than
  ``pipeline_log_retention``.

Both are safe on several beat instances at once and never touch a live lease.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from pipeline import conf
from pipeline.engine import engine_for

SWEEP = "pipeline.sweep"
PURGE = "pipeline.purge_queue_log"
SWEEP_EVERY = 5.0
PURGE_EVERY = 3600.0


def install(app: Celery) -> None:
    """Register the maintenance tasks on *app* and schedule them on its beat."""

    def sweep(limit: int = 500) -> dict[str, int]:
        """Drop dead holds, expire jobs parked too long, serve lines left for later."""
        dropped, expired = engine_for(app).locks.sweep(limit)
        return {"holds_dropped": dropped, "jobs_expired": expired}

    def purge_queue_log() -> dict[str, Any]:
        """Delete queue-log rows older than ``pipeline_log_retention``, in short batches."""
        from pipeline.store.retention import purge_queue_log as purge
        from pipeline.store.session import open_store

        settings = conf.read(app.conf)
        if not settings.store_enabled:
            return {"deleted": 0}
        done = purge(open_store(settings.store_url), settings.log_retention, time_budget=60.0)
        return {"deleted": done.deleted, "complete": done.complete}

    app.task(name=SWEEP, ignore_result=True, shared=False)(sweep)
    app.task(name=PURGE, ignore_result=True, shared=False)(purge_queue_log)

    def _schedule(sender: Any = None, **_: Any) -> None:
        schedule = {
            SWEEP: {"task": SWEEP, "schedule": SWEEP_EVERY},
            PURGE: {"task": PURGE, "schedule": PURGE_EVERY},
        }
        schedule.update(app.conf.beat_schedule or {})
        app.conf.beat_schedule = schedule

    app.on_after_configure.connect(_schedule, weak=False)
