"""Beat tasks that keep the system healthy without a person: sweeps and retention.

``install`` (called by :func:`pipeline.app.install.install`) registers them on an
app and adds them to its beat schedule (the app's own entries win):

* ``pipeline.sweep`` every few seconds (:func:`sweep_once`): gives back the
  jobs of agents whose lease ran out, drops holds whose lease ran out and hands
  their resources on, expires jobs parked longer than
  ``pipeline_wait_timeout``, serves lines left for later. Workers sweep too
  (their heartbeat), but an idle cluster relies on this one. A sweep that did
  something writes a ``maintenance`` event (action ``sweep``) with its
  :class:`SweepReport`; an idle one writes nothing.
* ``pipeline.purge_queue_log`` hourly: deletes audit rows older than
  ``pipeline_log_retention``.

Both are safe on several beat instances at once and never touch a live lease.
Beat sends them to their own queue with an ``expires`` of one period; every
worker runs them in its main process, never in a pool process
(:mod:`pipeline.actions.sweeper`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from celery import Celery

from pipeline import conf
from pipeline.actions.sweeper import MAINTENANCE_QUEUE
from pipeline.job.revoked import report_expired
from pipeline.messages.events import MAINTENANCE, emit
from pipeline.runtime.services import Services, services_for

SWEEP = "pipeline.sweep"
PURGE = "pipeline.purge_queue_log"
SWEEP_EVERY = 5.0
PURGE_EVERY = 3600.0


@dataclass(frozen=True)
class SweepReport:
    """What one sweep did.

    Attributes:
        holds_dropped: holds whose lease ran out, dropped and handed on.
        jobs_expired: parked jobs that waited longer than ``pipeline_wait_timeout``.
        lines_served: resource lines left for later (a hand-off out of budget)
            that the sweep served.
        jobs_rescued: jobs taken by workers silent past the visibility timeout
            (dead, or cut off that long), given back to their queues
            (:mod:`pipeline.broker.rescue`).
        leases_expired: jobs agents claimed whose lease ran out (no heartbeat),
            given back to their pools, their locks handed on (:mod:`pipeline.remote`).
    """

    holds_dropped: int = 0
    jobs_expired: int = 0
    lines_served: int = 0
    jobs_rescued: int = 0
    leases_expired: int = 0

    @property
    def did_something(self) -> bool:
        """Whether any count is above zero."""
        return any(self.as_dict().values())

    @property
    def count(self) -> int:
        """Everything the sweep acted on, summed."""
        return sum(self.as_dict().values())

    def as_dict(self) -> dict[str, int]:
        """The counts by name (the detail of the ``maintenance`` event)."""
        return asdict(self)


def sweep_once(services: Services, limit: int = 500) -> SweepReport:
    """Sweep once and record what it did as a ``maintenance`` event (``action: sweep``).

    Nothing is recorded when the sweep found nothing to do, so an idle system
    does not fill the audit log every few seconds.

    Args:
        services: the services of the Celery app.
        limit: the most holds dropped and parked jobs expired in one call.
    """
    from pipeline.broker.rescue import rescue_silent
    # First: a claimed job whose agent went silent is given back with its locks (the
    # hold sweep would only drop the hold).
    leases = services.leases.expire(limit)
    dropped, expired, served = services.lock_actions.sweep_counts(limit)
    # Expired here or in a hand-off since the last sweep: REVOKED where Celery users look.
    report_expired(services, limit)
    report = SweepReport(holds_dropped=dropped, jobs_expired=expired, lines_served=served,
                         jobs_rescued=rescue_silent(services.app, limit), leases_expired=leases)
    if report.did_something:
        emit(services.redis, services.keys.events, MAINTENANCE, "",
             {"action": "sweep", "count": report.count, **report.as_dict()},
             maxlen=services.settings.events_maxlen)
    return report


def install(app: Celery) -> None:
    """Register the maintenance tasks on *app* and schedule them on its beat."""

    def sweep(limit: int = 500) -> dict[str, int]:
        """Drop dead holds, expire jobs parked too long, serve lines left for later."""
        return sweep_once(services_for(app), limit).as_dict()

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
            SWEEP: {"task": SWEEP, "schedule": SWEEP_EVERY,
                    "options": {"queue": MAINTENANCE_QUEUE, "expires": SWEEP_EVERY}},
            PURGE: {"task": PURGE, "schedule": PURGE_EVERY,
                    "options": {"queue": MAINTENANCE_QUEUE, "expires": PURGE_EVERY}},
        }
        schedule.update(app.conf.beat_schedule or {})
        app.conf.beat_schedule = schedule

    app.on_after_configure.connect(_schedule, weak=False)
